"""Application paths, static verdicts (analysis/paths.py): input errors naming the variable, each layer
both ways, one PATH_BLOCKED finding per blocked path, and fixes that work when applied."""

import copy
import re

import pytest
import yaml

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import paths
from tests.unit.plugins.module_utils._netpol_patch import patch_networkpolicy


def ns(name, **labels):
    return {"metadata": {"name": name, "labels": labels}}


def pod(name, namespace, labels, ip, ports=(), ready=True, node="node1"):
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [dict(p) for p in ports]}]},
            "status": {"phase": "Running", "podIP": ip, "hostIP": "10.0.1.11",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def service(name, namespace, selector, port, target, proto="TCP"):
    return {"kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": selector, "ports": [{"port": port, "targetPort": target, "protocol": proto}]}}


def eps(name, namespace, ips):
    return {"metadata": {"name": name + "-abcde", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": name}},
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]}


DENY_ALL = {"metadata": {"name": "deny-all", "namespace": "shop"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}
ALLOW_DNS = {"metadata": {"name": "allow-dns", "namespace": "shop"},
             "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
                 "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                         "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                 "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}}


def world(policies=()):
    """The seeds' app: marketplace calls recommendations:50051 (targetPort grpc: 50051 on v1, 50052 on v2)."""
    return {
        "namespaces": [ns("shop"), ns("kube-system"), ns("other")],
        "deployments": [{"metadata": {"name": "marketplace", "namespace": "shop"},
                         "spec": {"template": {"metadata": {"labels": {"app": "marketplace"}}}}}],
        "pods": [pod("marketplace-1", "shop", {"app": "marketplace"}, "192.168.2.20"),
                 pod("recommendations-v1", "shop", {"app": "recommendations"}, "192.168.3.20",
                     [{"name": "grpc", "containerPort": 50051}]),
                 pod("recommendations-v2", "shop", {"app": "recommendations"}, "192.168.3.21",
                     [{"name": "grpc", "containerPort": 50052}]),
                 pod("coredns-1", "kube-system", {"k8s-app": "kube-dns"}, "192.168.1.10",
                     [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                      {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}])],
        "services": [service("recommendations", "shop", {"app": "recommendations"}, 50051, "grpc"),
                     service("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, 53, 53, "UDP")],
        "endpointslices": [eps("recommendations", "shop", ["192.168.3.20", "192.168.3.21"]),
                           eps("kube-dns", "kube-system", ["192.168.1.10"])],
        "network_policies": [copy.deepcopy(p) for p in policies],
    }


MARKET = {"namespace": "shop", "selector": {"app": "marketplace"}}


def judge(objs, to="recommendations:50051", protocol="tcp", frm=None):
    parsed = paths.parse_paths([{"from": frm or MARKET, "to": to, "protocol": protocol}], objs)
    return paths.judge(parsed, objs)


def applied(fix):
    """The NetworkPolicies a fix's ``kubectl apply`` heredocs create."""
    return [yaml.safe_load(doc) for doc in re.findall(r"<<'EOF'\n(.*?)\nEOF", fix, re.S)]


# -- input ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("item,message", [
    ({"from": MARKET, "to": "recommendations"}, "validate_paths[0].to: 'recommendations' is not \"service.namespace:port\""),
    ({"from": MARKET, "to": "recommendations:0"}, "validate_paths[0].to: port 0 is not 1-65535"),
    ({"from": MARKET, "to": "recommendations:99999"}, "validate_paths[0].to: port 99999 is not 1-65535"),
    ({"from": MARKET, "to": "bad_name!:80"}, "validate_paths[0].to: 'bad_name!' is not a valid host or Service name"),
    ({"from": MARKET, "to": 50051}, "validate_paths[0].to: expected"),
    ({"from": MARKET, "to": "recommendations.shpo:50051"},
     "validate_paths[0].to: unknown namespace 'shpo' (a Service recommendations exists in shop)"),
    ({"from": MARKET, "to": "recommendations.nowhere.svc:50051"}, "validate_paths[0].to: unknown namespace 'nowhere'"),
    ({"from": {"namespace": "shopp", "selector": {"app": "marketplace"}}, "to": "recommendations:50051"},
     "validate_paths[0].from.namespace: unknown namespace 'shopp' (namespaces: kube-system, other, shop)"),
    ({"from": {"namespace": "shop", "selector": {"app": "market"}}, "to": "recommendations:50051"},
     "validate_paths[0].from.selector: app=market matches no workload in namespace shop (deployment marketplace "
     "(app=marketplace)"),
    ({"from": {"namespace": "shop"}, "to": "recommendations:50051"}, "validate_paths[0].from.selector: give the"),
    ({"from": {"namespace": "shop", "selector": "app"}, "to": "recommendations:50051"},
     "validate_paths[0].from.selector: 'app' is not a label selector"),
    ({"from": MARKET, "to": "recommendations:50051", "protocol": "sctp"}, "validate_paths[0].protocol: 'sctp' is not"),
    ("recommendations:50051", "validate_paths[0]: expected {from:"),
    # a misspelt key is named, not silently ignored (a typo would otherwise change the path judged)
    ({"from": MARKET, "to": "recommendations:50051", "protocl": "udp"},
     "validate_paths[0]: unknown key 'protocl' (expected: from, to, protocol)"),
    ({"from": {"namespace": "shop", "selector": {"app": "marketplace"}, "labels": {"app": "x"}},
      "to": "recommendations:50051"}, "validate_paths[0].from: unknown key 'labels' (expected: namespace, selector)"),
    ({"from": {"namespce": "shop", "selector": {"app": "marketplace"}}, "to": "recommendations:50051"},
     "validate_paths[0].from: unknown key 'namespce'"),
    ({"from": {"selector": {"app": "marketplace"}}, "to": "recommendations:50051"},
     "validate_paths[0].from.namespace: missing: the source workload's namespace (namespaces: kube-system, other, shop)"),
    ({"from": {"namespace": "shop", "selector": {"matchLabels": {"app": "marketplace", "tier": "web"}}},
      "to": "recommendations:50051"},
     "validate_paths[0].from.selector: app=marketplace,tier=web matches no workload in namespace shop"),
])
def test_bad_input_names_the_variable(item, message):
    with pytest.raises(paths.PathInputError) as err:
        paths.parse_paths([item], world())
    assert str(err.value).startswith(message), str(err.value)


def test_bad_input_not_a_list():
    with pytest.raises(paths.PathInputError, match="validate_paths must be a list"):
        paths.parse_paths({"from": MARKET}, world())


@pytest.mark.parametrize("to,target", [
    ("recommendations:50051", {"kind": "service", "name": "recommendations", "namespace": "shop"}),
    ("recommendations.shop:50051", {"kind": "service", "name": "recommendations", "namespace": "shop"}),
    ("recommendations.shop.svc:50051", {"kind": "service", "name": "recommendations", "namespace": "shop"}),
    ("recommendations.shop.svc.cluster.local:50051", {"kind": "service", "name": "recommendations", "namespace": "shop"}),
    ("kubernetes.io:443", {"kind": "host", "host": "kubernetes.io", "ip": None}),
    ("203.0.113.7:443", {"kind": "host", "host": "203.0.113.7", "ip": "203.0.113.7"}),
    ("[2001:db8::7]:443", {"kind": "host", "host": "2001:db8::7", "ip": "2001:db8::7"}),
])
def test_targets(to, target):
    parsed = paths.parse_paths([{"from": {"namespace": "shop", "selector": "app=marketplace"}, "to": to}], world())
    assert {k: parsed[0]["target"][k] for k in target} == target
    assert parsed[0]["from"]["workload"] == "deployment shop/marketplace"


# -- layers ----------------------------------------------------------------------------------------
def test_open_cluster_every_layer_ok():
    results, findings = judge(world())
    assert findings == []
    r = results[0]
    assert r["verdict"] == "ok"
    assert {k: v["status"] for k, v in r["layers"].items()} == {
        "dns": "ok", "service": "ok", "netpol": "ok", "connect": "skipped"}
    assert r["layers"]["service"]["detail"] == ("Service shop/recommendations TCP/50051 -> targetPort grpc, "
                                                "2 ready endpoint(s)")


def test_dns_layer_misspelt_service_names_the_nearest():
    results, findings = judge(world(), to="recommendation:50051")
    [f] = findings
    assert f["observed"].endswith("recommendation.shop.svc.cluster.local does not exist: no Service recommendation in "
                                  "namespace shop; did you mean recommendations (Service shop/recommendations)? "
                                  "(NXDOMAIN)")
    assert f["remediation"] == "point validate_paths[0].to at an existing Service (recommendations.shop:50051)"


def test_dns_layer_missing_service():
    objs = world()
    objs["services"] = [s for s in objs["services"] if s["metadata"]["name"] != "recommendations"]
    objs["services"].append(service("recommendations", "other", {"app": "x"}, 50051, 50051))
    results, findings = judge(objs)
    assert [f["details"]["layer"] for f in findings] == ["dns"]
    assert findings[0]["observed"] == (
        "shop app=marketplace -> recommendations:50051/TCP is blocked at the dns layer: recommendations.shop.svc."
        "cluster.local does not exist: no Service recommendations in namespace shop; a Service recommendations "
        "exists in other (NXDOMAIN)")
    assert findings[0]["where"] == "validate_paths[0]: deployment shop/marketplace -> recommendations:50051"


def test_dns_layer_egress_blocked_then_allowed():
    ingress_open = {"metadata": {"name": "open", "namespace": "shop"},
                    "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
                        {"to": [{"podSelector": {"matchLabels": {"app": "recommendations"}}}]}]}}
    results, findings = judge(world([ingress_open]))
    assert results[0]["layers"]["dns"]["status"] == "failed"
    assert results[0]["layers"]["netpol"]["status"] == "ok"
    assert findings[0]["details"]["object"] == "networkpolicy shop/open"
    assert "name: allow-dns, namespace: shop" in findings[0]["remediation"]
    results, findings = judge(world([ingress_open, ALLOW_DNS]))
    assert results[0]["layers"]["dns"]["status"] == "ok" and findings == []


