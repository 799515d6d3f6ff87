"""Path findings and the diagnosis: a path failure that a blocked node pair explains is that pair's
cause's symptom, never a cause of its own; a path the cluster objects block (a NetworkPolicy, a Service
without endpoints, a targetPort no container declares) stays its own cause with its own fix.

The node network is the simulated cluster of test_diagnosis (its security group decides every probe);
the paths check result comes from the real analysis (analysis/paths.py) over the seeds' app,
marketplace (node2) calling recommendations:50051, with the probe pod's outcome scripted per case.
"""

import copy

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import diagnosis as dg
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import paths
from tests.unit.plugins.module_utils.test_diagnosis import DROP_10250, HEALTHY, SEED, Cluster


def _ns(name):
    return {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}}


def _pod(name, namespace, labels, ip, node, ports=()):
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [dict(p) for p in ports]}]},
            "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]}}


def _eps(name, namespace, ips):
    return {"metadata": {"name": name + "-x", "namespace": namespace, "labels": {"kubernetes.io/service-name": name}},
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]}


def world(backend_node="node3", policies=(), selector=None, target="grpc", endpoints=True):
    dns_ports = [{"name": "dns", "containerPort": 53, "protocol": "UDP"}]
    objs = {
        "namespaces": [_ns("shop"), _ns("kube-system")],
        "deployments": [{"metadata": {"name": "marketplace", "namespace": "shop"},
                         "spec": {"template": {"metadata": {"labels": {"app": "marketplace"}}}}}],
        "pods": [_pod("marketplace-1", "shop", {"app": "marketplace"}, "192.168.2.20", "node2"),
                 _pod("recommendations-1", "shop", {"app": "recommendations"}, "192.168.3.20", backend_node,
                      [{"name": "grpc", "containerPort": 50051}]),
                 _pod("coredns-node1", "kube-system", {"k8s-app": "kube-dns"}, "192.168.1.10", "node1", dns_ports),
                 _pod("coredns-node2", "kube-system", {"k8s-app": "kube-dns"}, "192.168.2.10", "node2", dns_ports)],
        "services": [
            {"metadata": {"name": "recommendations", "namespace": "shop"},
             "spec": {"selector": selector or {"app": "recommendations"},
                      "ports": [{"port": 50051, "targetPort": target, "protocol": "TCP"}]}},
            {"metadata": {"name": "kube-dns", "namespace": "kube-system"},
             "spec": {"selector": {"k8s-app": "kube-dns"}, "ports": [{"port": 53, "targetPort": 53, "protocol": "UDP"}]}}],
        "endpointslices": [_eps("kube-dns", "kube-system", ["192.168.1.10", "192.168.2.10"])],
        "network_policies": [copy.deepcopy(p) for p in policies],
    }
    if endpoints:
        objs["endpointslices"].append(_eps("recommendations", "shop", ["192.168.3.20"]))
    return objs


DENY_INGRESS = {"metadata": {"name": "recommendations-deny", "namespace": "shop"},
                "spec": {"podSelector": {"matchLabels": {"app": "recommendations"}}, "policyTypes": ["Ingress"]}}
PATH = {"from": {"namespace": "shop", "selector": {"app": "marketplace"}}, "to": "recommendations:50051"}


def probe(node, dns="ok", connect="ok"):
    """What the probe pod on ``node`` reported."""
    return {"pod": "shop/path-probe-0-abcde", "node": node, "outcome": "finished", "detail": "Succeeded",
            "results": {"dns": {"status": dns, "answer": "10.96.80.12" if dns == "ok" else ""},
                        "connect": {"status": connect}}}


def paths_check(objs, outcome=None):
    parsed = paths.parse_paths([PATH], objs)
    results, findings = paths.judge(parsed, objs, None if outcome is None else {0: outcome})
    return paths.check_result(results, findings)


def diagnose(cluster, objs, outcome=None):
    checks = cluster.checks()
    checks["paths"] = paths_check(objs, outcome)
    causes = dg.diagnose(checks)
    return checks, causes


def _path_cause(causes):
    """(id of the cause that lists the PATH_BLOCKED finding, whether that cause is PATH_BLOCKED itself)."""
    owners = [c["id"] for c in causes for e in c["explains"] if e["check"] == "paths"]
    return owners


