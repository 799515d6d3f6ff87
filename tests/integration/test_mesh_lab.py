"""The live pod mesh in the lab (tests/lab/meshlab.py), through the role's task file (validate_paths
tasks_from: mesh), the mesh_probe module, the real ``kubernetes`` client and the API fake, with the probe
pods' own script run in pod namespaces behind the lab nodes:

* healthy SG: every cell passes (pod-to-pod same node and across nodes over IPIP, the kube-dns ClusterIP
  through the DNAT, the external host through the node's NAT);
* seed SG (no self-reference: neither tcp/179 nor IP protocol 4 between nodes): every cross-node pod
  cell fails, every same-node cell passes, the Service column fails exactly on the nodes without a
  CoreDNS pod, egress passes; the diagnosis puts the cross-node cells down to the blocked node pairs;
* external host black-holed: only the egress column fails, and it stays its own cause;
* seed SG fixed in place (MeshLab.apply_sg, as `make demo` does): BGP peers, the pod routes appear, every
  cell passes.

Traffic goes only to namespaces the lab creates. Needs root, iproute2, iptables, busybox, dnsmasq.
"""

import os
import shutil

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import diagnosis
from tests.fakes.k8s_api import FakeKubeAPI
from tests.lab.dnslab import localhost_inventory, run_playbook
from tests.lab.meshlab import MeshLab
from tests.lab.netlab import HEALTHY_SG, SEED_SG

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("busybox") or not shutil.which("dnsmasq"),
                                reason="the mesh lab needs root, busybox and dnsmasq")

NODES = ("node1", "node2", "node3")


def run_mesh(sg, blackhole_external=False, fixed_sg=None):
    with MeshLab(nodes=3, sg=sg, coredns_nodes=("node1",)) as lab, FakeKubeAPI() as api:
        if blackhole_external:
            lab.blackhole_external()
        if fixed_sg is not None:
            assert lab.routes == {}, lab.routes  # no BGP, no pod route
            lab.apply_sg(fixed_sg)
            assert {n: sorted(p) for n, p in lab.routes.items()} == {n: [p for p in NODES if p != n] for n in NODES}
        api.cluster.add_all(lab.k8s_objects())
        kubelet = lab.kubelet()
        kubelet.install(api.cluster)
        extra = {"validate_paths_kubeconfig": api.write_kubeconfig(), "validate_paths_external": lab.external,
                 "validate_paths_mesh_pods_per_node": 2, "validate_paths_mesh_connect_timeout": 3,
                 "validate_paths_mesh_start_timeout": 40, "validate_paths_mesh_probe_timeout": 60}
        rc, res, wall, out, _report = run_playbook("validate_paths_mesh.yml", localhost_inventory(), extra,
                                                   timeout=240, result_task="Run the live pod mesh")
        leftover = [p["metadata"]["name"] for p in api.cluster.objects("api/v1", "pods")
                    if p["metadata"].get("namespace") == "default"]
        kubelet.join()
        pod_ns = [n for n in os.popen("ip netns list").read().split() if n.startswith(lab.prefix + "-n")
                  and "-mp" in n]
    assert rc == 0, out
    assert "check" in res, out
    assert leftover == [] and pod_ns == [], (leftover, pod_ns)  # every probe pod deleted, its namespace gone
    return res, wall, out


def cells(res):
    return res["check"]["evidence"]["mesh"]


def test_healthy_sg_every_cell_passes():
    res, wall, out = run_mesh(HEALTHY_SG)
    rows = cells(res)
    assert [r["outcome"] for r in res["pod_results"]] == ["finished"] * 6, out
    # 6 pods: 5 peers x tcp/udp + Service + external each
    assert len(rows) == 6 * (5 * 2 + 2), out
    assert [r for r in rows if not r["ok"]] == [], out
    assert {r["kind"] for r in rows} == {"pod", "service", "external"}
    assert any(r["kind"] == "pod" and r["src_node"] == r["dst_node"] for r in rows)  # same-node cells exist
    assert res["check"]["status"] == "passed" and res["check"]["findings"] == []
    print("mesh wall (healthy, 3 nodes x 2 pods): module %.1fs, timings %s, playbook %.1fs"
          % (res["elapsed"], res["timings"], wall))