def test_dns_layer_tutorial_policy_explained():
    tutorial = copy.deepcopy(ALLOW_DNS)
    tutorial["spec"]["egress"][0]["to"] = [{"namespaceSelector": {"matchLabels": {"name": "kube-system"}}}]
    results, findings = judge(world([DENY_ALL, tutorial]))
    dns = results[0]["layers"]["dns"]
    assert dns["status"] == "failed"
    assert "namespaceSelector name=kube-system does not select namespace kube-system" in dns["detail"]
    assert dns["fix"].startswith("select namespace kube-system by the label the control plane sets")


def test_dns_layer_no_dns_endpoints():
    objs = world()
    objs["endpointslices"] = [e for e in objs["endpointslices"] if e["metadata"]["namespace"] != "kube-system"]
    results, _findings = judge(objs)
    assert results[0]["layers"]["dns"]["detail"] == "Service kube-system/kube-dns has no ready endpoints: no lookup can succeed"


def test_service_layer_missing_port():
    results, findings = judge(world(), to="recommendations:8080")
    svc = results[0]["layers"]["service"]
    assert svc["status"] == "failed"
    assert svc["detail"] == "Service shop/recommendations has no TCP port 8080 (ports: 50051/TCP)"
    assert findings[0]["details"]["layer"] == "service"


