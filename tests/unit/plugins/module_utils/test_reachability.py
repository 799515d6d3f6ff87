"""Pure logic of node_reachability: planning, packet parsing, matrix analysis and exact hints."""

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import reachability as r

NODES = {"cp1": "10.0.1.11", "w1": "10.0.1.21", "w2": "10.0.1.22"}
CPS = ["cp1"]

SELF_REF_FIX = (
    "add the self-referencing rule (inbound all traffic from the node security group itself): "
    "aws ec2 authorize-security-group-ingress --group-id sg-1 --ip-permissions "
    "'IpProtocol=-1,UserIdGroupPairs=[{GroupId=sg-1}]' ; or set ec2_network_sg_self_reference: true "
    "for role ec2_network and re-run it")


@pytest.mark.parametrize("src,dst,cps,typha,names,expected", [
    ("w1", "w2", CPS, False, None, ["kubelet", "bgp", "vxlan", "ipip", "ephemeral"]),
    ("w1", "cp1", CPS, False, None, ["kubelet", "apiserver", "bgp", "vxlan", "ipip", "ephemeral"]),
    ("cp1", "cp2", ["cp1", "cp2"], False, None,
     ["kubelet", "apiserver", "etcd-client", "etcd-peer", "bgp", "vxlan", "ipip", "ephemeral"]),
    ("cp1", "w1", CPS, True, None, ["kubelet", "bgp", "typha", "vxlan", "ipip", "ephemeral"]),
    ("w2", "w1", CPS, False, ["cp1", "w1", "w2"], ["kubelet", "bgp", "vxlan", "ephemeral"]),
    ("w1", "w2", CPS, False, ["cp1", "w1", "w2"], ["kubelet", "bgp", "vxlan", "ipip", "ephemeral"]),
])
def test_plan_checks(src, dst, cps, typha, names, expected):
    assert r.plan_checks(src, dst, cps, typha, names=names) == expected


@pytest.mark.parametrize("n", [2, 3, 4, 5, 10, 11])
def test_ipip_one_direction_per_pair_and_every_node_receives(n):
    names = ["n%02d" % i for i in range(n)]
    for a in names:
        for b in names:
            if a < b:
                assert r.ipip_oriented(a, b, names) != r.ipip_oriented(b, a, names), (a, b)
    receivers = set(b for a in names for b in names if a != b and r.ipip_oriented(a, b, names))
    assert receivers == set(names) if n > 2 else len(receivers) == 1


@pytest.mark.parametrize("nodes,expected", [
    ({"a": "10.0.0.1"}, None),
    ({}, "nodes: at least one node (name -> private IP) is required"),
    ({"a": ""}, "nodes: 'a' has no valid private IPv4 address (got ''); set private_ip_address for it in the inventory"),
    ({"a": "10.0.0"}, "nodes: 'a' has no valid private IPv4 address (got '10.0.0'); set private_ip_address for it in the inventory"),
    ({"a": "x"}, "nodes: 'a' has no valid private IPv4 address (got 'x'); set private_ip_address for it in the inventory"),
])
def test_validate_nodes(nodes, expected):
    assert r.validate_nodes(nodes) == expected


def _probe_report(src, blocked=(), dead=()):
    """A probe() result for ``src`` where checks in ``blocked`` (and everything to/from ``dead``) timed out."""
    results, sent = [], []
    for dst in sorted(NODES):
        if dst == src:
            continue
        for check in r.plan_checks(src, dst, CPS, names=list(NODES)):
            bad = check in blocked or src in dead or dst in dead
            if r.CHECKS[check][0] == "tcp":
                results.append([dst, check, "blocked" if bad else "ok", "timeout after 2s (dropped silently)" if bad else "refused"])
            else:
                results.append([dst, check, "sent", "5 packet(s)"])
                sent.append([dst, check, 5])
    return {"node": src, "ip": NODES[src], "results": results, "sent": sent}


def _listen_report(dst, blocked=(), dead=()):
    received = []
    for src in sorted(NODES):
        if src == dst or src in dead or dst in dead:
            continue
        for check in ("vxlan", "ipip"):
            if check not in blocked and check in r.plan_checks(src, dst, CPS, names=list(NODES)):
                received.append([NODES[src], check, 5])
    return {"received": received, "missing": False}


