"""The paths check against the lab: probe pods' own scripts run for real by the lab kubelet in node
namespaces (tests/lab/dnslab.py LabKubelet), resolving through the lab's CoreDNS behind the service VIP
and connecting through the ClusterIP DNAT to a listener in a pod namespace (tests/lab/applab.py).

The seeds' app: marketplace (node2) calls recommendations:50051 (a pod on node3)."""

import copy
import json
import os
import re
import tempfile

import pytest
import yaml

from tests.fakes.k8s_api import FakeKubeAPI
from tests.lab.applab import LabService
from tests.lab.dnslab import DnsLab, LabKubelet, localhost_inventory, run_playbook
from tests.lab.netlab import HEALTHY_SG, SEED_SG
from tests.lab.validatelab import ValidateLab

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (network namespaces)")

TASK = "Judge the application paths from the cluster objects"
PATH = {"from": {"namespace": "shop", "selector": {"app": "marketplace"}}, "to": "recommendations.shop:50051"}


def shop_objects(image="registry.example/marketplace:v1"):
    """The shop namespace and the marketplace Deployment with its pod on node2."""
    labels = {"app": "marketplace"}
    container = {"name": "web", "image": image, "ports": [{"containerPort": 8080}]}
    return [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": "shop", "labels": {"kubernetes.io/metadata.name": "shop"}}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "marketplace", "namespace": "shop"},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "marketplace-5d9c7b6f4-abcde", "namespace": "shop",
                                                         "labels": labels},
         "spec": {"nodeName": "node2", "containers": [container]},
         "status": {"phase": "Running", "podIP": "192.168.2.20", "conditions": [{"type": "Ready", "status": "True"}]}},
    ]


@pytest.fixture(scope="module")
def lab():
    recs = LabService("recommendations", "shop", "10.96.80.12", 50051, node="node3")
    dnslab = DnsLab(nodes=3, sg=HEALTHY_SG, records=recs.records()).start()
    api = kubelet = None
    try:
        recs.start(dnslab)
        api = FakeKubeAPI().start()
        api.cluster.add_all(dnslab.k8s_objects() + shop_objects() + recs.k8s_objects())
        # the probe pods go where marketplace runs
        kubelet = LabKubelet(dnslab, schedule=lambda pod: "node2")
        api.cluster.on_create["pods"] = kubelet
        kubeconfig = api.write_kubeconfig(os.path.join(tempfile.mkdtemp(prefix="kpathslab-"), "kubeconfig"))
        yield dnslab, api, kubeconfig
    finally:
        if kubelet is not None:
            kubelet.join()
        if api is not None:
            api.stop()
        dnslab.stop()


def run_role(kubeconfig, **evars):
    extra = {"validate_paths_kubeconfig": kubeconfig, "validate_paths": [PATH], "validate_paths_probe_timeout": 40,
             "validate_paths_fail_on_findings": False}
    extra.update(evars)
    rc, res, _wall, out, _report = run_playbook("validate_paths.yml", localhost_inventory(), extra, timeout=240,
                                                result_task=TASK)
    assert rc == 0, out
    return res


def test_probe_pod_resolves_and_connects_on_the_healthy_lab(lab):
    _dnslab, api, kubeconfig = lab
    res = run_role(kubeconfig)
    assert res["status"] == "passed" and res["findings"] == [], res["msg"]
    [path] = res["evidence"]["paths"]
    assert path["verdict"] == "ok"
    assert {k: v["status"] for k, v in path["layers"].items()} == {
        "dns": "ok", "service": "ok", "netpol": "ok", "connect": "ok"}
    assert path["layers"]["connect"]["detail"] == "connected from the source namespace"
    # the probe pod is gone
    assert [p for p in api.cluster.objects("api/v1", "pods") if p["metadata"]["name"].startswith("path-probe-")] == []