def test_service_layer_selector_matches_no_pod():
    objs = world()
    objs["services"][0]["spec"]["selector"] = {"app": "recommendation"}
    objs["endpointslices"] = objs["endpointslices"][1:]
    results, findings = judge(objs)
    svc = results[0]["layers"]["service"]
    assert svc["detail"] == ("Service shop/recommendations: selector app=recommendation matches no pod in namespace "
                             "shop (recommendations-v1 has app=recommendations; recommendations-v2 has "
                             "app=recommendations); not proposed, as they declare no containerPort grpc/TCP: "
                             "marketplace-1")
    # only a pod that declares the targetPort (grpc) is proposed, not marketplace (the dns check's ranking)
    assert svc["fix"] == ("kubectl -n shop patch service recommendations -p '{\"spec\":{\"selector\":{\"app\":"
                          "\"recommendations\"}}}' (the nearest workload that declares grpc/TCP: recommendations-v1; "
                          "or label its pods app=recommendation)")


def test_service_layer_target_port_not_declared():
    objs = world()
    objs["services"][0]["spec"]["ports"][0]["targetPort"] = "http"
    results, _findings = judge(objs)
    svc = results[0]["layers"]["service"]
    assert svc["status"] == "failed"
    assert svc["detail"].startswith("Service shop/recommendations: targetPort http matches no containerPort of the "
                                    "2 selected pod(s) (declared: 50051/TCP, 50052/TCP)")


def test_service_layer_no_ready_endpoints():
    objs = world()
    objs["endpointslices"][0]["endpoints"] = []
    objs["pods"][1]["status"]["conditions"][0]["status"] = "False"
    results, _findings = judge(objs)
    assert results[0]["layers"]["service"]["detail"] == (
        "Service shop/recommendations has no ready endpoints (1 selected pod(s) not Ready: recommendations-v1)")