def _run(blocked=(), dead=(), encap="IPIP", no_report=(), sg_id="sg-1"):
    probes = dict((n, None if n in no_report else _probe_report(n, blocked, dead)) for n in NODES)
    listens = dict((n, None if n in no_report else _listen_report(n, blocked, dead)) for n in NODES)
    return r.analyse(NODES, CPS, probes, listens, calico_encapsulation=encap, sg_id=sg_id)


def test_healthy_matrix_has_no_findings_and_a_summary():
    findings, summary, matrix = _run()
    assert findings == []
    assert summary["text"] == ("3 nodes, 6 directed pairs, 29 probes, 29 passed: tcp/10250 6/6, tcp/6443 2/2, "
                               "tcp/179 6/6, udp/4789 6/6, ip protocol 4 (IP-in-IP) 3/3, tcp/40123 (ephemeral) 6/6")
    assert r.matrix_table(NODES, matrix)["w1"] == {"cp1": "ok", "w2": "ok"}


ENCAP_FIX = (
    "allow tcp/179, ip protocol 4 (IP-in-IP) between the nodes: aws ec2 authorize-security-group-ingress "
    "--group-id sg-1 --ip-permissions 'IpProtocol=tcp,FromPort=179,ToPort=179,UserIdGroupPairs=[{GroupId=sg-1}]' "
    "'IpProtocol=4,UserIdGroupPairs=[{GroupId=sg-1}]' ; or add the self-referencing rule "
    "(aws ec2 authorize-security-group-ingress --group-id sg-1 --ip-permissions "
    "'IpProtocol=-1,UserIdGroupPairs=[{GroupId=sg-1}]') / set ec2_network_sg_self_reference: true for role "
    "ec2_network; or switch the Calico IPPool to an encapsulation the security group allows")


def _outside(dst):
    return (". If it does, the drop is outside it: the network ACL of the nodes' subnet or the host firewall of %s "
            "(sudo iptables -S; sudo nft list ruleset); the report's root causes say which" % dst)


def test_seed_like_matrix_exact_findings():
    """One observation per blocked pair: the ports and who needs them; no cause is named here."""
    findings, summary, _m = _run(blocked=("kubelet", "ephemeral", "bgp", "ipip", "apiserver"))
    by = dict(((f["id"], f["where"]), f) for f in findings)
    core = by[("NODE_PORT_BLOCKED", "w1 (10.0.1.21) -> cp1 (10.0.1.11)")]
    assert core["observed"] == "tcp/10250, tcp/6443, tcp/40123 (ephemeral), tcp/179 blocked from w1 to cp1"
    assert core["why"] == (
        "probes from w1 to cp1 timed out or were rejected on the way; needed by: "
        "tcp/10250: kubelet API (kubectl logs/exec, metrics-server), every Calico mode; "
        "tcp/6443: kube-apiserver from every node, every Calico mode; "
        "tcp/40123 (ephemeral): pod-to-pod, ClusterIP and DNS traffic on arbitrary ports, every Calico mode "
        "(only a self-referencing rule allows it); "
        "tcp/179: Calico BGP peering (BIRD): ipipMode Always/CrossSubnet and unencapsulated pools")
    assert core["remediation"] == "if the node security group does not allow them: " + SELF_REF_FIX + _outside("cp1")
    assert core["details"]["blocked"] == ["tcp/10250", "tcp/6443", "tcp/40123 (ephemeral)", "tcp/179"]
    assert core["details"]["ports"] == [
        {"check": "kubelet", "proto": "tcp", "port": 10250}, {"check": "apiserver", "proto": "tcp", "port": 6443},
        {"check": "ephemeral", "proto": "tcp", "port": 40123}, {"check": "bgp", "proto": "tcp", "port": 179}]
    assert "SG_NO_SELF_REF" not in str(findings)
    encap = by[("NODE_PORT_BLOCKED", "cp1 (10.0.1.11) -> w1 (10.0.1.21)")]
    assert encap["observed"] == ("tcp/10250, tcp/40123 (ephemeral), tcp/179, ip protocol 4 (IP-in-IP) blocked "
                                 "from cp1 to w1")
    assert encap["details"]["checks"] == ["kubelet", "ephemeral", "bgp", "ipip"]
    assert encap["details"]["ports"][-1] == {"check": "ipip", "proto": "4", "port": None}
    assert encap["why"].endswith(r.IPIP_NOTE)
    # the reverse direction of an IP-in-IP pair is not probed (stateful SGs)
    assert core["details"]["checks"] == ["kubelet", "apiserver", "ephemeral", "bgp"]
    assert len([f for f in findings if f["id"] == "NODE_PORT_BLOCKED"]) == 6
    assert summary["blocked"] == 6 * 3 + 3 + 2