def test_seed_group_times_out_across_the_node_pair(lab):
    """Without the self-reference, node2 reaches neither the CoreDNS pod on node1 nor recommendations on
    node3: whichever CoreDNS pod the lookup reached, the finding names the pair it timed out across."""
    dnslab, _api, kubeconfig = lab
    dnslab.lab.apply_sg(SEED_SG)
    try:
        res = run_role(kubeconfig)
    finally:
        dnslab.lab.apply_sg(HEALTHY_SG)
    [f] = res["findings"]
    d = f["details"]
    assert f["id"] == "PATH_BLOCKED" and d["observed_by"] == "probe" and d["probe_status"] == "timeout", f
    assert d["src_node"] == "node2"
    if d["layer"] == "dns":  # the lookup went to the CoreDNS pod on node1
        assert (d["dst_node"], d["dst_nodes"], d["protocol"], d["port"]) == ("node1", ["node1", "node2"], "udp", 53)
    else:  # it reached the one on node2, then the connect to node3 timed out
        assert d["layer"] == "connect"
        assert (d["dst_node"], d["dst_nodes"], d["protocol"], d["port"]) == ("node3", ["node3"], "tcp", 50051)


# -- through playbooks/validate.yml ---------------------------------------------------------------------
# recommendations admits only the shop's web frontend: marketplace is denied at recommendations' ingress
ONLY_WEB = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "recommendations-from-web", "namespace": "shop"},
            "spec": {"podSelector": {"matchLabels": {"app": "recommendations"}}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                                  "ports": [{"protocol": "TCP", "port": "grpc"}]}]}}


@pytest.fixture(scope="module")
def vlab():
    recs = LabService("recommendations", "shop", "10.96.80.12", 50051, node="node3")
    vl = ValidateLab(nodes=3, records=recs.records()).start()
    try:
        recs.image = "%s/app:v1" % vl.registry.host  # in the lab registry for both arches: image_arch passes
        recs.start(vl.dnslab)
        vl.api.cluster.add_all(shop_objects(recs.image) + recs.k8s_objects())
        vl.kubelet.schedule = lambda pod: "node2"  # the probe pods go where marketplace runs
        yield vl
    finally:
        vl.stop()


def validate(vl, **evars):
    extra = {"validate_paths": [PATH], "validate_paths_probe_timeout": 40,
             # the live pod mesh needs the mesh lab's kubelet (tests/lab/meshlab.py, test_mesh_lab.py)
             "validate_paths_mesh": False,
             # ValidateLab writes the API fake's kubeconfig there (validate_dns_kubeconfig)
             "validate_paths_kubeconfig": os.path.join(vl.work, "kubeconfig")}
    extra.update(evars)
    rc, report, _wall, out = vl.validate(extra)
    assert report is not None, out[-4000:]
    return rc, report, out


def test_validate_runs_paths_and_a_healthy_path_passes(vlab):
    rc, report, out = validate(vlab)
    assert rc == 0, out[-4000:]
    assert report["headline"] == "healthy", report["headline"]
    paths = report["checks"]["paths"]
    assert paths["status"] == "passed" and paths["findings"] == []
    [path] = paths["evidence"]["paths"]
    assert path["verdict"] == "ok" and {k: v["status"] for k, v in path["layers"].items()} == {
        "dns": "ok", "service": "ok", "netpol": "ok", "connect": "ok"}


def test_validate_writes_the_dns_result_file(vlab):
    """validate_dns_result_file (a user variable of the dns check) still gets the dns check's own
    result when validate.yml runs the check; nothing is written there for a check that did not run."""
    path = os.path.join(vlab.work, "dns-result.json")
    rc, report, out = validate(vlab, validate_dns_result_file=path, validate_paths=[])
    assert rc == 0, out[-4000:]
    with open(path) as fh:
        written = json.load(fh)
    assert written == report["checks"]["dns"] and written["status"] == "passed"
    assert written["evidence"]["host_results"], written
    os.unlink(path)
    rc, report, out = validate(vlab, validate_dns_result_file=path, validate_checks=["node_reachability"])
    assert rc == 0 and report["checks"]["dns"]["status"] == "skipped", out[-4000:]
    assert not os.path.exists(path)