def test_seed_sg_fixed_in_place_every_cell_passes():
    res, _wall, out = run_mesh(SEED_SG, fixed_sg=HEALTHY_SG)
    rows = cells(res)
    assert len(rows) == 72 and [r for r in rows if not r["ok"]] == [], out
    assert res["check"]["status"] == "passed"


def test_seed_sg_cross_node_cells_fail_same_node_pass():
    res, wall, out = run_mesh(SEED_SG)
    rows = cells(res)
    pod_rows = [r for r in rows if r["kind"] == "pod"]
    cross = [r for r in pod_rows if r["src_node"] != r["dst_node"]]
    same = [r for r in pod_rows if r["src_node"] == r["dst_node"]]
    assert cross and all(not r["ok"] for r in cross), [r for r in cross if r["ok"]]
    assert same and all(r["ok"] for r in same), [r for r in same if not r["ok"]]
    svc = {(r["src_node"], r["ok"]) for r in rows if r["kind"] == "service"}
    assert svc == {("node1", True), ("node2", False), ("node3", False)}, svc  # CoreDNS runs on node1 only
    assert all(r["ok"] for r in rows if r["kind"] == "external"), out
    found = res["check"]["findings"]
    pod_f = [f for f in found if f["id"] == "POD_PATH_BLOCKED"]
    assert sorted((f["details"]["src_node"], f["details"]["dst_node"], f["details"]["protocol"]) for f in pod_f) == \
        sorted((s, d, p) for s in NODES for d in NODES if s != d for p in ("tcp", "udp"))
    assert sorted(f["details"]["src_node"] for f in found if f["id"] == "SERVICE_PATH_BLOCKED") == ["node2", "node3"]
    assert {f["id"] for f in found} == {"POD_PATH_BLOCKED", "SERVICE_PATH_BLOCKED"}
    # the diagnosis: the blocked node pairs (as node_reachability reports them in this lab) explain every cell
    pairs = [{"id": "NODE_PORT_BLOCKED", "severity": "error", "where": "%s -> %s" % (s, d), "observed": "dropped",
              "why": "", "remediation": "", "details": {"src": s, "dst": d, "checks": ["ipip", "bgp"],
                                                        "ports": [{"proto": "4", "port": None},
                                                                  {"proto": "tcp", "port": 179}]}}
             for s in NODES for d in NODES if s != d]
    checks = {"node_reachability": {"status": "failed", "findings": pairs, "evidence": {}}, "paths": res["check"]}
    causes = diagnosis.diagnose(checks)
    assert [c["id"] for c in causes] == ["NODE_PORTS_BLOCKED"], causes
    assert diagnosis.unexplained(checks, causes) == []
    print("mesh wall (seed, 3 nodes x 2 pods): module %.1fs, timings %s, playbook %.1fs"
          % (res["elapsed"], res["timings"], wall))


def test_blackholed_external_fails_only_the_egress_column():
    res, _wall, out = run_mesh(HEALTHY_SG, blackhole_external=True)
    rows = cells(res)
    assert {(r["kind"], r["ok"]) for r in rows} == {("pod", True), ("service", True), ("external", False)}, out
    found = res["check"]["findings"]
    assert [f["id"] for f in found] == ["EGRESS_BLOCKED"] * 3
    assert sorted(f["details"]["src_node"] for f in found) == list(NODES)
    checks = {"paths": res["check"]}
    (cause,) = diagnosis.diagnose(checks)  # its own cause, one for the target: nothing else explains it
    assert cause["id"] == "EGRESS_BLOCKED" and cause["title"].endswith("10.233.0.10:443 from pods on node1, node2, node3")
    assert [r["id"] for r in cause["explains"]] == ["EGRESS_BLOCKED"] * 3
    assert diagnosis.unexplained(checks, [cause]) == []
