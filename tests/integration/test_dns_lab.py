"""The whole validate_dns role through ansible-playbook against the DNS lab: node namespaces with
iptables as the security group, dnsmasq "CoreDNS pods" on node1 and node2 behind the service VIP
10.96.0.10 (kube-proxy-like DNAT), an upstream dnsmasq, and the Kubernetes API fake describing the same
cluster. The probe pods are run by a fake kubelet that resolves for real from the pod's node.

Needs root (network namespaces). Each test builds its own lab (unique prefix) and tears it down.
"""

import os
import sys

import pytest

from tests.fakes.k8s_api import FakeKubeAPI
from tests.lab.dnslab import LOOP_COREFILE, DnsLab, LabKubelet, run_playbook, task_results
from tests.lab.netlab import SEED_SG

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the network lab needs root")

TIMEOUT = 1.0
HEALTHY_COREFILE = LOOP_COREFILE.replace("forward . /etc/resolv.conf", "forward . 10.231.0.200")


def run_lab(dnslab, tmp_path, corefile=HEALTHY_COREFILE, coredns_state="ready", **evars):
    fake = FakeKubeAPI().start()
    kubelet = LabKubelet(dnslab, timeout=int(TIMEOUT))
    try:
        fake.cluster.add_all(dnslab.k8s_objects(corefile=corefile, coredns_state=coredns_state))
        fake.cluster.on_create["pods"] = kubelet
        kubeconfig = fake.write_kubeconfig(str(tmp_path / "kubeconfig"))
        base = {"validate_dns_kubeconfig": kubeconfig, "validate_dns_external_name": "example.test",
                "validate_dns_timeout": TIMEOUT, "validate_dns_probe_timeout": 15}
        base.update(evars)
        # the venv's python (not its realpath) runs the node task inside the node namespaces
        inventory = dnslab.inventory(python=sys.executable)
        rc, res, wall, out, report = run_playbook("dns_validate.yml", inventory, base, timeout=240)
        kubelet.join()
        leftover = [p["metadata"]["name"] for p in fake.cluster.objects("api/v1", "pods")
                    if p["metadata"]["namespace"] == "default"]
        run_lab.report = report
        return rc, res, wall, out, leftover
    finally:
        fake.stop()


def ids(res, severity="error"):
    return sorted({f["id"] for f in res.get("findings", []) if f["severity"] == severity})


def test_healthy_lab_passes(tmp_path):
    with DnsLab(3) as lab:
        rc, res, wall, out, leftover = run_lab(lab, tmp_path)
    assert rc == 0, out
    assert res["findings"] == [], out
    assert [line.split(":")[0] for line in res["summary"]] == ["node1", "node2", "node3"]
    assert all("2/2 names via 10.96.0.10, 2/2 CoreDNS endpoints answer" in line and "probe pod ok" in line
               for line in res["summary"]), res["summary"]
    assert leftover == []


def test_seed_sg_fails_with_cross_node_pairs_only(tmp_path):
    with DnsLab(3, sg=SEED_SG) as lab:
        rc, res, wall, out, leftover = run_lab(lab, tmp_path, validate_dns_pod_probe=False)
    assert rc != 0, out
    pairs = sorted(f["where"] for f in res["findings"] if f["id"] == "DNS_POD_UNREACHABLE")
    assert pairs == ["node1 -> node2", "node2 -> node1", "node3 -> node1", "node3 -> node2"], out
    f = [x for x in res["findings"] if x["where"] == "node1 -> node2"][0]
    assert f["observed"] == ("node1 cannot reach CoreDNS pod 192.168.2.10 on node2: timeout "
                             "(the CoreDNS pod on node1 itself, 192.168.1.10, answers)")
    assert "UserIdGroupPairs" in f["remediation"]
    # the service-IP failures of the seed are explained by the pairs, not reported separately, and the
    # external name failing at unreachable endpoints is not mistaken for an upstream problem
    assert ids(res) == ["DNS_POD_UNREACHABLE"], out
    assert "DNS_POD_UNREACHABLE" in res["msg"]


def test_blackholed_upstream_and_loop(tmp_path):
    """Upstream drops DNS -> UPSTREAM_TIMEOUT within the timeout; nodes' resolv.conf on 127.0.0.53 with the
    default Corefile and CrashLoopBackOff CoreDNS -> COREDNS_NOT_READY with the loop hint naming the nodes."""
    with DnsLab(3, node_resolver="127.0.0.53") as lab:
        lab.blackhole_upstream()
        rc, res, wall, out, leftover = run_lab(lab, tmp_path, corefile=LOOP_COREFILE, coredns_state="crashloop",
                                               validate_dns_endpoints=lab.endpoints())
    assert rc != 0, out
    assert ids(res) == ["COREDNS_NOT_READY", "DNS_LOOKUP_FAILED", "DNS_NO_ENDPOINTS", "UPSTREAM_TIMEOUT"], out
    up = [f for f in res["findings"] if f["id"] == "UPSTREAM_TIMEOUT"]
    assert len(up) == 1  # from the nodes, which ask every CoreDNS pod directly
    assert up[0]["where"] == "node1, node2, node3"
    assert up[0]["observed"] == ("example.test: timeout from CoreDNS pod(s) 192.168.1.10 on node1, 192.168.2.10 on "
                                 "node2, which answer cluster names (queried from node1, node2, node3)")
    # the probe pods record what they saw: the external name failed while cluster names resolved
    pods = [f for f in res["findings"] if f["id"] == "DNS_LOOKUP_FAILED"]
    assert sorted(f["where"] for f in pods) == ["node1", "node2", "node3"]
    assert all(f["details"]["external_only"] and f["details"]["names"] == ["example.test"] for f in pods), pods
    # within the timeout: every node's queries run in parallel, each bounded by the 1 s query timeout
    host = task_results(run_lab.report, "Probe from this node (peer reachability and the DNS host path, one task)")
    assert sorted(host) == ["node1", "node2", "node3"]
    for node, result in host.items():
        assert result["dns"]["elapsed"] < TIMEOUT + 2.0, (node, result["dns"]["elapsed"])
        slowest = max(q["ms"] for q in result["dns"]["queries"])
        assert TIMEOUT * 1000 - 50 <= slowest < TIMEOUT * 1000 + 1000, (node, slowest)
    loop = [f for f in res["findings"] if f["id"] == "COREDNS_NOT_READY"][0]
    assert "node1 -> 127.0.0.53, node2 -> 127.0.0.53, node3 -> 127.0.0.53" in loop["why"]
    assert "resolvConf: /run/systemd/resolve/resolv.conf" in loop["remediation"]
    assert leftover == []
