"""Unit tests of the pure DNS analysis (_checks/dns.py): Corefile/resolv.conf, NetworkPolicy egress,
selector matching, services, host/pod path findings."""

import json
import re

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import catalogue as cat
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import dns, netpol
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import format_finding
from tests.unit.plugins.module_utils._netpol_patch import patch_networkpolicy

DEFAULT_COREFILE = """.:53 {
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
    }
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    loop
}
"""
VPC_COREFILE = DEFAULT_COREFILE.replace("forward . /etc/resolv.conf", "forward . 169.254.169.253")


# -- names / Corefile / resolv.conf ------------------------------------------------------------
@pytest.mark.parametrize("name,expected", [
    ("web", "web.default.svc.cluster.local"),
    ("web.shop", "web.shop.svc.cluster.local"),
    ("web.shop.svc", "web.shop.svc.cluster.local"),
    ("web.shop.svc.cluster.local.", "web.shop.svc.cluster.local"),
    ("a.b.example.com", "a.b.example.com"),
])
def test_qualify(name, expected):
    assert dns.qualify(name) == expected


def test_qualify_empty():
    with pytest.raises(ValueError):
        dns.qualify("  ")


def test_query_plan():
    assert dns.query_plan(["web.shop", "kubernetes.default"], "example.test") == [
        ("kubernetes.default.svc.cluster.local", "cluster"),
        ("web.shop.svc.cluster.local", "user"),
        ("example.test", "external"),
    ]


@pytest.mark.parametrize("text,servers", [
    ("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch ec2.internal\n", ["127.0.0.53"]),
    ("# generated\nnameserver 10.0.0.2 # vpc\nnameserver 127.0.0.11\n", ["10.0.0.2", "127.0.0.11"]),
    ("", []),
])
def test_parse_resolv_conf(text, servers):
    assert dns.parse_resolv_conf(text) == servers


@pytest.mark.parametrize("addr,loop", [("127.0.0.53", True), ("127.0.0.11", True), ("::1", True),
                                       ("10.0.0.2", False), ("169.254.169.253", False), ("bogus", False)])
def test_is_loopback(addr, loop):
    assert dns.is_loopback(addr) is loop


def test_kubelet_resolv_conf():
    text = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nresolvConf: /run/systemd/resolve/resolv.conf\n"
    assert dns.parse_kubelet_resolv_conf(text) == "/run/systemd/resolve/resolv.conf"
    assert dns.parse_kubelet_resolv_conf("kind: KubeletConfiguration\n") is None


def test_corefile_forwards():
    assert dns.corefile_forwards(DEFAULT_COREFILE) == [{"from": ".", "to": ["/etc/resolv.conf"]}]
    assert dns.corefile_forwards("forward . 8.8.8.8 1.1.1.1\n") == [{"from": ".", "to": ["8.8.8.8", "1.1.1.1"]}]
    assert dns.corefile_forwards_to_resolv_conf(DEFAULT_COREFILE) is True
    assert dns.corefile_forwards_to_resolv_conf(VPC_COREFILE) is False
    assert dns.corefile_forwards_to_resolv_conf("# forward . /etc/resolv.conf\n") is False


@pytest.mark.parametrize("corefile,resolv,expected", [
    (DEFAULT_COREFILE, {"n1": ["127.0.0.53"], "n2": ["10.0.0.2"]}, {"n1": ["127.0.0.53"]}),
    (DEFAULT_COREFILE, {"n1": ["10.0.0.2"]}, {}),
    (VPC_COREFILE, {"n1": ["127.0.0.53"]}, {}),
])
def test_loop_risk(corefile, resolv, expected):
    assert dns.loop_risk(corefile, resolv) == expected


# -- selectors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("selector,labels,match", [
    ({}, {"a": "1"}, True),
    ({}, {}, True),
    (None, {"a": "1"}, False),
    ({"matchLabels": {"app": "api"}}, {"app": "backend"}, False),
    ({"matchLabels": {"app": "api"}}, {"app": "api", "x": "y"}, True),
    ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["a", "b"]}]}, {"app": "b"}, True),
    ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["a"]}]}, {"app": "a"}, False),
    ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, {}, False),
    ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, {}, True),
])
def test_selector_matches(selector, labels, match):
    assert dns.selector_matches(selector, labels) is match


# -- NetworkPolicy -----------------------------------------------------------------------------------
def pod(name, ns="default", labels=None, phase="Running", ports=None, ip="192.168.1.20", node="node1"):
    return {"metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "ports": ports or []}]},
            "status": {"phase": phase, "podIP": ip}}


def policy(name, ns="default", selector=None, types=("Ingress", "Egress"), egress=None):
    spec = {"podSelector": selector if selector is not None else {}, "policyTypes": list(types)}
    if egress is not None:
        spec["egress"] = egress
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