def test_encapsulation_only_pair_names_the_protocol_fix():
    findings, _s, _m = _run(blocked=("bgp", "ipip"))
    f = [x for x in findings if x["where"] == "cp1 (10.0.1.11) -> w1 (10.0.1.21)"][0]
    assert f["observed"] == "tcp/179, ip protocol 4 (IP-in-IP) blocked from cp1 to w1"
    assert f["remediation"] == "if the node security group does not allow them: " + ENCAP_FIX + _outside("w1")


def test_matrix_rows_are_the_evidence_shape():
    _f, _s, matrix = _run(blocked=("ipip",))
    rows = r.matrix_rows(NODES, matrix)
    assert {"src": "cp1", "dst": "w1", "check": "ipip", "proto": "4", "port": None, "ok": False,
            "reason": "5 packet(s) not received by w1"} in rows
    assert {"src": "cp1", "dst": "w1", "check": "kubelet", "proto": "tcp", "port": 10250, "ok": True,
            "reason": "refused"} in rows
    assert len(rows) == 29


@pytest.mark.parametrize("encap,blocked,errors,warnings", [
    ("IPIP", ("ipip",), ["NODE_PORT_BLOCKED"] * 3, []),
    ("VXLAN", ("ipip",), [], ["NODE_PORT_BLOCKED"]),
    ("VXLAN", ("vxlan",), ["NODE_PORT_BLOCKED"] * 6, []),
    ("IPIP", ("vxlan", "bgp"), ["NODE_PORT_BLOCKED"] * 6, ["NODE_PORT_BLOCKED"]),
    ("None", ("bgp",), ["NODE_PORT_BLOCKED"] * 6, []),
    ("None", ("ephemeral",), ["NODE_PORT_BLOCKED"] * 6, []),
])
def test_mode_decides_error_or_warning(encap, blocked, errors, warnings):
    findings, _s, _m = _run(blocked=blocked, encap=encap)
    assert [f["id"] for f in findings if f["severity"] == "error"] == errors
    assert [f["id"] for f in findings if f["severity"] == "warning"] == warnings


def test_unneeded_encap_warning_text():
    findings, _s, _m = _run(blocked=("ipip",), encap="VXLAN")
    assert findings[0]["observed"] == ("ip protocol 4 (IP-in-IP) blocked on 3 node pair(s) (cp1->w1, w1->w2, w2->cp1); "
                                       "not needed by Calico encapsulation VXLAN")


def test_blackhole_node_is_one_finding():
    findings, summary, matrix = _run(dead=("w2",))
    assert [(f["id"], f["where"]) for f in findings] == [("NODE_UNREACHABLE", "w2")]
    assert findings[0]["observed"] == "w2 (10.0.1.22) no peer reached it on any probe and it reached no peer"
    assert r.matrix_table(NODES, matrix)["cp1"]["w1"] == "ok"


def test_node_without_report():
    findings, summary, matrix = _run(no_report=("w1",))
    assert [(f["id"], f["observed"]) for f in findings] == [
        ("NODE_UNREACHABLE", "w1 (10.0.1.21) did not report (Ansible could not run the probe there)")]
    assert matrix[("w1", "cp1", "kubelet")] == ("unknown", "w1 did not report probe results")
    assert matrix[("cp1", "w1", "vxlan")] == ("unknown", "w1's listener did not report")
    assert summary["unknown"] > 0


def test_without_sg_id_the_fix_names_a_placeholder():
    findings, _s, _m = _run(blocked=("ephemeral",), sg_id=None)
    assert "--group-id <node-sg-id>" in findings[0]["remediation"]


def _with_times(probes, send, listen):
    out = {}
    for name, rep in probes.items():
        rep = dict(rep, send=send.get(name, [100.0, 101.0]), listen=listen.get(name, [99.9, 102.0]))
        out[name] = rep
    return out


