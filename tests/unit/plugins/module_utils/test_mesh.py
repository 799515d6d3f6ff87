"""The live pod mesh (analysis/mesh.py) and its diagnosis (analysis/diagnosis.py), pure.

The mesh results are simulated from the security group as EC2 holds it (analysis/sg.py decides, as in
test_diagnosis.py): a cross-node pod cell passes when the Calico carrier passes between the nodes
(IPIP: IP protocol 4, routes over BGP tcp/179), a same-node cell always, unless the test says
otherwise. Each diagnosis rule is proven both ways.
"""

import os
import shutil
import subprocess

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import diagnosis as dg
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import mesh
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import sg as sgmod
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import finding
from tests.lab import netlab

NODES = {"node1": "10.0.1.11", "node2": "10.0.1.12", "node3": "10.0.1.13"}
SG_ID = "sg-1"
SERVICE = {"ip": "10.96.0.10", "port": 53, "name": "kube-system/kube-dns"}
EXTERNAL = ("kubernetes.io", 443)


def _ec2(perms):
    return [dict(p, UserIdGroupPairs=[{"GroupId": SG_ID}]) if p.get("UserIdGroupPairs") else dict(p) for p in perms]


SEED = _ec2(netlab.SEED_SG)
HEALTHY = _ec2(netlab.HEALTHY_SG)
CARRIER_ONLY = _ec2(netlab.SEED_SG + [{"IpProtocol": "4", "UserIdGroupPairs": [{"GroupId": "self"}]},
                                      {"IpProtocol": "tcp", "FromPort": 179, "ToPort": 179,
                                       "UserIdGroupPairs": [{"GroupId": "self"}]}])
INSTANCES = [{"InstanceId": "i-%d" % n, "PrivateIpAddress": ip, "SubnetId": "subnet-1", "SourceDestCheck": True,
              "Tags": [{"Key": "Name", "Value": name}], "SecurityGroups": [{"GroupId": SG_ID}]}
             for n, (name, ip) in enumerate(sorted(NODES.items()), 1)]


def groups(perms):
    return {SG_ID: {"GroupId": SG_ID, "GroupName": "nodes", "IpPermissions": perms,
                    "IpPermissionsEgress": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]}}


def audit(perms):
    g = groups(perms)
    found = sgmod.audit(INSTANCES, g, "IPIP")
    return {"status": "failed" if found else "passed", "msg": "", "findings": found,
            "evidence": sgmod.evidence(INSTANCES, g, "IPIP")}


def carrier_passes(perms, src, dst):
    by = dict((i["Tags"][0]["Value"], i) for i in INSTANCES)
    g = groups(perms)
    return all(sgmod.ingress_allows(by[d], by[s], g, proto, port)
               for s, d in ((src, dst), (dst, src)) for proto, port in (("4", None), ("tcp", 179)))


PODS = [{"pod": "mesh-probe-%s-%s" % (n, k), "node": n, "ip": "192.168.%s.%d" % (n[-1], 20 + k)}
        for n in sorted(NODES) for k in (0, 1)]


def simulate(perms, endpoint_nodes=("node1",), external_ok=True, drop=(), policy_state=None, failed=()):
    """The mesh check result of a cluster with this SG; ``drop``: (src_node, dst_node) pairs whose pod cells
    fail whatever the SG says (a host firewall); ``failed``: pods that did not report."""
    tlist = mesh.targets(PODS, SERVICE, EXTERNAL)
    results = []
    for p in PODS:
        if p["pod"] in failed:
            results.append(dict(p, outcome="timeout", detail="not running within 60s", letters=""))
            continue
        letters = ""
        for t in tlist:
            if t["kind"] == "pod":
                if t["dst"] == p["ip"]:
                    letters += "s"
                    continue
                ok = (p["node"], t["dst_node"]) not in drop and (
                    p["node"] == t["dst_node"] or carrier_passes(perms, p["node"], t["dst_node"]))
            elif t["kind"] == "service":
                ok = p["node"] in endpoint_nodes or all(carrier_passes(perms, p["node"], e) for e in endpoint_nodes)
            else:
                ok = external_ok
            letters += "o" if ok else "t"
        results.append(dict(p, outcome="finished", detail="Succeeded", letters=letters,
                            object=pod_object(p)))
    rows = mesh.matrix(results, tlist, 2, policy_state)
    found = mesh.findings(rows, results, "default", endpoint_nodes, EXTERNAL)
    return mesh.check_result(rows, found, results)