@pytest.mark.parametrize("sg,drops,objs,outcome,layer,owner", [
    # a probe on node2 connecting to the backend on node3 times out: the pair node2 -> node3 is blocked
    (SEED, (), world(), probe("node2", connect="timeout"), "connect", "SG_NO_SELF_REF"),
    # the probe on node3 times out on DNS: both CoreDNS pods are on other nodes, behind blocked pairs
    (SEED, (), world(), probe("node3", dns="timeout", connect="skipped"), "dns", "SG_NO_SELF_REF"),
    # the drop is outside the group (host firewall on node3): the outside cause explains the path too
    (HEALTHY, DROP_10250, world(), probe("node1", connect="timeout"), "connect", "BLOCKED_OUTSIDE_SG"),
    # same node (probe and backend on node3): no node pair crossed, so the path is its own cause
    (SEED, (), world(backend_node="node3"), probe("node3", connect="timeout"), "connect", "PATH_BLOCKED"),
    # the healthy group lets everything through between nodes: a timeout is not a node pair's doing
    (HEALTHY, (), world(), probe("node2", connect="timeout"), "connect", "PATH_BLOCKED"),
    # refused: the packets arrived; nothing listens at the targetPort, whatever the group says
    (SEED, (), world(), probe("node2", connect="refused"), "connect", "PATH_BLOCKED"),
    # NXDOMAIN: the lookup was answered, so DNS traffic got through
    (SEED, (), world(), probe("node3", dns="nxdomain", connect="skipped"), "dns", "PATH_BLOCKED"),
    # verdicts from the objects stay their own cause even across a blocked pair, probed or not
    (SEED, (), world(policies=[DENY_INGRESS]), None, "netpol", "PATH_BLOCKED"),
    (SEED, (), world(policies=[DENY_INGRESS]), probe("node2", connect="timeout"), "netpol", "PATH_BLOCKED"),
    (SEED, (), world(selector={"app": "recommendation"}, endpoints=False), None, "service", "PATH_BLOCKED"),
    (SEED, (), world(endpoints=False), probe("node2", connect="timeout"), "service", "PATH_BLOCKED"),
    (SEED, (), world(target="http"), probe("node2", connect="timeout"), "service", "PATH_BLOCKED"),
], ids=["seed-connect", "seed-dns", "outside-sg", "seed-same-node", "healthy-timeout", "seed-refused",
        "seed-nxdomain", "seed-netpol-static", "seed-netpol-probed", "seed-selector", "seed-no-endpoints",
        "seed-targetport"])
def test_path_failures_follow_their_node_pair_or_stand_alone(sg, drops, objs, outcome, layer, owner):
    checks, causes = diagnose(Cluster(sg, drops=drops), objs, outcome)
    [f] = checks["paths"]["findings"]
    assert (f["id"], f["details"]["layer"]) == ("PATH_BLOCKED", layer)
    assert _path_cause(causes) == [owner]
    path_causes = [c for c in causes if c["id"] == "PATH_BLOCKED"]
    if owner == "PATH_BLOCKED":
        # its own cause, with the finding's own one command (not "add the self-reference")
        [cause] = path_causes
        assert cause["fix"]["cli"] == f["cli"] and "authorize-security-group-ingress" not in cause["fix"]["cli"]
    else:
        assert path_causes == []
    assert dg.unexplained(checks, causes) == []


def test_same_cause_whichever_coredns_pod_the_probe_reached():
    """The probe on node2 may reach the CoreDNS pod on node1 (blocked: dns fails) or on node2 (dns ok, then
    the connect to node3 fails): either way the missing self-reference is the one cause."""
    for outcome in (probe("node2", dns="timeout", connect="skipped"), probe("node2", connect="timeout")):
        checks, causes = diagnose(Cluster(SEED), world(), outcome)
        assert [c["id"] for c in causes] == ["SG_NO_SELF_REF"]
        assert dg.unexplained(checks, causes) == []


@pytest.mark.parametrize("outcome,layer,expected", [
    (probe("node2", connect="timeout"), "connect",
     {"src_node": "node2", "dst_node": "node3", "dst_nodes": ["node3"], "protocol": "tcp", "port": 50051,
      "observed_by": "probe", "probe_status": "timeout"}),
    # the dns layer's traffic: udp/53 to the CoreDNS pods, the ones on other nodes first
    (probe("node2", dns="timeout", connect="skipped"), "dns",
     {"src_node": "node2", "dst_node": "node1", "dst_nodes": ["node1", "node2"], "protocol": "udp", "port": 53,
      "observed_by": "probe", "probe_status": "timeout"}),
    # no probe: the source is where the workload's pod runs; the named targetPort resolved to its number
    (None, "netpol",
     {"src_node": "node2", "dst_node": "node3", "dst_nodes": ["node3"], "protocol": "tcp", "port": 50051,
      "observed_by": "objects"}),
])
def test_path_findings_name_their_node_pair_and_traffic(outcome, layer, expected):
    objs = world(policies=[DENY_INGRESS] if outcome is None else ())
    [f] = paths_check(objs, outcome)["findings"]
    assert f["details"]["layer"] == layer
    assert {k: f["details"].get(k) for k in expected} == expected
    assert ("probe_status" in f["details"]) is (outcome is not None)


def test_connect_fix_names_the_node_pair():
    [f] = paths_check(world(), probe("node2", connect="timeout"))["findings"]
    assert f["remediation"].endswith("check the node path (node_reachability) from node2 to node3 (tcp/50051)")


