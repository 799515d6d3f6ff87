"""Near misses: NetworkPolicy parts that look meant to allow a flow but match nothing (netpol.near_miss_findings).
Each rule both ways: the part matching nothing gives one warning naming it and the minimal fix; the same
policy with the part fixed gives none."""

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import netpol

NAMESPACES = [{"metadata": {"name": "shop", "labels": {"team": "shop"}}}, {"metadata": {"name": "kube-system"}}]


def pod(name, ns, labels, ports=(), phase="Running", host=False):
    spec = {"containers": [{"name": "c", "ports": [dict(p) for p in ports]}]}
    if host:
        spec["hostNetwork"] = True
    return {"metadata": {"name": name, "namespace": ns, "labels": labels}, "spec": spec,
            "status": {"phase": phase, "podIP": "192.168.1.%d" % (len(name) + 10)}}


PODS = [pod("backend-1", "shop", {"app": "backend"}, [{"name": "http", "containerPort": 8080}]),
        pod("web-1", "shop", {"app": "web"}),
        pod("coredns-1", "kube-system", {"k8s-app": "kube-dns"}, [{"name": "dns", "containerPort": 53, "protocol": "UDP"}])]


def np(name, selector=None, ingress=None, egress=None, types=None):
    spec = {"podSelector": {} if selector is None else selector}
    if types:
        spec["policyTypes"] = types
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return {"metadata": {"name": name, "namespace": "shop"}, "spec": spec}


def ids(found):
    return [(f["id"], f["severity"], f["details"]["part"]) for f in found]


def test_namespace_selector_no_namespace_carries():
    pol = np("allow-dns", types=["Egress"], egress=[{"to": [{"namespaceSelector": {"matchLabels": {"name": "kube-system"}}}]}])
    found = netpol.near_miss_findings([pol], NAMESPACES, PODS)
    assert ids(found) == [("NETPOL_NEAR_MISS", "warning", "namespaceSelector")]
    assert found[0]["observed"] == (
        "shop/allow-dns egress rule 0 peer 0: namespaceSelector name=kube-system selects no namespace (namespace "
        "kube-system carries kubernetes.io/metadata.name=kube-system, not name=kube-system)")
    assert found[0]["remediation"] == (
        "kubectl -n shop patch networkpolicy allow-dns --type=json -p '[{\"op\":\"replace\",\"path\":\"/spec/egress/0/"
        "to/0/namespaceSelector\",\"value\":{\"matchLabels\":{\"kubernetes.io/metadata.name\":\"kube-system\"}}}]' "
        "(or kubectl label namespace kube-system name=kube-system)")


def test_namespace_selector_fixed_is_quiet():
    pol = np("allow-dns", types=["Egress"], egress=[{"to": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}]}])
    assert netpol.near_miss_findings([pol], NAMESPACES, PODS) == []


def test_namespace_selector_nothing_near():
    pol = np("p", ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"env": "prod"}}}]}])
    found = netpol.near_miss_findings([pol], NAMESPACES, PODS)
    assert ids(found) == [("NETPOL_NEAR_MISS", "warning", "namespaceSelector")]
    assert found[0]["observed"] == "shop/p ingress rule 0 peer 0: namespaceSelector env=prod selects no namespace"
    assert "kubernetes.io/metadata.name: <namespace>" in found[0]["remediation"]


def test_pod_selector_matching_no_pod():
    pol = np("api-in", selector={"matchLabels": {"app": "backend"}},
             ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}]}])
    found = netpol.near_miss_findings([pol], NAMESPACES, PODS)
    assert ids(found) == [("NETPOL_NEAR_MISS", "warning", "podSelector")]
    assert found[0]["observed"] == ("shop/api-in ingress rule 0 peer 0: podSelector app=frontend selects no pod in "
                                    "namespace(s) shop (backend-1 has app=backend; web-1 has app=web)")
    assert '"path":"/spec/ingress/0/from/0/podSelector","value":{"matchLabels":{"app":"backend"}}' in found[0]["remediation"]


def test_pod_selector_other_namespace_without_namespace_selector():
    """k8s-app=kube-dns exists, but only in kube-system: a podSelector alone looks in shop."""
    pol = np("dns", types=["Egress"], egress=[{"to": [{"podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]}])
    found = netpol.near_miss_findings([pol], NAMESPACES, PODS)
    assert ids(found) == [("NETPOL_NEAR_MISS", "warning", "podSelector")]
    assert "policy's own namespace (shop) only" in found[0]["why"]


def test_pod_selector_with_namespace_selector_matching():
    pol = np("dns", types=["Egress"], egress=[{"to": [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]}])
    assert netpol.near_miss_findings([pol], NAMESPACES, PODS) == []


@pytest.mark.parametrize("port,found_ids", [
    ("http", []),
    ("web", [("NETPOL_NEAR_MISS", "warning", "port")]),
    (8080, []),
])
def test_named_port_ingress(port, found_ids):
    pol = np("in", selector={"matchLabels": {"app": "backend"}}, ingress=[{"ports": [{"port": port}]}])
    found = netpol.near_miss_findings([pol], NAMESPACES, PODS)
    assert ids(found) == found_ids
    if found:
        assert found[0]["observed"] == ("shop/in ingress rule 0: named port 'web' (TCP) is declared by no container "
                                        "of the 1 destination pod(s) (named ports there: http:8080/TCP)")


@pytest.mark.parametrize("proto,port,bad", [("UDP", "dns", False), ("TCP", "dns", True), ("UDP", "domain", True)])
def test_named_port_egress_on_peer_pods(proto, port, bad):
    pol = np("out", types=["Egress"], egress=[{"to": [{"namespaceSelector": {}, "podSelector": {
        "matchLabels": {"k8s-app": "kube-dns"}}}], "ports": [{"protocol": proto, "port": port}]}])
    assert bool(netpol.near_miss_findings([pol], NAMESPACES, PODS)) is bad


def test_policy_selecting_nothing_is_a_warning():
    pol = np("api", selector={"matchLabels": {"app": "api"}}, ingress=[{}])
    found = netpol.near_miss_findings([pol], NAMESPACES, PODS)
    assert ids(found) == [("NETPOL_SELECTS_NOTHING", "warning", "podSelector")]
    assert found[0]["observed"] == ("NetworkPolicy shop/api: podSelector app=api selects no pod in namespace shop "
                                    "(backend-1 has app=backend; web-1 has app=web)")
    assert '"path":"/spec/podSelector","value":{"matchLabels":{"app":"backend"}}' in found[0]["remediation"]


def test_policy_selecting_only_finished_or_host_pods_selects_nothing():
    pods = [pod("job-1", "shop", {"app": "job"}, phase="Succeeded"), pod("agent", "shop", {"app": "job"}, host=True)]
    found = netpol.near_miss_findings([np("job", selector={"matchLabels": {"app": "job"}})], NAMESPACES, pods)
    assert ids(found) == [("NETPOL_SELECTS_NOTHING", "warning", "podSelector")]
    assert netpol.near_miss_findings([np("job", selector={"matchLabels": {"app": "job"}})], NAMESPACES,
                                     pods + [pod("job-2", "shop", {"app": "job"})]) == []