def pod_object(p):
    return {"metadata": {"name": p["pod"], "namespace": "default", "labels": {"app.kubernetes.io/name": "mesh-probe"}},
            "spec": {"nodeName": p["node"], "containers": [{"name": "probe", "ports": [
                {"containerPort": mesh.TCP_PORT, "protocol": "TCP"}, {"containerPort": mesh.UDP_PORT, "protocol": "UDP"}]}]},
            "status": {"phase": "Running", "podIP": p["ip"]}}


def ids(found):
    return sorted(f["id"] for f in found)


# -- the probe pod ----------------------------------------------------------------------------------
def test_manifest_pins_the_node_and_exposes_the_annotations():
    m = mesh.probe_pod_manifest("Node-1.x", 1, "busybox:1.36.1", "default", "abc", 2, 90)
    spec = m["spec"]
    assert m["metadata"]["generateName"] == "mesh-probe-node-1-x-1-"
    assert m["metadata"]["labels"][mesh.RUN_LABEL] == "abc"
    assert spec["nodeName"] == "Node-1.x" and spec["tolerations"] == [{"operator": "Exists"}]
    assert spec["restartPolicy"] == "Never" and spec["automountServiceAccountToken"] is False
    items = spec["volumes"][0]["downwardAPI"]["items"]
    assert [(i["path"], i["fieldRef"]["fieldPath"]) for i in items] == [
        ("peers", "metadata.annotations['kubeadm-ec2/mesh-peers']"),
        ("stop", "metadata.annotations['kubeadm-ec2/mesh-stop']")]
    c = spec["containers"][0]
    assert c["volumeMounts"][0]["mountPath"] == mesh.DOWNWARD_DIR
    assert c["env"][0]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert c["startupProbe"]["exec"]["command"] == ["test", "-f", "/tmp/mesh-listening"]
    assert c["readinessProbe"]["exec"]["command"] == ["test", "-f", "/tmp/mesh-done"]
    assert "nc -ll -p 7946" in c["command"][-1] and "udpsvd 0 7947" in c["command"][-1]


@pytest.mark.skipif(not shutil.which("busybox"), reason="busybox not installed")
def test_script_is_valid_busybox_sh():
    proc = subprocess.run([shutil.which("busybox"), "sh", "-n", "-c", mesh.probe_script()], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False)
    assert proc.returncode == 0, proc.stdout


def test_targets_and_peers_text():
    tl = mesh.targets(PODS[:2], SERVICE, EXTERNAL)
    assert mesh.peers_text(tl) == ("pod tcp 192.168.1.20 7946\npod udp 192.168.1.20 7947\n"
                                   "pod tcp 192.168.1.21 7946\npod udp 192.168.1.21 7947\n"
                                   "service tcp 10.96.0.10 53\nexternal tcp kubernetes.io 443\n")
    assert [t["kind"] for t in mesh.targets(PODS[:1])] == ["pod", "pod"]  # no Service, no external


@pytest.mark.parametrize("text, expected", [
    ("meshprobe/1\nooto\n", "ooto"),
    ("meshprobe/1\n", ""),
    ("meshprobe/1\nerror no-peers-annotation\n", ValueError),
    ("dnsprobe/1\nok\n", ValueError),
    ("meshprobe/1\nooXo\n", ValueError),
    ("", ValueError),
])
def test_parse_probe_message(text, expected):
    if expected is ValueError:
        with pytest.raises(ValueError):
            mesh.parse_probe_message(text)
    else:
        assert mesh.parse_probe_message(text) == expected


@pytest.mark.parametrize("value, expected", [
    ("kubernetes.io:443", ("kubernetes.io", 443)), ("10.0.0.1:80", ("10.0.0.1", 80)), ("", None), (None, None),
    ("kubernetes.io", ValueError), ("host:0", ValueError), ("host:99999", ValueError), ("a b:1", ValueError)])
def test_parse_external(value, expected):
    if expected is ValueError:
        with pytest.raises(ValueError, match="host:port"):
            mesh.parse_external(value)
    else:
        assert mesh.parse_external(value) == expected


# -- the matrix and its findings ----------------------------------------------------------------------
def test_healthy_mesh_passes_with_every_cell():
    res = simulate(HEALTHY)
    rows = res["evidence"]["mesh"]
    assert len(rows) == 6 * (5 * 2 + 2) and all(r["ok"] for r in rows)
    assert res["status"] == "passed" and res["findings"] == []
    assert res["evidence"]["paths"] == []
    row = [r for r in rows if r["kind"] == "pod"][0]
    assert set(row) == {"src_pod", "src_node", "dst", "dst_pod", "dst_node", "kind", "proto", "port", "ok", "reason"}


