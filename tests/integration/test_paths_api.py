"""The validate_paths role and the paths_check module through ansible-playbook, the real ``kubernetes``
client and the API fake (tests/fakes/k8s_api.py): the seeds' app (marketplace calling
recommendations:50051) blocked by a deny-all policy, then open once the fix the finding prints is applied;
bad input naming the variable; check mode reading only."""

import os
import re
import tempfile

import pytest
import yaml

from tests.fakes.k8s_api import FakeKubeAPI
from tests.lab.dnslab import localhost_inventory, run_playbook, terminate_pod

TASK = "Judge the application paths from the cluster objects"
PATH = {"from": {"namespace": "shop", "selector": {"app": "marketplace"}}, "to": "recommendations.shop:50051",
        "protocol": "tcp"}


def ns(name):
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}}


def pod(name, namespace, labels, ip, node, ports=()):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "app:1", "ports": list(ports)}]},
            "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]}}


def cluster(policies):
    objs = [ns("shop"), ns("kube-system")]
    objs.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "marketplace", "namespace": "shop"},
                 "spec": {"selector": {"matchLabels": {"app": "marketplace"}},
                          "template": {"metadata": {"labels": {"app": "marketplace"}}, "spec": {"containers": []}}}})
    objs.append(pod("marketplace-5d9c7b6f4-abcde", "shop", {"app": "marketplace"}, "192.168.2.20", "node2"))
    objs.append(pod("recommendations-7c8d9-xyz12", "shop", {"app": "recommendations"}, "192.168.3.20", "node3",
                    [{"name": "grpc", "containerPort": 50051, "protocol": "TCP"}]))
    objs.append(pod("coredns-7db6d8ff4d-1", "kube-system", {"k8s-app": "kube-dns"}, "192.168.1.10", "node1",
                    [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                     {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}]))
    for name, namespace, selector, port, target, proto, ip in (
            ("recommendations", "shop", {"app": "recommendations"}, 50051, "grpc", "TCP", "192.168.3.20"),
            ("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, 53, 53, "UDP", "192.168.1.10")):
        objs.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
                     "spec": {"selector": selector, "ports": [{"port": port, "targetPort": target, "protocol": proto}]}})
        objs.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                     "metadata": {"name": name + "-abcde", "namespace": namespace,
                                  "labels": {"kubernetes.io/service-name": name}},
                     "addressType": "IPv4", "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}]})
    objs += policies
    return objs


def netpol(name, spec):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "shop"}, "spec": spec}


