"""The lab's two-subnet mode (tests/lab/netlab.py, subnets=2): the multi-AZ layout Calico's CrossSubnet
modes are about, on real namespaces, bridges, a router namespace and iptables.

Proven both ways:
- node to node across the router: the security group model still decides (a probe that passes with the
  healthy group is dropped once the group allows nothing between the nodes);
- pod to pod without encapsulation: works inside a subnet, dies at the router across subnets (it has
  no route for pod CIDRs, like a VPC route table): across subnets only node-to-node (encapsulated)
  traffic gets through, which is why a CrossSubnet mode encapsulates only there;
- the analysis of such a matrix (analysis/reachability.py) with the lab's subnets: a VXLAN port the
  group blocks is an error for the cross-subnet pairs only under VXLANCrossSubnet.
Needs root; each test builds its own lab and tears it down.
"""

import os
import sys

import pytest

from tests.lab.netlab import HEALTHY_SG, NetLab, run
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import reachability as reach

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the network lab needs root")

POD_RULE = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "192.168.0.0/16"}]}
# every TCP port and IP-in-IP between the nodes, no UDP: VXLAN is blocked
NO_VXLAN = [
    {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "UserIdGroupPairs": [{"GroupId": "self"}]},
    {"IpProtocol": "4", "UserIdGroupPairs": [{"GroupId": "self"}]},
]
CONNECT = ("import socket, sys\ns = socket.socket(); s.settimeout(float(sys.argv[3]))\n"
           "try:\n    s.connect((sys.argv[1], int(sys.argv[2]))); print('open')\n"
           "except ConnectionRefusedError:\n    print('refused')\nexcept OSError as exc:\n    print('blocked %s' % exc)\n")


def connect(ns, ip, port=40123, timeout=2.0):
    """'refused' / 'open' when the SYN got through, 'blocked ...' when it was dropped (bounded)."""
    return run([sys.executable, "-c", CONNECT, ip, str(port), str(timeout)], ns=ns).stdout.strip()


def test_nodes_alternate_between_two_subnets_joined_by_the_router():
    with NetLab(nodes=4, subnets=2, sg=HEALTHY_SG) as lab:
        assert [(n["name"], n["subnet"]) for n in lab.nodes] == [
            ("node1", "10.231.0.0/24"), ("node2", "10.231.2.0/24"), ("node3", "10.231.0.0/24"), ("node4", "10.231.2.0/24")]
        inv = lab.inventory()["all"]["children"]["k8s_cluster"]["children"]
        hosts = dict(inv["control_plane"]["hosts"], **inv["workers"]["hosts"])
        assert {h: v["subnet_id"] for h, v in hosts.items()} == {
            "node1": "lab-subnet-1", "node2": "lab-subnet-2", "node3": "lab-subnet-1", "node4": "lab-subnet-2"}
        n1 = lab.node("node1")["ns"]
        # same subnet and across the router: the SYN arrives (nothing listens: refused)
        assert connect(n1, lab.node("node3")["ip"]) == "refused"
        assert connect(n1, lab.node("node2")["ip"]) == "refused"
        # the security group still decides across the router: nothing allowed between nodes -> dropped
        lab.apply_sg([])
        assert connect(n1, lab.node("node2")["ip"]).startswith("blocked")
        assert connect(n1, lab.node("node3")["ip"]).startswith("blocked")


def test_unencapsulated_pod_traffic_stays_inside_its_subnet():
    with NetLab(nodes=3, subnets=2, sg=HEALTHY_SG + [POD_RULE]) as lab:
        pod1 = lab.add_pod("node1", "a")
        pod2 = lab.add_pod("node2", "b")   # other subnet
        pod3 = lab.add_pod("node3", "c")   # same subnet as node1
        assert connect(pod1["ns"], pod3["ip"]) == "refused"
        assert connect(pod1["ns"], pod2["ip"]).startswith("blocked")
        # the router has no route for the pod CIDRs
        res = run(["ip", "route", "get", pod2["ip"]], ns=lab.router, check=False)
        assert res.returncode != 0 and "unreachable" in res.stderr.lower()
        # without the pod rule the same-subnet path is dropped by the group: the rule is what let it through
        lab.apply_sg(HEALTHY_SG)
        assert connect(pod1["ns"], pod3["ip"]).startswith("blocked")


def test_cross_subnet_matrix_blocks_vxlan_only_where_it_is_needed():
    """Real TCP probes through the lab (VXLAN's verdict from the group model), analysed with the subnets."""
    with NetLab(nodes=4, subnets=2, sg=NO_VXLAN) as lab:
        nodes = {n["name"]: n["ip"] for n in lab.nodes}
        subnets = {n["name"]: n["subnet"] for n in lab.nodes}
        probes, listens = {}, {}
        for src in nodes:
            results, sent = [], []
            for dst in nodes:
                if dst == src:
                    continue
                for check in reach.plan_checks(src, dst, ["node1"], names=list(nodes)):
                    proto = reach.CHECKS[check][0]
                    if proto == "tcp":
                        port = reach.DEFAULT_EPHEMERAL_PORT if check == "ephemeral" else reach.CHECKS[check][1]
                        verdict = connect(lab.node(src)["ns"], nodes[dst], port, 1.5)
                        results.append([dst, check, "blocked" if verdict.startswith("blocked") else "ok", verdict])
                    else:
                        results.append([dst, check, "sent", "1 packet(s)"])
                        sent.append([dst, check, 1])
            probes[src] = {"node": src, "ip": nodes[src], "results": results, "sent": sent}
        # what a listener would record under this group: IP-in-IP passes, UDP 4789 does not
        for dst in nodes:
            listens[dst] = {"missing": False, "received": [
                [nodes[src], "ipip", 1] for src in nodes if src != dst
                and "ipip" in reach.plan_checks(src, dst, ["node1"], names=list(nodes))]}
        findings, summary, _matrix = reach.analyse(nodes, ["node1"], probes, listens,
                                                   calico_encapsulation="VXLANCrossSubnet", subnets=subnets)
        errors = set((f["details"]["src"], f["details"]["dst"]) for f in findings if f["severity"] == "error")
        crossing = set((a, b) for a in nodes for b in nodes if a != b and subnets[a] != subnets[b])
        assert errors == crossing, findings
        # every pair's VXLAN probe is blocked, nothing else
        assert summary["blocked"] == len(nodes) * (len(nodes) - 1)
        warnings = [f for f in findings if f["severity"] == "warning"]
        assert len(warnings) == 1 and "not needed by Calico encapsulation VXLANCrossSubnet" in warnings[0]["observed"]
        # with plain VXLAN every pair needs it
        findings, _s, _m = reach.analyse(nodes, ["node1"], probes, listens, calico_encapsulation="VXLAN",
                                         subnets=subnets)
        assert len([f for f in findings if f["severity"] == "error"]) == len(nodes) * (len(nodes) - 1)