def test_seed_mesh_findings_state_what_was_observed():
    res = simulate(SEED)
    found = res["findings"]
    pods = [f for f in found if f["id"] == "POD_PATH_BLOCKED"]
    assert len(pods) == 6 * 2  # ordered node pairs x tcp/udp, one finding each
    f = [x for x in pods if x["details"]["src_node"] == "node1" and x["details"]["dst_node"] == "node2"
         and x["details"]["protocol"] == "tcp"][0]
    assert f["where"] == "pods on node1 -> pods on node2"
    assert f["details"] == {"src_node": "node1", "dst_node": "node2", "protocol": "tcp", "port": 7946,
                            "same_node": False, "cells": 4, "pods": ["mesh-probe-node1-0", "mesh-probe-node1-1"],
                            "probe_status": "timeout"}
    assert f["observed"].startswith("tcp/7946: 4 of the probe pod pair(s) got no connection: mesh-probe-node1-0 -> "
                                    "mesh-probe-node2-0 (connect timed out after 2s)")
    assert "security group" not in f["observed"]  # an observation, not a cause
    svc = [f for f in found if f["id"] == "SERVICE_PATH_BLOCKED"]
    assert [(f["details"]["src_node"], f["details"]["endpoint_nodes"]) for f in svc] == [
        ("node2", ["node1"]), ("node3", ["node1"])]
    assert res["status"] == "failed" and "48 + 4" not in res["msg"]
    assert res["msg"] == "paths: pod mesh of 6 probe pod(s): 52 of 72 cell(s) blocked"


def test_pod_that_did_not_report_is_its_own_finding():
    res = simulate(HEALTHY, failed=("mesh-probe-node3-1",))
    (f,) = res["findings"]
    assert f["id"] == "MESH_PROBE_FAILED" and f["details"]["src_node"] == "node3"
    assert "not running within 60s" in f["observed"]
    assert len(res["evidence"]["mesh"]) == 5 * 12 and res["msg"].endswith("1 probe pod(s) did not report")


# -- the diagnosis, each rule both ways ---------------------------------------------------------------
PAIRS_BLOCKED = [finding("NODE_PORT_BLOCKED", "dropped", "why", "fix", where="%s -> %s" % (s, d),
                         src=s, dst=d, checks=["ipip", "bgp"], ports=[{"proto": "4", "port": None},
                                                                      {"proto": "tcp", "port": 179}])
                 for s in sorted(NODES) for d in sorted(NODES) if s != d]


def _reach(findings):
    return {"status": "failed" if findings else "passed", "msg": "", "findings": findings,
            "evidence": {"nodes": dict(NODES), "control_planes": ["node1"], "matrix": [], "unreachable": []}}


def _explained(causes, cid):
    return sorted({r["id"] for c in causes if c["id"] == cid for r in c["explains"]})


@pytest.mark.parametrize("perms, audit_on, drop, expected, left", [
    # the seed SG with the EC2 rules: one cause, every cross-node pod cell and Service cell its evidence
    (SEED, True, (), ["SG_NO_SELF_REF"], []),
    # no EC2 data, blocked node pairs from the matrix: the pairs' cause explains the cells
    (SEED, False, (), ["NODE_PORTS_BLOCKED"], []),
    # the carrier passes (IP protocol 4 and tcp/179 allowed) but one pair's pod cells fail anyway: no pair
    # explains them, they are their own causes; the audit's missing self-reference stays, explaining none of them
    (CARRIER_ONLY, True, (("node1", "node2"),), ["POD_PATH_BLOCKED", "POD_PATH_BLOCKED", "SG_NO_SELF_REF"], []),
    # same-node cells fail: never a node pair's doing
    (HEALTHY, True, (("node2", "node2"),), ["POD_PATH_BLOCKED", "POD_PATH_BLOCKED"], []),
    (HEALTHY, True, (), [], []),
])
def test_blocked_node_pairs_explain_their_pod_cells(perms, audit_on, drop, expected, left):
    checks = {"paths": simulate(perms, drop=drop)}
    if audit_on:
        checks["sg_audit"] = audit(perms)
    if not carrier_passes(perms, "node1", "node2"):
        checks["node_reachability"] = _reach(PAIRS_BLOCKED)
    causes = dg.diagnose(checks)
    assert sorted(c["id"] for c in causes) == expected, [(c["id"], c["title"]) for c in causes]
    assert dg.unexplained(checks, causes) == left
    if expected and expected[0] in ("SG_NO_SELF_REF", "NODE_PORTS_BLOCKED"):
        assert {"POD_PATH_BLOCKED", "SERVICE_PATH_BLOCKED"} <= set(_explained(causes, expected[0]))
    if "POD_PATH_BLOCKED" in expected:
        assert all(c["explains"][0]["check"] == "paths" for c in causes if c["id"] == "POD_PATH_BLOCKED")
        assert "POD_PATH_BLOCKED" not in _explained(causes, "SG_NO_SELF_REF")
    assert dg.contradictions(checks) == []