def test_validate_policy_denied_path_is_one_finding_with_the_policy_and_the_fix(vlab):
    vlab.api.cluster.add(copy.deepcopy(ONLY_WEB))
    # the shop's web frontend (ValidateLab's Deployment web), running: the policy admits it
    image = "%s/app:v1" % vlab.registry.host
    vlab.api.cluster.add({"apiVersion": "v1", "kind": "Pod",
                          "metadata": {"name": "web-7f9c8d6b5-q4w2e", "namespace": "shop", "labels": {"app": "web"}},
                          "spec": {"nodeName": "node1", "containers": [{"name": "web", "image": image}]},
                          "status": {"phase": "Running", "podIP": "192.168.1.40",
                                     "conditions": [{"type": "Ready", "status": "True"}]}})
    try:
        # the static verdicts alone: no probe pod is started
        before = len([1 for m, p in vlab.api.cluster.requests if m == "POST" and p.endswith("/pods")])
        rc, report, out = validate(vlab, validate_paths_probe=False)
        after = len([1 for m, p in vlab.api.cluster.requests if m == "POST" and p.endswith("/pods")])
        assert rc != 0, out[-4000:]
        # (the dns check's probe pods are the only pods created)
        assert after - before == len(vlab.lab.nodes)
        [f] = report["checks"]["paths"]["findings"]
        assert (f["id"], f["details"]["layer"], f["details"]["observed_by"]) == ("PATH_BLOCKED", "netpol", "objects")
        assert f["details"]["object"] == "networkpolicy shop/recommendations-from-web"
        assert "pod shop/recommendations-6c5d8f7b9-k2x4p is isolated for ingress by shop/recommendations-from-web" \
            in f["observed"]
        # the minimal fix: a peer for marketplace in the rule that admits web (web keeps its access) ...
        assert f["cli"] == (
            "kubectl -n shop patch networkpolicy recommendations-from-web --type=json -p '[{\"op\":\"add\",\"path\":"
            "\"/spec/ingress/0/from/-\",\"value\":{\"podSelector\":{\"matchLabels\":{\"app\":\"marketplace\"}}}}]'")
        # ... or a policy of its own: recommendations' ingress from marketplace on grpc, nothing on marketplace's egress
        policies = [yaml.safe_load(doc) for doc in re.findall(r"<<'EOF'\n(.*?)\nEOF", f["remediation"], re.S)]
        assert [(p["metadata"]["name"], p["spec"]["policyTypes"], p["spec"]["podSelector"]) for p in policies] == [
            ("allow-marketplace-to-recommendations-50051-ingress", ["Ingress"],
             {"matchLabels": {"app": "recommendations"}})]
        assert policies[0]["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": "grpc"}]
        # one root cause, the path's own, with that one command; nothing else is wrong with the lab
        assert [c["id"] for c in report["root_causes"]] == ["PATH_BLOCKED"], report["headline"]
        assert report["root_causes"][0]["fix"]["cli"] == f["cli"] and report["unexplained"] == []
        # probed: the lab's network does not enforce NetworkPolicy, the probe connects, one warning, no block
        rc, report, out = validate(vlab)
        assert rc == 0, out[-4000:]
        assert [(x["id"], x["severity"]) for x in report["checks"]["paths"]["findings"]] == [
            ("NETPOL_NOT_ENFORCED", "warning")]
        assert report["root_causes"] == []
    finally:
        vlab.api.cluster.delete("apis/networking.k8s.io/v1", "networkpolicies", "shop", "recommendations-from-web")
        vlab.api.cluster.delete("api/v1", "pods", "shop", "web-7f9c8d6b5-q4w2e")