DENY_ALL = netpol("default-deny-all", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
ALLOW_DNS = netpol("allow-dns", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
    "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]})


@pytest.fixture()
def api():
    fake = FakeKubeAPI().start()
    fake.kubeconfig = fake.write_kubeconfig(os.path.join(tempfile.mkdtemp(prefix="kpaths-"), "kubeconfig"))
    yield fake
    fake.stop()


def play(fake, paths, args=(), playbook="validate_paths.yml", **evars):
    extra = {"validate_paths_kubeconfig": fake.kubeconfig, "validate_paths": paths}
    extra.update(evars)
    return run_playbook(playbook, localhost_inventory(), extra, timeout=180, args=args, result_task=TASK)


def test_blocked_path_then_open_after_the_printed_fix(api):
    api.cluster.add_all(cluster([DENY_ALL, ALLOW_DNS]))
    rc, res, _wall, out, _report = play(api, [PATH], validate_paths_probe=False)
    assert rc != 0, out
    assert res["status"] == "failed" and res["msg"].startswith("paths: 1 of 1 path(s) blocked"), out
    [f] = res["findings"]
    assert f["id"] == "PATH_BLOCKED" and f["details"]["layer"] == "netpol"
    assert f["details"]["object"] == "networkpolicy shop/allow-dns, shop/default-deny-all"
    assert f["where"] == "validate_paths[0]: deployment shop/marketplace -> recommendations.shop:50051"
    path = res["evidence"]["paths"][0]
    assert path["verdict"] == "blocked" and res["evidence"]["mesh"] == []
    assert {k: v["status"] for k, v in path["layers"].items()} == {
        "dns": "ok", "service": "ok", "netpol": "failed", "connect": "skipped"}
    # apply what the finding says (two policies: egress of marketplace, ingress of recommendations)
    fixes = [yaml.safe_load(doc) for doc in re.findall(r"<<'EOF'\n(.*?)\nEOF", f["remediation"], re.S)]
    assert [p["spec"]["policyTypes"] for p in fixes] == [["Egress"], ["Ingress"]]
    api.cluster.add_all(fixes)
    rc, res, _wall, out, _report = play(api, [PATH], validate_paths_probe=False)
    assert rc == 0, out
    assert res["findings"] == [] and res["status"] == "passed"
    assert res["evidence"]["paths"][0]["verdict"] == "ok"


def test_check_mode_reads_only(api):
    """Check mode starts no probe pod (validate_paths_probe stays on) and gives the static verdicts."""
    api.cluster.add_all(cluster([DENY_ALL]))
    rc, res, _wall, out, _report = play(api, [PATH], args=["--check"])
    assert rc != 0, out
    assert res["findings"][0]["details"]["failed_layers"] == ["dns", "netpol"]
    assert [m for m, _p in api.cluster.requests if m != "GET"] == []


def test_no_paths_no_requests(api):
    rc, res, _wall, out, _report = play(api, [])
    assert rc == 0, out
    assert res.get("skipped") is True and api.cluster.requests == []


def kubelet(connect="ok", dns="ok"):
    """on_create hook: the probe pod terminates as its script would, with the given outcome."""
    def hook(pod, _cluster):
        if "kubeadm-ec2/path-probe-run" not in pod["metadata"].get("labels", {}):
            return
        msg = "pathprobe/1\ndns %s 10.96.80.12\nconnect %s\n" % (dns, connect)
        terminate_pod(pod, msg, 0 if connect == "ok" else 1)
    return hook


def probe_pods(fake):
    return [p for p in fake.cluster.objects("api/v1", "pods") if "kubeadm-ec2/path-probe-run" in p["metadata"]["labels"]]


def created_pods(fake):
    return [p for m, p in fake.cluster.requests if m == "POST" and p.endswith("/pods")]


def test_probe_pod_connects_from_the_source_namespace(api):
    api.cluster.add_all(cluster([]))
    seen = []
    hook = kubelet()
    api.cluster.on_create["pods"] = lambda pod, c: (seen.append(pod["metadata"]), hook(pod, c))
    rc, res, _wall, out, _report = play(api, [PATH])
    assert rc == 0, out
    assert res["evidence"]["paths"][0]["layers"]["connect"]["status"] == "ok"
    # the probe ran as the app (its labels, its namespace), and is gone
    assert [(m["namespace"], m["labels"]["app"]) for m in seen] == [("shop", "marketplace")]
    assert created_pods(api) == ["/api/v1/namespaces/shop/pods"] and probe_pods(api) == []


def test_probe_connect_timeout_is_blocked_at_connect(api):
    api.cluster.add_all(cluster([]))
    api.cluster.on_create["pods"] = kubelet(connect="timeout")
    rc, res, _wall, out, _report = play(api, [PATH])
    assert rc != 0, out
    [f] = res["findings"]
    assert (f["id"], f["details"]["layer"]) == ("PATH_BLOCKED", "connect")
    assert probe_pods(api) == []


def test_policies_not_enforced_reported_once(api):
    """The policies deny marketplace -> recommendations, yet the probe connects: one warning, no block."""
    api.cluster.add_all(cluster([DENY_ALL, ALLOW_DNS]))
    api.cluster.on_create["pods"] = kubelet()
    rc, res, _wall, out, _report = play(api, [PATH])
    assert rc == 0, out
    assert [(f["id"], f["severity"]) for f in res["findings"]] == [("NETPOL_NOT_ENFORCED", "warning")]
    assert res["findings"][0]["observed"].endswith(
        "NetworkPolicies are not enforced here (the CNI does not implement them): the policies deny this connection "
        + res["findings"][0]["observed"].split("the policies deny this connection ", 1)[1])
    assert res["evidence"]["paths"][0]["layers"]["netpol"]["status"] == "not-enforced"


def test_probe_pod_that_never_finishes_is_bounded_and_deleted(api):
    api.cluster.add_all(cluster([]))
    rc, res, wall, out, _report = play(api, [PATH], validate_paths_probe_timeout=3)
    assert rc == 0, out  # no verdict from the probe: unknown, not blocked
    assert res["evidence"]["paths"][0]["verdict"] == "unknown"
    assert "did not finish within 3s" in res["evidence"]["paths"][0]["layers"]["connect"]["detail"]
    assert probe_pods(api) == []
    assert [p for m, p in api.cluster.requests if m == "DELETE"] != []


def test_bad_input_names_the_variable(api):
    api.cluster.add_all(cluster([]))
    cases = [
        ([dict(PATH, to="recommendations.shop")], "validate_paths[0].to: 'recommendations.shop' is not"),
        ([dict(PATH, to="recommendations.shpo:50051")], "validate_paths[0].to: unknown namespace 'shpo'"),
        ([PATH, dict(PATH, **{"from": {"namespace": "payments", "selector": {"app": "marketplace"}}})],
         "validate_paths[1].from.namespace: unknown namespace 'payments'"),
        ([dict(PATH, **{"from": {"namespace": "shop", "selector": {"app": "market"}}})],
         "validate_paths[0].from.selector: app=market matches no workload in namespace shop"),
        ([dict(PATH, protcol="udp")], "validate_paths[0]: unknown key 'protcol' (expected: from, to, protocol)"),
        (PATH, "validate_paths must be a list of {from: {namespace, selector}, to, protocol}"),  # one path, no list
    ]
    rc, res, _wall, out, _report = run_playbook(
        "validate_paths_bad_input.yml", localhost_inventory(),
        {"validate_paths_kubeconfig": api.kubeconfig, "paths_bad_cases": [c[0] for c in cases]},
        result_task="Run one bad case", timeout=180)
    assert rc == 0, out
    msgs = [r.get("msg", "") for r in res["results"]]
    assert len(msgs) == len(cases)
    for (_case, expected), msg in zip(cases, msgs):
        assert expected in msg and "Traceback" not in msg, msg