@pytest.mark.parametrize("endpoint_nodes, pairs, expected", [
    (("node1",), True, ["NODE_PORTS_BLOCKED"]),  # DNAT towards node1, node2->node1 blocked: explained
    (("node1",), False, ["SERVICE_PATH_BLOCKED", "SERVICE_PATH_BLOCKED"]),  # pairs open: kube-proxy's own
])
def test_service_cells_follow_the_pairs_towards_an_endpoint(endpoint_nodes, pairs, expected):
    res = simulate(HEALTHY, endpoint_nodes=endpoint_nodes)
    # the Service cells of node2/node3 fail although the pod cells pass (simulated: kube-proxy broken)
    rows = res["evidence"]["mesh"]
    for r in rows:
        if r["kind"] == "service" and r["src_node"] != "node1":
            r["ok"], r["reason"] = False, "connect timed out after 2s"
    results = [dict(p, outcome="finished") for p in PODS]
    res = mesh.check_result(rows, mesh.findings(rows, results, "default", endpoint_nodes), results)
    checks = {"paths": res}
    if pairs:
        checks["node_reachability"] = _reach([f for f in PAIRS_BLOCKED if f["details"]["dst"] == "node1"])
    causes = dg.diagnose(checks)
    assert sorted(c["id"] for c in causes) == expected
    assert dg.unexplained(checks, causes) == []


def test_no_dns_endpoints_explains_the_service_cells():
    res = simulate(HEALTHY, endpoint_nodes=())
    rows = [dict(r, ok=False, reason="connect timed out after 2s") if r["kind"] == "service" else r
            for r in res["evidence"]["mesh"]]
    results = [dict(p, outcome="finished") for p in PODS]
    checks = {"paths": mesh.check_result(rows, mesh.findings(rows, results), results),
              "dns": {"findings": [finding("DNS_NO_ENDPOINTS", "kube-dns has no endpoints", "why", "fix",
                                           where="kube-system/kube-dns")]}}
    causes = dg.diagnose(checks)
    assert [c["id"] for c in causes] == ["DNS_NO_ENDPOINTS"]
    assert _explained(causes, "DNS_NO_ENDPOINTS") == ["DNS_NO_ENDPOINTS", "SERVICE_PATH_BLOCKED"]


@pytest.mark.parametrize("perms, egress_443, expected", [
    # egress alone: ONE cause for the target, whatever node pairs say
    (HEALTHY, False, ["EGRESS_BLOCKED"]),
    (SEED, False, ["EGRESS_BLOCKED", "SG_NO_SELF_REF"]),
    # the audit saw egress tcp/443 closed: that explains the egress column
    (HEALTHY, True, ["EGRESS_443"]),
])
def test_egress_failures_are_their_own_cause(perms, egress_443, expected):
    checks = {"paths": simulate(perms, external_ok=False), "sg_audit": audit(perms)}
    if egress_443:
        checks["sg_audit"]["findings"].append(finding("EGRESS_443", "no egress tcp/443", "why", "open it",
                                                      where=SG_ID))
    causes = dg.diagnose(checks)
    assert sorted(c["id"] for c in causes) == expected, [(c["id"], c["title"]) for c in causes]
    egress = [c for c in causes if c["id"] in ("EGRESS_BLOCKED", "EGRESS_443")][0]
    assert sorted(r["id"] for r in egress["explains"] if r["id"] == "EGRESS_BLOCKED") == ["EGRESS_BLOCKED"] * 3
    if not egress_443:
        assert egress["title"].endswith("kubernetes.io:443 from pods on node1, node2, node3")
        assert "natOutgoing" in egress["fix"]["cli"]
    assert dg.unexplained(checks, causes) == []