def test_not_enforced_warning_carries_the_pair_but_is_never_a_cause():
    checks, causes = diagnose(Cluster(SEED), world(policies=[DENY_INGRESS]), probe("node2"))
    [f] = checks["paths"]["findings"]
    assert (f["id"], f["severity"], f["details"]["dst_node"]) == ("NETPOL_NOT_ENFORCED", "warning", "node3")
    assert [c["id"] for c in causes] == ["SG_NO_SELF_REF"] and _path_cause(causes) == []


def test_dns_timeout_fix_names_the_coredns_nodes():
    [f] = paths_check(world(), probe("node3", dns="timeout", connect="skipped"))["findings"]
    assert f["remediation"] == ("check cluster DNS from namespace shop (see the dns check) and the node path "
                                "(node_reachability) from node3 to the CoreDNS pods on node1, node2 (udp/53)")


def test_html_report_shows_each_path_and_its_layers():
    from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import render
    from tests.fakes.html_dom import Dom

    checks, causes = diagnose(Cluster(SEED), world(), probe("node2", connect="timeout"))
    report = {"headline": dg.headline(checks, causes), "root_causes": causes, "checks": checks,
              "unexplained": dg.unexplained(checks, causes)}
    dom = Dom(render.html(report))
    [row] = dom.select("tr", id="path-0")
    assert row["attrs"]["data-verdict"] == "blocked" and "parents" in row
    assert "deployment shop/marketplace" in row["text"] and "recommendations:50051/tcp" in row["text"]
    cells = {e["attrs"]["data-layer"]: (e["attrs"]["class"], e["attrs"].get("title")) for e in dom.elements
             if e["tag"] == "td" and "data-layer" in e["attrs"]}
    assert {k: v[0] for k, v in cells.items()} == {"dns": "layer ok", "service": "layer ok", "netpol": "layer ok",
                                                   "connect": "layer failed"}
    assert cells["connect"][1] == "the connection from the source namespace gave timeout"
    # the path's finding is folded under the cause that explains it
    [finding_row] = dom.select("tr", id="finding-paths-0")
    assert finding_row["attrs"]["data-explained-by"] == "1" and "details" in finding_row["parents"]


MESH_CELL = {"src_pod": "mesh-probe-node1-a", "src_node": "node1", "dst": "192.168.2.30", "dst_pod": "mesh-probe-node2-b",
             "dst_node": "node2", "kind": "pod", "proto": "tcp", "port": 7946, "ok": True, "reason": ""}


@pytest.mark.parametrize("mesh_task,status,mesh_rows,msg_part", [
    (None, "passed", [], None),                                           # no mesh task: the app paths alone
    ({"skipped": True, "changed": False}, "passed", [], None),            # validate_paths_mesh: false
    ({"check": {"status": "skipped", "msg": "check mode", "findings": [], "evidence": {}}}, "passed", [], None),
    ({"check": {"status": "passed", "msg": "mesh: 1 cell ok", "findings": [],
                "evidence": {"mesh": [MESH_CELL], "paths": []}}}, "passed", [MESH_CELL], "mesh: 1 cell ok"),
    ({"failed": True, "msg": "mesh_probe: API said 403"}, "failed", [], "mesh: mesh_probe: API said 403"),
])
def test_one_paths_result_with_the_mesh(mesh_task, status, mesh_rows, msg_part):
    out = paths.with_mesh(paths_check(world(), probe("node2")), mesh_task)
    assert out["status"] == status and out["evidence"]["mesh"] == mesh_rows
    assert len(out["evidence"]["paths"]) == 1
    assert (msg_part is None) or msg_part in out["msg"]


def test_same_subnet_path_judged_on_node_reachabilitys_subnets():
    """IPIPCrossSubnet, a group that lets IP-in-IP and BGP through but not the app's port, and sg_audit's
    instances naming node1 only (node2 and node3 are members of the node group it knows no more of): the
    subnets come from node_reachability's evidence. node2 and node3 share a subnet, so marketplace's packets
    to recommendations:50051 travel as they are, on a port the group does not allow: the missing
    self-reference explains the blocked path (judged on IP-in-IP, which the group allows, it would not)."""
    from tests.unit.plugins.module_utils.test_diagnosis import SG_ID

    ipip_bgp = [{"IpProtocol": "4", "UserIdGroupPairs": [{"GroupId": SG_ID}]},
                {"IpProtocol": "tcp", "FromPort": 179, "ToPort": 179, "UserIdGroupPairs": [{"GroupId": SG_ID}]}]
    cluster = Cluster(SEED + ipip_bgp, encap="IPIPCrossSubnet", subnets=dict.fromkeys(("node1", "node2", "node3"), "subnet-1"))
    checks = cluster.checks()
    sg_ev = checks["sg_audit"]["evidence"]
    sg_ev["instances"] = [i for i in sg_ev["instances"] if i["name"] == "node1"]
    checks["paths"] = paths_check(world(), probe("node2", connect="timeout"))
    causes = dg.diagnose(checks)
    assert _path_cause(causes) == ["SG_NO_SELF_REF"]
    assert dg.unexplained(checks, causes) == []