def test_packet_not_received_while_the_peer_listened_is_blocked():
    probes = dict((n, _probe_report(n)) for n in NODES)
    listens = dict((n, _listen_report(n, blocked=("vxlan",))) for n in NODES)
    listens = dict((n, dict(listens[n], listen=[99.9, 102.0])) for n in NODES)
    matrix = r.build_matrix(NODES, CPS, _with_times(probes, {}, {}), listens)
    assert matrix[("w1", "w2", "vxlan")] == ("blocked", "5 packet(s) not received by w2")


def test_packet_sent_before_the_peer_listened_is_unknown_not_blocked():
    # w2 opened its listener only after w1 had stopped sending (forks lower than the node count)
    probes = _with_times(dict((n, _probe_report(n)) for n in NODES), {}, {})
    listens = dict((n, dict(_listen_report(n, dead=("w1",)), listen=[99.9, 102.0])) for n in NODES)
    listens["w2"]["listen"] = [105.0, 108.0]
    matrix = r.build_matrix(NODES, CPS, probes, listens)
    status, detail = matrix[("w1", "w2", "vxlan")]
    assert status == "unknown"
    assert detail == ("w2 was not listening while w1 sent (the nodes did not run at the same time: "
                      "Ansible forks lower than the number of nodes?)")
    # a packet that did arrive is ok whatever the intervals say
    assert matrix[("cp1", "w2", "vxlan")][0] == "ok"


def test_one_report_per_node_carries_probes_and_receipts():
    reports = dict((n, dict(_probe_report(n), **_listen_report(n))) for n in NODES)
    findings, summary, _m = r.analyse(NODES, CPS, reports, calico_encapsulation="IPIP", sg_id="sg-1")
    assert findings == [] and summary["ok"] == summary["probes"] == 29


@pytest.mark.parametrize("send,count,listen,expected", [
    ([0.0, 4.0], 21, [0.0, 10.0], 21),    # the whole window while listening
    ([0.0, 4.0], 21, [3.9, 10.0], 1),     # the windows barely touch: one packet
    ([0.0, 4.0], 21, [3.6, 10.0], 3),     # 0.4 s of overlap at 0.2 s spacing: 3 packets
    ([0.0, 4.0], 21, [4.1, 10.0], 0),     # the receiver opened after the last packet
    ([5.0, 5.0], 1, [0.0, 10.0], 1),      # one packet inside
    ([0.0, 4.0], None, [0.0, 10.0], None),  # no per-probe count: unknown
    (None, 5, [0.0, 1.0], None),
])
def test_sent_while_listening(send, count, listen, expected):
    assert r.sent_while_listening(send, count, listen) == expected


def _late_pair(listen_w2, per_probe=True):
    # w1 sent its vxlan probe to w2 21 times from 100.0 to 104.0; w2 received nothing from w1
    probes = _with_times(dict((n, _probe_report(n)) for n in NODES), {"w1": [100.0, 104.0]}, {})
    sent = [[d, c, 21, False] + ([100.0, 104.0] if per_probe else []) for d, c, *_rest in probes["w1"]["sent"]]
    probes["w1"] = dict(probes["w1"], sent=sent)
    listens = dict((n, dict(_listen_report(n, dead=("w1",)), listen=[99.9, 106.0])) for n in NODES)
    listens["w2"]["listen"] = listen_w2
    return r.build_matrix(NODES, CPS, probes, listens)


def test_a_silence_barely_inside_the_peers_listening_is_unknown_not_blocked():
    # the bench's false error on a healthy 50-node lab at load 15: w2 closed just after w1 started
    status, detail = _late_pair([95.0, 100.1])[("w1", "w2", "vxlan")]
    assert status == "unknown"
    assert detail.startswith("only 1 packet(s) left w1 while w2 listened, too few to call a drop")


def test_a_silence_with_enough_packets_while_the_peer_listened_is_blocked():
    assert _late_pair([95.0, 100.6])[("w1", "w2", "vxlan")][0] == "blocked"   # 4 packets inside
    assert _late_pair([95.0, 110.0])[("w1", "w2", "vxlan")][0] == "blocked"
    # older reports without per-probe times: the node's send interval decides
    assert _late_pair([95.0, 110.0], per_probe=False)[("w1", "w2", "vxlan")][0] == "blocked"
    assert _late_pair([95.0, 100.1], per_probe=False)[("w1", "w2", "vxlan")][0] == "unknown"