@pytest.mark.parametrize("dead, expected", [(True, ["NODE_UNREACHABLE"]), (False, ["MESH_PROBE_FAILED"])])
def test_a_dead_node_explains_its_probe_pod(dead, expected):
    checks = {"paths": simulate(HEALTHY, failed=("mesh-probe-node3-0",))}
    if dead:
        checks["node_reachability"] = _reach([finding("NODE_UNREACHABLE", "node3 answers nothing", "why", "fix",
                                                      where="node3", node="node3")])
    causes = dg.diagnose(checks)
    assert [c["id"] for c in causes] == expected
    assert dg.unexplained(checks, causes) == []


# -- NetworkPolicies (issue 12 item 6) ------------------------------------------------------------------
DENY_ALL = {"metadata": {"name": "deny-all", "namespace": "default"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
ALLOW_MESH = {"metadata": {"name": "allow-mesh", "namespace": "default"},
              "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [{"podSelector": {}}]}]}}
NAMESPACES = [{"metadata": {"name": "default", "labels": {"kubernetes.io/metadata.name": "default"}}}]


@pytest.mark.parametrize("policies, perms, expected, warn", [
    # policies deny, the connects succeed: ONE warning that they are not enforced, no blocked verdict
    ([DENY_ALL], HEALTHY, [], ["NETPOL_NOT_ENFORCED"]),
    # policies deny and every denied cell is blocked: the policy at work, not a network failure
    ([DENY_ALL], "all-dropped", [], ["MESH_NETPOL_DENIED"]),
    # some denied cells connect (same node), others not (cross node): not enforced, so the blocked ones are the
    # network's and judged as such
    ([DENY_ALL], SEED, ["POD_PATH_BLOCKED"] * 12 + ["SERVICE_PATH_BLOCKED"] * 2, ["NETPOL_NOT_ENFORCED"]),
    # policies allow: judged as the network
    ([ALLOW_MESH], SEED, ["POD_PATH_BLOCKED"] * 12 + ["SERVICE_PATH_BLOCKED"] * 2, []),
    ([], HEALTHY, [], []),
])
def test_netpol_verdicts_never_contradict_the_live_connect(policies, perms, expected, warn):
    state = {"network_policies": policies, "namespaces": NAMESPACES, "pods": [], "service": None}
    if perms == "all-dropped":
        res = simulate(HEALTHY, policy_state=state, drop=[(s, d) for s in NODES for d in NODES])
    else:
        res = simulate(perms, policy_state=state)
    errors = sorted(f["id"] for f in res["findings"] if f["severity"] == "error")
    warnings = sorted(f["id"] for f in res["findings"] if f["severity"] == "warning")
    assert errors == sorted(expected) and warnings == warn
    if warn == ["NETPOL_NOT_ENFORCED"] and not expected:
        (w,) = res["findings"]
        assert w["observed"].startswith("NetworkPolicies are not enforced here (the CNI does not implement them): "
                                        "60 mesh cell(s) connected although default/deny-all deny them")
        assert dg.diagnose({"paths": res}) == []  # a warning is never a cause
    denied = [r for r in res["evidence"]["mesh"] if r.get("netpol")]
    assert all(r["kind"] == "pod" for r in denied)
    assert all("denied by NetworkPolicy default/deny-all" in r["reason"] for r in denied)


def test_combine_keeps_one_not_enforced_warning():
    paths = {"status": "passed", "msg": "paths: 1 path(s) open", "evidence": {"mesh": [], "paths": [{"verdict": "open"}]},
             "findings": [finding("NETPOL_NOT_ENFORCED", "shop -> api: denied by shop/deny", "why", "fix",
                                  severity="warning")]}
    state = {"network_policies": [DENY_ALL], "namespaces": NAMESPACES, "pods": [], "service": None}
    both = mesh.combine(paths, simulate(HEALTHY, policy_state=state))
    assert [f["id"] for f in both["findings"]] == ["NETPOL_NOT_ENFORCED"]
    assert "shop -> api" in both["findings"][0]["observed"] and "60 mesh cell(s)" in both["findings"][0]["observed"]
    assert both["evidence"]["paths"] == [{"verdict": "open"}] and len(both["evidence"]["mesh"]) == 72
    assert paths["findings"][0]["observed"] == "shop -> api: denied by shop/deny"  # inputs untouched
    assert mesh.combine(None, None) is None and mesh.combine(paths, None) is paths
    skipped = {"status": "skipped", "msg": "", "findings": [], "evidence": {"mesh": [], "paths": []}}
    assert mesh.combine(skipped, dict(skipped, msg="check mode"))["status"] == "skipped"
    assert mesh.combine(skipped, paths)["status"] == "passed" and mesh.combine(skipped, paths)["msg"] == paths["msg"]
    assert os.path.basename(mesh.__file__) == "mesh.py"