STATE = {"coredns_pods": [{"name": "coredns-1", "node": "node1", "ip": "192.168.1.10", "ready": True}],
         "coredns_labels": [{"k8s-app": "kube-dns"}], "endpoints": [{"ip": "192.168.1.10", "node": "node1"}]}
NAMESPACES = [{"metadata": {"name": "default"}}, {"metadata": {"name": "kube-system"}}]
TO_DNS = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
           "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
DNS_PORTS = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]


@pytest.mark.parametrize("policies,blocked", [
    ([policy("deny-all")], ["UDP", "TCP"]),                                           # seed's deny-all
    ([policy("deny-all"), policy("allow-dns", types=["Egress"], egress=[{"to": TO_DNS, "ports": DNS_PORTS}])], []),
    ([policy("deny-all", types=["Ingress"])], []),                                   # ingress only
    ([policy("dns-udp", types=["Egress"], egress=[{"to": TO_DNS, "ports": [{"protocol": "UDP", "port": 53}]}])],
     ["TCP"]),
    ([policy("any", types=["Egress"], egress=[{}])], []),                             # allow all egress
    ([policy("named", types=["Egress"], egress=[{"ports": [{"protocol": "UDP", "port": "dns"},
                                                           {"protocol": "TCP", "port": "dns-tcp"}]}])], []),
    ([policy("range", types=["Egress"], egress=[{"ports": [{"protocol": "UDP", "port": 1, "endPort": 1024},
                                                           {"protocol": "TCP", "port": 1, "endPort": 1024}]}])], []),
    ([policy("ipblock", types=["Egress"], egress=[{"to": [{"ipBlock": {"cidr": "192.168.0.0/16"}}], "ports": DNS_PORTS}])],
     []),
    ([policy("ipblock-except", types=["Egress"],
             egress=[{"to": [{"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24"]}}]}])],
     ["UDP", "TCP"]),
    ([policy("wrong-ns", types=["Egress"], egress=[{"to": [{"podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                                                    "ports": DNS_PORTS}])], ["UDP", "TCP"]),  # same-ns peer only
    ([policy("other-app", selector={"matchLabels": {"app": "other"}})], None),        # selects nothing
])
def test_netpol_blocks_dns(policies, blocked):
    found = dns.netpol_findings(policies, [pod("web-1", labels={"app": "web"})], NAMESPACES, STATE)
    if blocked is None or not blocked:
        assert found == []
        return
    assert len(found) == 1
    f = found[0]
    assert f["id"] == "NETPOL_BLOCKS_DNS"
    assert f["details"]["blocked"] == blocked
    assert f["severity"] == ("error" if "UDP" in blocked else "warning")
    assert "allow-dns" in f["remediation"] and "port: 53" in f["remediation"]


def test_netpol_message_exact():
    found = dns.netpol_findings([policy("default-deny-all", ns="shop")],
                                [pod("api-1", ns="shop"), pod("api-2", ns="shop"),
                                 pod("done", ns="shop", phase="Succeeded")], NAMESPACES, STATE)
    assert found[0]["observed"] == ("NetworkPolicy default-deny-all selects 2 pod(s) (api-1, api-2) and allows no "
                                    "egress to UDP/TCP 53 of the CoreDNS pods")
    assert found[0]["where"] == "namespace shop"


# -- Services -----------------------------------------------------------------------------------------
def service(name, selector, ports, ns="default"):
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"selector": selector, "ports": ports}}


def test_service_wrong_selector():
    pods = [pod("backend-7f9c", labels={"app": "backend", "tier": "api"}, ports=[{"containerPort": 8080}])]
    found = dns.service_findings([service("api", {"app": "api"}, [{"port": 80, "targetPort": 8080}])], pods)
    assert [f["id"] for f in found] == ["SVC_NO_ENDPOINTS"]
    assert found[0]["observed"] == "selector app=api matches no pod in namespace default (backend-7f9c has app=backend)"
    assert found[0]["remediation"].startswith(
        "kubectl -n default patch service api -p '{\"spec\":{\"selector\":{\"app\":\"backend\"}}}'")


def _rs_pod(workload, suffix, labels, ports, ns="shop"):
    h = "5d9c7b6f4"
    p = pod("%s-%s-%s" % (workload, h, suffix), ns=ns, labels=dict(labels, **{"pod-template-hash": h}), ports=ports)
    p["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "%s-%s" % (workload, h), "controller": True}]
    return p


def test_service_selector_fix_proposes_only_pods_that_serve_the_target_port():
    """The tutorial's case: Service backend selects app=api; frontend does not declare 8080, so it is never the fix."""
    pods = [_rs_pod("frontend", "aaaaa", {"app": "frontend"}, [{"containerPort": 80}]),
            _rs_pod("backend", "bbbbb", {"app": "backend"}, [{"containerPort": 8080}])]
    svc = service("backend", {"app": "api"}, [{"port": 80, "targetPort": 8080}], ns="shop")
    (f,) = dns.service_findings([svc], pods)
    assert f["observed"] == ("selector app=api matches no pod in namespace shop (backend-5d9c7b6f4-bbbbb has "
                             "app=backend); not proposed, as they declare no containerPort 8080/TCP: frontend")
    assert f["remediation"] == (
        "kubectl -n shop patch service backend -p '{\"spec\":{\"selector\":{\"app\":\"backend\"}}}' (the nearest "
        "workload that declares 8080/TCP: backend; or label its pods app=api)")
    assert f["details"]["candidates"] == ["backend"] and f["details"]["not_serving"] == ["frontend"]


@pytest.mark.parametrize("pods,expected", [
    # same labels matched: the workload name closest to the Service's wins
    ([("billing", {"app": "billing", "tier": "web"}), ("backend", {"app": "backend", "tier": "web"})],
     ["backend", "billing"]),
    # more selector pairs equal beats a closer name
    ([("backend", {"app": "backend"}), ("store", {"app": "store", "tier": "web"})], ["store", "backend"]),
    # a key present (with another value) beats a key missing
    ([("backend", {"role": "x"}), ("other", {"app": "other"})], ["other", "backend"]),
])
def test_service_selector_candidates_ranked_by_closeness(pods, expected):
    objs = [_rs_pod(w, "ccccc", labels, [{"containerPort": 8080, "name": "http"}]) for w, labels in pods]
    svc = service("backend", {"app": "api", "tier": "web"}, [{"port": 80, "targetPort": "http"}], ns="shop")
    (f,) = dns.service_findings([svc], objs)
    assert f["details"]["candidates"] == expected


def test_service_selector_with_no_pod_serving_the_port_says_so():
    pods = [_rs_pod("frontend", "aaaaa", {"app": "frontend"}, [{"containerPort": 80}])]
    svc = service("backend", {"app": "api"}, [{"port": 80, "targetPort": 8080}], ns="shop")
    (f,) = dns.service_findings([svc], pods)
    assert f["observed"] == ("selector app=api matches no pod in namespace shop; not proposed, as they declare no "
                             "containerPort 8080/TCP: frontend")
    assert f["remediation"] == (
        "no pod in namespace shop declares containerPort 8080/TCP, so no selector change gives this Service "
        "endpoints: deploy the pods it is meant for, declare the port in their containers, or change the Service's "
        "targetPort (kubectl -n shop get pods --show-labels)")
    assert "patch service" not in f["remediation"]


@pytest.mark.parametrize("name,owner,labels,expected", [
    ("backend-5d9c7b6f4-bbbbb", ("ReplicaSet", "backend-5d9c7b6f4"), {"pod-template-hash": "5d9c7b6f4"}, "backend"),
    ("db-0", ("StatefulSet", "db"), {}, "db"),
    ("web-7f9c8d6b5c-x2x9z", None, {}, "web"),
    ("standalone", None, {}, "standalone"),
])
def test_workload_name(name, owner, labels, expected):
    p = pod(name, labels=labels)
    if owner:
        p["metadata"]["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": True}]
    assert dns.workload_name(p) == expected


def test_service_port_mismatch():
    pods = [pod("backend-7f9c", labels={"app": "backend"}, ports=[{"containerPort": 8080, "name": "http"}])]
    found = dns.service_findings([service("backend", {"app": "backend"}, [{"port": 80, "targetPort": 80}])], pods)
    assert found[0]["observed"] == ("port 80 targetPort 80/TCP matches no containerPort of the 1 selected pod(s) "
                                    "(declared: http:8080/TCP)")
    assert '"value":8080' in found[0]["remediation"]


@pytest.mark.parametrize("svc_ports,pod_ports,ok", [
    ([{"port": 80, "targetPort": 8080}], [{"containerPort": 8080}], True),
    ([{"port": 80, "targetPort": "http"}], [{"containerPort": 8080, "name": "http"}], True),
    ([{"port": 80, "targetPort": "web"}], [{"containerPort": 8080, "name": "http"}], False),
    ([{"port": 8080}], [{"containerPort": 8080}], True),                    # targetPort defaults to port
    ([{"port": 80, "targetPort": 9999}], [], True),                         # no declared ports: cannot tell
    ([{"port": 53, "targetPort": 53, "protocol": "UDP"}], [{"containerPort": 53}], False),  # TCP only
])
def test_service_ports(svc_ports, pod_ports, ok):
    pods = [pod("p", labels={"app": "x"}, ports=pod_ports)]
    found = dns.service_findings([service("s", {"app": "x"}, svc_ports)], pods)
    assert (found == []) is ok


def test_service_without_selector_ignored():
    assert dns.service_findings([service("ext", None, [{"port": 80}])], []) == []


# -- cluster state: endpoints, CoreDNS ------------------------------------------------------------------
def coredns_pod(ready=True, message=""):
    p = {"metadata": {"name": "coredns-abc", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
         "spec": {"nodeName": "node1"},
         "status": {"phase": "Running", "podIP": "192.168.1.10",
                    "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                    "containerStatuses": [{"restartCount": 0 if ready else 5, "state": {"running": {}}}]}}
    if not ready:
        p["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
        p["status"]["containerStatuses"][0]["lastState"] = {"terminated": {"reason": "Error", "message": message}}
    return p


LOOP_MSG = '[FATAL] plugin/loop: Loop (127.0.0.1:41279 -> :53) detected for zone ".", see https://coredns.io/plugins/loop'


def test_crashloop_with_loop_hint():
    state = dns.summarize_cluster({"coredns_pods": [coredns_pod(False, LOOP_MSG)], "dns_service": {
        "metadata": {"name": "kube-dns"}, "spec": {"clusterIP": "10.96.0.10", "selector": {"k8s-app": "kube-dns"}}},
        "dns_slices": [{"endpoints": []}], "coredns_configmap": {"data": {"Corefile": DEFAULT_COREFILE}}})
    found = dns.coredns_findings(state, {"node1": ["127.0.0.53"]})
    assert len(found) == 1
    f = found[0]
    assert f["observed"] == ("CoreDNS pod coredns-abc on node1 is not ready: CrashLoopBackOff (restarts 5, last exit "
                             "Error): " + LOOP_MSG)
    assert "node1 -> 127.0.0.53" in f["why"]
    assert "resolvConf: /run/systemd/resolve/resolv.conf" in f["remediation"]
    assert "forward . 169.254.169.253" in f["remediation"]
    ends = dns.dns_endpoint_findings(state)
    assert [e["id"] for e in ends] == ["DNS_NO_ENDPOINTS"]
    assert ends[0]["observed"] == "Service kube-system/kube-dns (10.96.0.10) has no ready endpoints (1 EndpointSlice(s))"
    assert "none of the 1 CoreDNS pod(s) is Ready" in ends[0]["why"]


def test_crashloop_without_loop():
    state = dns.summarize_cluster({"coredns_pods": [coredns_pod(False, "plugin/kubernetes: bad config")],
                                   "coredns_configmap": {"data": {"Corefile": VPC_COREFILE}}})
    f = dns.coredns_findings(state, {"node1": ["127.0.0.53"]})[0]
    assert f["details"]["loop"] is False and "logs coredns-abc --previous" in f["remediation"]


def test_latent_loop_is_warning_and_healthy_is_silent():
    state = dns.summarize_cluster({"coredns_pods": [coredns_pod(True)],
                                   "coredns_configmap": {"data": {"Corefile": DEFAULT_COREFILE}}})
    assert [f["severity"] for f in dns.coredns_findings(state, {"node2": ["127.0.0.11"]})] == ["warning"]
    assert dns.coredns_findings(state, {"node2": ["10.0.0.2"]}) == []


def test_endpoints_from_slices():
    slices = [{"endpoints": [
        {"addresses": ["192.168.1.10"], "nodeName": "node1", "conditions": {"ready": True},
         "targetRef": {"name": "coredns-a"}},
        {"addresses": ["192.168.2.10"], "nodeName": "node2", "conditions": {"ready": False}},
        {"addresses": ["192.168.1.10"], "nodeName": "node1"}]}]
    assert dns.endpoints_from_slices(slices) == [{"ip": "192.168.1.10", "node": "node1", "pod": "coredns-a"}]


def test_no_endpoints_selector_mismatch():
    state = dns.summarize_cluster({"coredns_pods": [coredns_pod(True)], "dns_service": {
        "spec": {"clusterIP": "10.96.0.10", "selector": {"k8s-app": "coredns"}}}, "dns_slices": []})
    f = dns.dns_endpoint_findings(state)[0]
    assert "Service selector k8s-app=coredns does not select them" in f["why"]


# -- host path ---------------------------------------------------------------------------------------------
def q(target, server, status, name="kubernetes.default.svc.cluster.local", kind="cluster", node=""):
    return {"target": target, "server": server, "endpoint_node": node, "name": name, "kind": kind,
            "status": status, "answers": [], "ms": 1.0, "error": ""}


def host(node, queries, ns=("10.231.0.200",)):
    return {"node": node, "node_ip": "", "service_ip": "10.96.0.10", "queries": queries,
            "resolv_conf": {"path": "/etc/resolv.conf", "nameservers": list(ns)}}


EP = [("192.168.1.10", "node1"), ("192.168.2.10", "node2")]


def seed_results():
    """Seed SG: every node reaches only its own CoreDNS pod."""
    out = []
    for node in ("node1", "node2", "node3"):
        qs = [q("service", "10.96.0.10", "timeout" if node == "node3" else "ok")]
        qs += [q("endpoint", ip, "ok" if n == node else "timeout", node=n) for ip, n in EP]
        out.append(host(node, qs))
    return out


def test_seed_gives_cross_node_pairs_only():
    found = dns.host_findings(seed_results(), timeout=2.0)
    assert [(f["id"], f["where"]) for f in found] == [
        ("DNS_POD_UNREACHABLE", "node1 -> node2"), ("DNS_POD_UNREACHABLE", "node2 -> node1"),
        ("DNS_POD_UNREACHABLE", "node3 -> node1"), ("DNS_POD_UNREACHABLE", "node3 -> node2")]
    assert found[0]["observed"] == ("node1 cannot reach CoreDNS pod 192.168.2.10 on node2: timeout "
                                    "(the CoreDNS pod on node1 itself, 192.168.1.10, answers)")
    assert "UserIdGroupPairs" in found[0]["remediation"] and "UDP 4789" in found[0]["remediation"]
    assert "SG_NO_SELF_REF" in format_finding(found[0])


def test_healthy_hosts_pass():
    res = [host(n, [q("service", "10.96.0.10", "ok")] + [q("endpoint", ip, "ok", node=en) for ip, en in EP])
           for n in ("node1", "node2", "node3")]
    assert dns.host_findings(res) == []
    assert dns.node_summary(res)[0] == "node1: 1/1 names via 10.96.0.10, 2/2 CoreDNS endpoints answer (slowest 1 ms)"


def test_upstream_timeout():
    res = [host("node1", [q("service", "10.96.0.10", "ok"),
                          q("service", "10.96.0.10", "timeout", name="example.test", kind="external"),
                          q("endpoint", "192.168.1.10", "ok", node="node1")])]
    state = {"corefile": DEFAULT_COREFILE}
    found = dns.host_findings(res, state, 2.0)
    assert [f["id"] for f in found] == ["UPSTREAM_TIMEOUT"]
    assert found[0]["observed"] == ("example.test via the cluster DNS 10.96.0.10: timeout, while cluster names "
                                    "resolve (from node1)")
    assert "(/etc/resolv.conf), which does not answer within 2.0s" in found[0]["why"]


def test_upstream_timeout_seen_at_the_endpoints():
    res = []
    for node in ("node1", "node3"):
        qs = [q("service", "10.96.0.10", "ok"), q("service", "10.96.0.10", "timeout", name="example.test", kind="external")]
        for ip, en in EP:
            qs += [q("endpoint", ip, "ok", node=en),
                   q("endpoint", ip, "timeout", name="example.test", kind="external", node=en)]
        res.append(host(node, qs))
    found = dns.host_findings(res, {"corefile": VPC_COREFILE}, 1.0)
    assert [f["id"] for f in found] == ["UPSTREAM_TIMEOUT"]
    assert found[0]["observed"] == ("example.test: timeout from CoreDNS pod(s) 192.168.1.10 on node1, 192.168.2.10 "
                                    "on node2, which answer cluster names (queried from node1, node3)")
    assert "upstream (169.254.169.253)" in found[0]["why"]


def test_seed_external_timeouts_are_not_upstream():
    """Seed SG: the external name times out only at unreachable (cross-node) endpoints -> no UPSTREAM_TIMEOUT."""
    qs = [q("service", "10.96.0.10", "ok"), q("service", "10.96.0.10", "timeout", name="example.test", kind="external")]
    for ip, en in EP:
        st = "ok" if en == "node1" else "timeout"
        qs += [q("endpoint", ip, st, node=en), q("endpoint", ip, st, name="example.test", kind="external", node=en)]
    found = dns.host_findings([host("node1", qs)])
    assert [(f["id"], f["where"]) for f in found] == [("DNS_POD_UNREACHABLE", "node1 -> node2")]


def test_service_unreachable_but_endpoints_answer():
    res = [host("node1", [q("service", "10.96.0.10", "timeout"), q("endpoint", "192.168.1.10", "ok", node="node1")])]
    found = dns.host_findings(res)
    assert [f["id"] for f in found] == ["DNS_SERVICE_UNREACHABLE"]
    assert "kube-proxy" in found[0]["remediation"]


def test_nxdomain_user_name():
    res = [host("node1", [q("service", "10.96.0.10", "ok"),
                          q("service", "10.96.0.10", "nxdomain", name="web.shop.svc.cluster.local", kind="user")])]
    found = dns.host_findings(res)
    assert [f["id"] for f in found] == ["DNS_NAME_NOT_FOUND"]
    assert found[0]["observed"] == "10.96.0.10 answered NXDOMAIN for web.shop.svc.cluster.local (from node1)"


def test_same_node_endpoint_dead():
    res = [host("node1", [q("endpoint", "192.168.1.10", "refused", node="node1")])]
    found = dns.host_findings(res)
    assert found[0]["where"] == "node1 -> node1" and "does not answer even from its own node" in found[0]["observed"]


def test_node_mapped_by_ip():
    state = {"nodes": [{"name": "ip-10-0-1-5.ec2.internal", "ip": "10.0.1.5"}]}
    r = {"node": "worker-a", "node_ip": "10.0.1.5"}
    assert dns._node_of_host(r, state) == "ip-10-0-1-5.ec2.internal"


# -- pod path -------------------------------------------------------------------------------------------------
def test_probe_manifest_and_message():
    plan = dns.query_plan(["web.shop"], "example.test")
    m = dns.probe_pod_manifest("node2", plan, "busybox:1.36.1")
    spec = m["spec"]
    assert spec["nodeName"] == "node2" and spec["restartPolicy"] == "Never"
    c = spec["containers"][0]
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    script = c["command"][2]
    assert "/dev/termination-log" in script
    # every name is looked up at the same time (one lookup bound in all), the lines come back in plan order
    assert [line for line in script.splitlines() if line.startswith("probe ")] == [
        "probe %d %s %s &" % (i, name, kind) for i, (name, kind) in enumerate(plan)]
    assert "wait\n} | sort -n | cut -d ' ' -f 2- >> $m" in script
    msg = "dnsprobe/1\nkubernetes.default.svc.cluster.local cluster ok 10.96.0.1\nexample.test external timeout -\n"
    assert dns.parse_probe_message(msg) == [
        {"name": "kubernetes.default.svc.cluster.local", "kind": "cluster", "status": "ok", "answer": "10.96.0.1"},
        {"name": "example.test", "kind": "external", "status": "timeout", "answer": ""}]
    for bad in ("", "hello", "dnsprobe/1\nonly two"):
        with pytest.raises(ValueError):
            dns.parse_probe_message(bad)


@pytest.mark.parametrize("timeout,wait", [(0.5, 1), (1, 1), (1.5, 2), (2.0, 2), (2.5, 3)])
def test_probe_lookup_resends_every_half_second_within_its_bound(timeout, wait):
    """Each lookup gets ``timeout`` rounded up to whole seconds (busybox nslookup's -timeout) and resends every
    0.5 s within it (-retry: sends are timeout/retry apart), so one lost packet costs half a second; the
    ``timeout`` guard a second later only ends an nslookup that ignored the options.
    tests/integration/test_dns_probe_script.py runs the script with busybox against a lossy and a dead DNS."""
    script = dns.probe_script(dns.query_plan([], "example.test"), timeout)
    got = [tuple(int(v) for v in m) for m in re.findall(r"timeout (\d+) nslookup -timeout=(\d+) -retry=(\d+) ", script)]
    assert got == [(wait + 1, wait, 2 * wait)]
    assert dns.lookup_bound(timeout) == wait >= timeout
    assert wait / float(got[0][2]) == 0.5


@pytest.mark.parametrize("result,ids", [
    ({"outcome": "finished", "results": [{"name": "kubernetes.default.svc.cluster.local", "kind": "cluster",
                                          "status": "ok", "answer": "10.96.0.1"}]}, []),
    ({"outcome": "finished", "results": [{"name": "web.shop.svc.cluster.local", "kind": "user",
                                          "status": "nxdomain", "answer": ""}]}, ["DNS_NAME_NOT_FOUND"]),
    ({"outcome": "finished", "results": [{"name": "kubernetes.default.svc.cluster.local", "kind": "cluster",
                                          "status": "timeout", "answer": ""}]}, ["DNS_LOOKUP_FAILED"]),
    ({"outcome": "finished", "results": [
        {"name": "kubernetes.default.svc.cluster.local", "kind": "cluster", "status": "ok", "answer": "10.96.0.1"},
        {"name": "example.test", "kind": "external", "status": "timeout", "answer": ""}]}, ["DNS_LOOKUP_FAILED"]),
    ({"outcome": "timeout", "detail": "did not finish within 5s (phase Pending)", "results": []}, ["DNS_PROBE_FAILED"]),
])
def test_pod_findings(result, ids):
    result = dict(result, node="node1", pod="dns-probe-node1-abcde")
    assert [f["id"] for f in dns.pod_findings([result])] == ids


def test_pod_lookup_failure_is_an_observation_with_exact_text():
    """A probe pod cannot know which CoreDNS pod the service picked: it records what failed and what
    resolved, never "the upstream fails" (and never "via the cluster DNS cluster DNS")."""
    res = {"node": "node1", "pod": "dns-probe-node1-abcde", "outcome": "finished", "results": [
        {"name": "kubernetes.default.svc.cluster.local", "kind": "cluster", "status": "ok", "answer": "10.96.0.1"},
        {"name": "example.test", "kind": "external", "status": "timeout", "answer": ""}]}
    found = dns.pod_findings([res], timeout=1.5)
    assert len(found) == 1
    f = found[0]
    assert f["observed"] == ("probe pod default/dns-probe-node1-abcde on node1: example.test -> timeout; "
                             "kubernetes.default.svc.cluster.local resolved in the same pod")
    assert f["why"] == (
        "pods on node1 got no answer within 1.5s for these names through the cluster DNS service; the service "
        "sends each query to one of the CoreDNS pods, so a failure can come from the path to that CoreDNS pod "
        "(another node), a NetworkPolicy, kube-proxy, or the CoreDNS upstream for external names")
    assert f["details"]["external_only"] is True
    assert f["details"]["cluster_resolved"] == ["kubernetes.default.svc.cluster.local"]
    assert "cluster DNS cluster DNS" not in str(found) and "UPSTREAM_TIMEOUT" not in f["id"]
    every = dict(res, results=[dict(r, status="timeout") for r in res["results"]])
    g = dns.pod_findings([every])[0]
    assert g["observed"] == ("probe pod default/dns-probe-node1-abcde on node1: kubernetes.default.svc.cluster.local "
                             "-> timeout, example.test -> timeout")
    assert g["details"]["external_only"] is False


def test_analyze_combines_and_dedupes():
    state = dns.summarize_cluster({"coredns_pods": [coredns_pod(False, LOOP_MSG)],
                                   "coredns_configmap": {"data": {"Corefile": DEFAULT_COREFILE}}})
    static = dns.cluster_findings({}, state)
    res = [host("node1", [], ns=["127.0.0.53"])]
    found = dns.analyze(state, static, res, [])
    ids = [f["id"] for f in found]
    assert ids.count("COREDNS_NOT_READY") == 1 and "DNS_NO_ENDPOINTS" in ids
    loop = [f for f in found if f["id"] == "COREDNS_NOT_READY"][0]
    assert "node1 -> 127.0.0.53" in loop["why"]


# -- NetworkPolicy near misses in the DNS check (judged by analysis/netpol.py) -----------------------
TUTORIAL_ALLOW_DNS = policy("allow-dns", types=["Egress"], egress=[
    {"to": [{"namespaceSelector": {"matchLabels": {"name": "kube-system"}}}], "ports": [{"protocol": "UDP", "port": 53}]}])


def test_netpol_tutorial_allow_dns_names_the_label():
    """The tutorial's allow-dns selects namespaces by name=kube-system: no namespace carries it."""
    found = dns.netpol_findings([policy("deny-all"), TUTORIAL_ALLOW_DNS], [pod("web-1", labels={"app": "web"})],
                                NAMESPACES, STATE)
    assert [f["id"] for f in found] == ["NETPOL_BLOCKS_DNS"]
    f = found[0]
    assert f["observed"].endswith(
        "; nearest rule default/allow-dns egress rule 0: namespaceSelector name=kube-system does not select "
        "namespace kube-system (it carries kubernetes.io/metadata.name=kube-system)")
    # one patch fixes both the selector and the missing TCP 53, the full allow-dns policy stays as the fallback
    assert f["remediation"].startswith(
        "select namespace kube-system by the label the control plane sets (kubernetes.io/metadata.name=kube-system) "
        "in default/allow-dns egress rule 0; allow TCP 53 in default/allow-dns egress rule 0: kubectl -n default "
        "patch networkpolicy allow-dns --type=json -p '[{\"op\":\"replace\",\"path\":\"/spec/egress/0/to/0/"
        "namespaceSelector\",\"value\":{\"matchLabels\":{\"kubernetes.io/metadata.name\":\"kube-system\"}}},"
        "{\"op\":\"add\",\"path\":\"/spec/egress/0/ports/-\",\"value\":{\"port\":53,\"protocol\":\"TCP\"}}]'")
    assert "kubectl label namespace kube-system name=kube-system" in f["remediation"]
    assert "name: allow-dns, namespace: default" in f["remediation"]
    assert f["details"]["nearest"]["policy"] == "default/allow-dns"


def test_netpol_udp_only_is_a_warning_with_the_port_fix():
    found = dns.netpol_findings([policy("dns-udp", types=["Egress"], egress=[
        {"to": TO_DNS, "ports": [{"protocol": "UDP", "port": 53}]}])], [pod("web-1")], NAMESPACES, STATE)
    assert [(f["id"], f["severity"], f["details"]["blocked"]) for f in found] == [("NETPOL_BLOCKS_DNS", "warning", ["TCP"])]
    assert found[0]["details"]["nearest"]["why"] == ["ports: UDP 53 is not TCP"]
    assert '"path":"/spec/egress/0/ports/-","value":{"port":53,"protocol":"TCP"}' in found[0]["remediation"]


def test_netpol_named_dns_ports_resolve_on_listed_coredns_pods():
    """With the CoreDNS pod objects listed, named ports resolve on them: a CoreDNS that names its port
    'domain' is not reached by a rule allowing 'dns'."""
    core = pod("coredns-1", ns="kube-system", labels={"k8s-app": "kube-dns"}, ip="192.168.1.10",
               ports=[{"name": "domain", "containerPort": 53, "protocol": "UDP"},
                      {"name": "domain-tcp", "containerPort": 53, "protocol": "TCP"}])
    named = policy("named", types=["Egress"], egress=[
        {"ports": [{"protocol": "UDP", "port": "dns"}, {"protocol": "TCP", "port": "dns-tcp"}]}])
    found = dns.netpol_findings([named], [pod("web-1"), core], NAMESPACES, STATE)
    assert [f["details"]["blocked"] for f in found] == [["UDP", "TCP"]]
    assert "named port 'dns': pod kube-system/coredns-1 declares no UDP port of that name" in found[0]["observed"]
    assert dns.netpol_findings([named], [pod("web-1")], NAMESPACES, STATE) == []  # stand-in: kubeadm's names


def test_cluster_findings_do_not_repeat_the_explained_near_miss():
    objs = {"network_policies": [policy("deny-all"), TUTORIAL_ALLOW_DNS], "pods": [pod("web-1")],
            "namespaces": NAMESPACES, "services": []}
    state = dict(STATE, endpoints=STATE["endpoints"], service_found=True, coredns_pods=[
        dict(STATE["coredns_pods"][0], phase="Running", waiting_reason="", last_reason="", last_message="",
             restarts=0)])
    ids = [f["id"] for f in dns.cluster_findings(objs, state)]
    assert ids == ["NETPOL_BLOCKS_DNS"]


@pytest.mark.parametrize("cache_pods,op", [
    (True, "add"),        # the rule's podSelector serves node-local-dns pods: they keep their access, CoreDNS gets a peer
    (False, "replace"),   # it selects no pod at all: corrected in place
], ids=["serves-other-pods", "selects-nothing"])
def test_netpol_dns_fix_keeps_what_the_policy_allowed(cache_pods, op):
    """The near-miss fix of the dns check is netpol's (as the paths check's): a podSelector that serves other
    pods is left as it is and a peer for CoreDNS is added, so the fixed policy still allows what it allowed
    and now allows DNS."""
    web = pod("web-1", labels={"app": "web"})
    core = pod("coredns-1", ns="kube-system", labels={"k8s-app": "kube-dns"}, ip="192.168.1.10",
               ports=[{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                      {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}])
    cache = pod("node-cache-1", ns="kube-system", labels={"k8s-app": "node-local-dns"}, ip="192.168.1.30")
    pods = [web, core] + ([cache] if cache_pods else [])
    to_cache = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                 "podSelector": {"matchLabels": {"k8s-app": "node-local-dns"}}}]
    policies = [policy("deny-all"), policy("egress-dns-cache", types=["Egress"],
                                           egress=[{"to": to_cache, "ports": DNS_PORTS}])]
    [f] = dns.netpol_findings(policies, pods, NAMESPACES, STATE)
    assert f["id"] == "NETPOL_BLOCKS_DNS" and f["details"]["nearest"]["policy"] == "default/egress-dns-cache"
    assert cat.is_one_command(f["cli"]), f["cli"]
    ops = json.loads(re.search(r"-p '(.*)'$", f["cli"]).group(1))
    assert [o["op"] for o in ops] == [op]
    if op == "add":
        assert ops == [{"op": "add", "path": "/spec/egress/0/to/-", "value": {
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}}]
        assert "node-cache-1, which keep their access" in f["remediation"]
    before = {proto: netpol.allowed(web, cache, 53, proto, policies, NAMESPACES, pods)["allowed"]
              for proto in ("UDP", "TCP")}
    patch_networkpolicy(policies, f["cli"])
    # what the policy allowed, it still allows (the cache pods, where there are any); DNS to CoreDNS now passes
    if cache_pods:
        assert before == {"UDP": True, "TCP": True}
        assert all(netpol.allowed(web, cache, 53, proto, policies, NAMESPACES, pods)["allowed"] for proto in ("UDP", "TCP"))
    assert all(netpol.allowed(web, core, 53, proto, policies, NAMESPACES, pods)["allowed"] for proto in ("UDP", "TCP"))
    assert dns.netpol_findings(policies, pods, NAMESPACES, STATE) == []