def test_netpol_layer_deny_all_and_the_fix_applies():
    objs = world([DENY_ALL, ALLOW_DNS])
    results, findings = judge(objs)
    layer = results[0]["layers"]["netpol"]
    assert layer["status"] == "failed" and results[0]["verdict"] == "blocked"
    assert layer["object"] == "networkpolicy shop/allow-dns, shop/deny-all"  # both isolate the source for egress
    assert [f["details"]["layer"] for f in findings] == ["netpol"]
    policies = applied(findings[0]["remediation"])
    assert [(p["metadata"]["name"], p["spec"]["policyTypes"]) for p in policies] == [
        ("allow-marketplace-to-recommendations-50051-egress", ["Egress"]),
        ("allow-marketplace-to-recommendations-50051-ingress", ["Ingress"])]
    # the named targetPort stays a name: 50051 on v1 and 50052 on v2 are both allowed by it
    assert policies[0]["spec"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": "grpc"}]
    objs["network_policies"] += policies
    results, findings = judge(objs)
    assert findings == [] and results[0]["verdict"] == "ok"


def test_netpol_layer_one_backend_denied():
    only_v1 = {"metadata": {"name": "rec-in", "namespace": "shop"},
               "spec": {"podSelector": {"matchLabels": {"app": "recommendations"}}, "policyTypes": ["Ingress"],
                        "ingress": [{"ports": [{"port": 50051}]}]}}
    results, findings = judge(world([only_v1]))
    layer = results[0]["layers"]["netpol"]
    assert layer["detail"].startswith("Service shop/recommendations: 1 of 2 backend pod(s) denied")
    assert "allow TCP 50052 in shop/rec-in ingress rule 0" in layer["fix"]


def test_several_layers_one_finding():
    results, findings = judge(world([DENY_ALL]))
    assert len(findings) == 1
    f = findings[0]
    assert f["details"]["failed_layers"] == ["dns", "netpol"]
    assert f["observed"].endswith("(also blocked at: netpol)")
    assert f["remediation"].startswith("1. dns: kubectl apply") and "\n2. netpol: " in f["remediation"]
    objs = world([DENY_ALL])
    objs["network_policies"] += applied(f["remediation"])
    assert judge(objs)[1] == []


def test_external_address_egress_denied_then_fixed():
    objs = world([DENY_ALL, ALLOW_DNS])
    results, findings = judge(objs, to="203.0.113.7:443")
    assert results[0]["layers"]["dns"]["status"] == "skipped"
    assert results[0]["layers"]["service"]["status"] == "skipped"
    policies = applied(findings[0]["remediation"])
    assert policies[0]["spec"]["egress"][0]["to"] == [{"ipBlock": {"cidr": "203.0.113.7/32"}}]
    objs["network_policies"] += policies
    assert judge(objs, to="203.0.113.7:443")[0][0]["verdict"] == "ok"


def test_external_name_isolated_is_unknown_not_blocked():
    results, findings = judge(world([DENY_ALL, ALLOW_DNS]), to="kubernetes.io:443")
    assert findings == []
    assert results[0]["verdict"] == "unknown"
    assert results[0]["layers"]["netpol"]["status"] == "unknown"
    assert judge(world(), to="kubernetes.io:443")[0][0]["layers"]["netpol"]["status"] == "ok"


def test_check_result_shape():
    results, findings = judge(world([DENY_ALL]))
    res = paths.check_result(results, findings)
    assert res["status"] == "failed" and res["msg"] == "paths: 1 of 1 path(s) blocked"
    assert res["evidence"] == {"mesh": [], "paths": results}
    assert sorted(res["evidence"]["paths"][0]) == ["from", "layers", "protocol", "to", "verdict"]
    ok = paths.check_result(*judge(world()))
    assert ok["status"] == "passed" and ok["msg"] == "paths: 1 path(s) open"


# -- probe pods: the live dns and connect layers --------------------------------------------------
def probe(dns="ok", connect="ok", outcome="finished"):
    return {"pod": "shop/path-probe-0-abcde", "outcome": outcome, "detail": "Succeeded",
            "results": {"dns": {"status": dns, "answer": "10.96.7.7"}, "connect": {"status": connect}}}


def judge_probed(objs, result, to="recommendations:50051"):
    parsed = paths.parse_paths([{"from": MARKET, "to": to}], objs)
    return paths.judge(parsed, objs, {0: result})


def test_probe_message_parsed():
    assert paths.parse_probe_message("pathprobe/1\ndns ok 10.96.7.7\nconnect refused\n") == {
        "dns": {"status": "ok", "answer": "10.96.7.7"}, "connect": {"status": "refused"}}
    for bad in ("", "dnsprobe/1\nconnect ok", "pathprobe/1\ndns ok -", "pathprobe/1\nbogus line"):
        with pytest.raises(ValueError):
            paths.parse_probe_message(bad)


def test_probe_pod_looks_like_the_app_but_never_serves():
    parsed = paths.parse_paths([{"from": MARKET, "to": "recommendations:50051"}], world())
    pod = paths.probe_pod_manifest(parsed[0], "busybox:1.36.1", "run1")
    assert pod["metadata"]["namespace"] == "shop"
    assert pod["metadata"]["labels"] == {"app": "marketplace", "kubeadm-ec2/path-probe-run": "run1"}
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["exec"]["command"] == ["false"]
    script = container["command"][2]
    assert "h=recommendations.shop.svc.cluster.local" in script
    # the DNS probe pods' lookup: the path timeout (3 s) for the whole lookup, a resend every 0.5 s within it
    assert 'out=$(timeout 4 nslookup -timeout=3 -retry=6 "$h" 2>&1)' in script
    assert pod["spec"]["restartPolicy"] == "Never" and pod["spec"]["automountServiceAccountToken"] is False


def test_probe_connect_ok_everything_ok():
    results, findings = judge_probed(world(), probe())
    assert findings == [] and results[0]["verdict"] == "ok"
    assert results[0]["layers"]["connect"]["status"] == "ok"


def test_probe_connect_fails_with_static_layers_ok():
    results, findings = judge_probed(world(), probe(connect="timeout"))
    assert [f["details"]["layer"] for f in findings] == ["connect"]
    assert findings[0]["observed"].endswith("blocked at the connect layer: the connection from the source namespace "
                                            "gave timeout")


def test_probe_live_dns_failure():
    results, findings = judge_probed(world(), probe(dns="timeout", connect="skipped"))
    assert results[0]["layers"]["dns"]["detail"] == "the probe could not resolve the name: timeout"
    assert [f["details"]["layer"] for f in findings] == ["dns"]


def test_policies_deny_but_connect_succeeds_is_not_enforced():
    """One verdict, not two contradicting ones: the policies are not enforced by the CNI."""
    results, findings = judge_probed(world([DENY_ALL, ALLOW_DNS]), probe())
    layer = results[0]["layers"]["netpol"]
    assert layer["status"] == "not-enforced"
    assert layer["detail"].startswith("NetworkPolicies are not enforced here (the CNI does not implement them)")
    assert [(f["id"], f["severity"]) for f in findings] == [("NETPOL_NOT_ENFORCED", "warning")]
    assert results[0]["verdict"] == "ok"


def test_policies_deny_and_connect_fails_is_blocked_at_netpol():
    results, findings = judge_probed(world([DENY_ALL, ALLOW_DNS]), probe(connect="timeout"))
    assert [(f["id"], f["details"]["layer"], f["details"]["failed_layers"]) for f in findings] == [
        ("PATH_BLOCKED", "netpol", ["netpol", "connect"])]


def test_probe_without_result_is_unknown():
    results, findings = judge_probed(world(), {"pod": "shop/p", "outcome": "timeout", "detail": "did not finish"})
    assert findings == [] and results[0]["verdict"] == "unknown"
    assert results[0]["layers"]["connect"]["detail"] == "the probe pod gave no result: did not finish"


def test_probe_resolves_external_name():
    results, findings = judge_probed(world([DENY_ALL, ALLOW_DNS]), probe(connect="ok"), to="kubernetes.io:443")
    assert results[0]["layers"]["dns"]["status"] == "ok"
    assert results[0]["layers"]["netpol"]["status"] == "ok"  # unknown statically, the live connect settles it
    assert results[0]["verdict"] == "ok" and findings == []


# -- issue 11's tutorial case, through the paths check ------------------------------------------------
def tutorial(frontend_ports=({"containerPort": 80},)):
    """A tutorial's own manifests: deny-all, an allow-dns whose namespaceSelector is name=kube-system (no
    namespace carries it), and a Service backend selecting app=api while the pods are app=backend."""
    objs = {
        "namespaces": [ns("demo", **{"kubernetes.io/metadata.name": "demo"}),
                       ns("kube-system", **{"kubernetes.io/metadata.name": "kube-system"})],
        "deployments": [{"metadata": {"name": n, "namespace": "demo"},
                         "spec": {"template": {"metadata": {"labels": {"app": n}}}}} for n in ("frontend", "backend")],
        "pods": [pod("frontend-7d4b9c6f5-x2x9z", "demo", {"app": "frontend"}, "192.168.1.30", frontend_ports),
                 pod("backend-5f6d8b7c9-k8s2p", "demo", {"app": "backend"}, "192.168.2.30",
                     [{"name": "http", "containerPort": 8080}], node="node2"),
                 pod("coredns-1", "kube-system", {"k8s-app": "kube-dns"}, "192.168.1.10",
                     [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                      {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}])],
        "services": [service("backend", "demo", {"app": "api"}, 80, 8080),
                     service("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, 53, 53, "UDP")],
        "endpointslices": [eps("kube-dns", "kube-system", ["192.168.1.10"])],
        "network_policies": [
            {"metadata": {"name": "deny-all", "namespace": "demo"},
             "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}},
            {"metadata": {"name": "allow-dns", "namespace": "demo"},
             "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
                 "to": [{"namespaceSelector": {"matchLabels": {"name": "kube-system"}}}],
                 "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}}],
    }
    for p in objs["pods"]:
        p["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "controller": True,
                                             "name": p["metadata"]["name"].rsplit("-", 1)[0]}]
    return objs


FRONTEND = {"namespace": "demo", "selector": {"app": "frontend"}}


def _apply(objs, fix):
    """Apply a PATH_BLOCKED remediation the way its numbered steps say: the first command of each step."""
    for step in re.split(r"\n(?=\d+\. )", fix):
        m = re.search(r"kubectl -n \S+ patch networkpolicy \S+ --type=json -p '.*?'", step)
        if m:
            _patched(objs, m.group(0))
            continue
        m = re.search(r"kubectl -n (\S+) patch service (\S+) -p '(.*?)'", step)
        if m:
            svc = next(s for s in objs["services"] if s["metadata"]["name"] == m.group(2))
            svc["spec"]["selector"] = yaml.safe_load(m.group(3))["spec"]["selector"]
            # the Service's endpoints follow its selector
            ips = [p["status"]["podIP"] for p in objs["pods"] if all(
                p["metadata"]["labels"].get(k) == v for k, v in svc["spec"]["selector"].items())]
            objs["endpointslices"].append(eps(m.group(2), m.group(1), ips))
            continue
        objs["network_policies"] += applied(step)


@pytest.mark.parametrize("frontend_ports", [
    ({"containerPort": 80},),       # the tutorial: frontend does not even declare the targetPort
    ({"containerPort": 8080},),     # it does: backend is still proposed, its name is nearest to the Service's
], ids=["frontend-without-8080", "frontend-with-8080"])
def test_tutorial_case_wording_and_every_fix_at_once(frontend_ports):
    objs = tutorial(frontend_ports)
    results, findings = judge(objs, to="backend:80", frm=FRONTEND)
    [f] = findings
    layers = results[0]["layers"]
    assert f["details"]["failed_layers"] == ["dns", "service", "netpol"]
    # dns: the part of allow-dns that matches nothing, and the label kube-system does carry
    assert ("nearest: demo/allow-dns egress rule 0: namespaceSelector name=kube-system does not select namespace "
            "kube-system (it carries kubernetes.io/metadata.name=kube-system)") in layers["dns"]["detail"]
    assert layers["dns"]["fix"].startswith("select namespace kube-system by the label the control plane sets "
                                           "(kubernetes.io/metadata.name=kube-system) in demo/allow-dns egress rule 0")
    # service: backend (declares 8080) is proposed, never frontend
    assert layers["service"]["detail"].startswith("Service demo/backend: selector app=api matches no pod in namespace "
                                                  "demo (backend-5f6d8b7c9-k8s2p has app=backend")
    assert layers["service"]["fix"].startswith(
        "kubectl -n demo patch service backend -p '{\"spec\":{\"selector\":{\"app\":\"backend\"}}}' (the nearest "
        "workload that declares 8080/TCP: backend;")
    assert "frontend\"" not in layers["service"]["fix"]
    # netpol: judged on the pods the proposed selector selects, so the deny-all shows now, not after the patch
    assert layers["netpol"]["detail"].startswith("once the Service selects app=backend: Service demo/backend: 1 of 1 "
                                                 "backend pod(s) denied")
    # one finding, every fix in the order traffic meets them; applied, the path is open
    assert re.findall(r"^(\d)\. (\w+):", f["remediation"], re.M) == [("1", "dns"), ("2", "service"), ("3", "netpol")]
    _apply(objs, f["remediation"])
    results, findings = judge(objs, to="backend:80", frm=FRONTEND)
    assert findings == [] and results[0]["verdict"] == "ok", findings


def _patched(objs, cli):
    """Apply a ``kubectl patch networkpolicy --type=json`` command (add/replace ops) to the objects."""
    patch_networkpolicy(objs["network_policies"], cli)
    return objs


@pytest.mark.parametrize("peer,op", [
    ({"app": "web"}, "add"),           # selects the web pods: they keep their access, marketplace gets a peer
    ({"app": "marketplce"}, "replace"),  # a typo that selects nothing: corrected
])
def test_near_miss_podselector_fix_keeps_the_pods_it_serves(peer, op):
    objs = world([{"metadata": {"name": "recs-in", "namespace": "shop"},
                   "spec": {"podSelector": {"matchLabels": {"app": "recommendations"}}, "policyTypes": ["Ingress"],
                            "ingress": [{"from": [{"podSelector": {"matchLabels": peer}}],
                                         "ports": [{"protocol": "TCP", "port": "grpc"}]}]}}])
    objs["pods"].append(pod("web-1", "shop", {"app": "web"}, "192.168.1.40"))
    objs["deployments"].append({"metadata": {"name": "web", "namespace": "shop"},
                                "spec": {"template": {"metadata": {"labels": {"app": "web"}}}}})
    [f] = judge(objs)[1]
    cli = f["cli"]
    assert cli.startswith("kubectl -n shop patch networkpolicy recs-in --type=json") and '"op":"%s"' % op in cli, cli
    _patched(objs, cli)
    assert judge(objs)[1] == []
    # web keeps (add) or never had (typo) its access; with the add, both are admitted
    web = judge(objs, frm={"namespace": "shop", "selector": {"app": "web"}})[1]
    assert (web == []) is (op == "add")


@pytest.mark.parametrize("labels,op", [
    ({"team": "obs"}, "add"),       # selects the monitoring namespace: it keeps its access, shop gets a peer
    ({"team": "shpo"}, "replace"),  # a typo that selects no namespace: corrected
])
def test_near_miss_namespaceselector_fix_keeps_the_namespaces_it_selects(labels, op):
    objs = world([{"metadata": {"name": "recs-in", "namespace": "shop"},
                   "spec": {"podSelector": {"matchLabels": {"app": "recommendations"}}, "policyTypes": ["Ingress"],
                            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": labels},
                                                   "podSelector": {"matchLabels": {"app": "marketplace"}}}],
                                         "ports": [{"protocol": "TCP", "port": "grpc"}]}]}}])
    objs["namespaces"].append(ns("monitoring", team="obs"))
    objs["pods"].append(pod("marketplace-m", "monitoring", {"app": "marketplace"}, "192.168.1.41"))
    objs["deployments"].append({"metadata": {"name": "marketplace", "namespace": "monitoring"},
                                "spec": {"template": {"metadata": {"labels": {"app": "marketplace"}}}}})
    monitoring = {"namespace": "monitoring", "selector": {"app": "marketplace"}}
    assert (judge(objs, to="recommendations.shop:50051", frm=monitoring)[1] == []) is (op == "add")
    [f] = judge(objs)[1]
    cli = f["cli"]
    assert cli.startswith("kubectl -n shop patch networkpolicy recs-in --type=json") and '"op":"%s"' % op in cli, cli
    if op == "add":
        assert "peer 0's namespaceSelector team=obs selects monitoring, which keep their access" in f["remediation"]
        assert '"value":{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"shop"}},' \
               '"podSelector":{"matchLabels":{"app":"marketplace"}}}' in cli
    _patched(objs, cli)
    assert judge(objs)[1] == []
    # monitoring keeps (add) or never had (typo) its access
    assert (judge(objs, to="recommendations.shop:50051", frm=monitoring)[1] == []) is (op == "add")
