"""The lab's two-subnet mode (tests/lab/netlab.py, subnets=2): the multi-AZ layout Calico's CrossSubnet
modes are about, on real namespaces, bridges, a router namespace and iptables.

Proven both ways:
- node to node across the router: the security group model still decides (a probe that passes with the
  healthy group is dropped once the group allows nothing between the nodes);
- pod to pod without encapsulation: works inside a subnet, dies at the router across subnets (it has
  no route for pod CIDRs, like a VPC route table): across subnets only node-to-node (encapsulated)
  traffic gets through, which is why a CrossSubnet mode encapsulates only there;
- the validate_network role on that lab (node_probe on every node, real UDP 4789 and IP protocol 4
  packets through the router namespace, each node's subnet from the inventory's subnet_id): under a
  CrossSubnet mode a blocked encapsulation is an error for the cross-subnet pairs only.
Needs root; each test builds its own lab and tears it down.
"""

import os
import sys

import pytest

from tests.integration.test_network_reachability import run_reachability
from tests.lab.netlab import HEALTHY_SG, NetLab, run
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import reachability as reach

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the network lab needs root")

POD_RULE = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "192.168.0.0/16"}]}
# allow-listed between the nodes (no self-referencing all-traffic rule): every TCP port, plus UDP or IP-in-IP
TCP_SELF = [{"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "UserIdGroupPairs": [{"GroupId": "self"}]}]
UDP_SELF = {"IpProtocol": "udp", "FromPort": 0, "ToPort": 65535, "UserIdGroupPairs": [{"GroupId": "self"}]}
IPIP_SELF = {"IpProtocol": "4", "UserIdGroupPairs": [{"GroupId": "self"}]}
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


def _errors(res, check):
    return set((f["details"]["src"], f["details"]["dst"]) for f in res["findings"]
               if f["severity"] == "error" and check in f["details"].get("checks", []))


def test_cross_subnet_modes_on_real_probes_through_the_router():
    """The validate_network role (node_probe on every node, reachability_report on the controller) on the
    two-subnet lab: VXLAN (UDP 4789) and IP-in-IP (IP protocol 4) are real packets through the router
    namespace, and each node's subnet comes from its inventory host variable subnet_id.

    Both ways: IPIPCrossSubnet with IP protocol 4 dropped is an error only on the probed cross-subnet
    pairs, never on a same-subnet pair; VXLANCrossSubnet with UDP dropped is an error on exactly the
    cross-subnet pairs. Each run also shows the other protocol passing the router when allowed.
    """
    with NetLab(nodes=4, subnets=2, sg=TCP_SELF + [UDP_SELF]) as lab:
        nodes = [n["name"] for n in lab.nodes]
        pairs = set((a, b) for a in nodes for b in nodes if a != b)
        crossing = set((a, b) for a, b in pairs if not lab.same_subnet(a, b))
        ipip_probed = set((a, b) for a, b in pairs if reach.ipip_oriented(a, b, nodes))

        rc, res, _wall, out = run_reachability(lab, {"validate_network_calico_encapsulation": "IPIPCrossSubnet"})
        assert rc != 0, out
        assert res["evidence"]["subnets"] == {"node1": "lab-subnet-1", "node2": "lab-subnet-2",
                                              "node3": "lab-subnet-1", "node4": "lab-subnet-2"}, out
        per_check = res["summary"]["per_check"]
        # UDP 4789 got through the router (and inside each subnet) on every pair: a real probe, not a model
        assert per_check["vxlan"] == {"ok": 12, "blocked": 0, "unknown": 0}, out
        assert per_check["ipip"] == {"ok": 0, "blocked": 6, "unknown": 0}, out
        assert _errors(res, "ipip") == crossing & ipip_probed, out
        assert not _errors(res, "ipip") & (pairs - crossing)
        same = sorted("%s->%s" % p for p in (pairs - crossing) & ipip_probed)
        warn = [f for f in res["findings"] if f["severity"] == "warning"]
        assert len(warn) == 1 and sorted(warn[0]["details"]["pairs"]) == same, warn
        assert "not needed by Calico encapsulation IPIPCrossSubnet" in warn[0]["observed"]
        assert {f["id"] for f in res["findings"]} == {"NODE_PORT_BLOCKED"}

        lab.apply_sg(TCP_SELF + [IPIP_SELF])
        rc, res, _wall, out = run_reachability(lab, {"validate_network_calico_encapsulation": "VXLANCrossSubnet"})
        assert rc != 0, out
        per_check = res["summary"]["per_check"]
        assert per_check["vxlan"] == {"ok": 0, "blocked": 12, "unknown": 0}, out
        # IP protocol 4 passes the router once the group allows it
        assert per_check["ipip"] == {"ok": 6, "blocked": 0, "unknown": 0}, out
        assert _errors(res, "vxlan") == crossing, out
        warn = [f for f in res["findings"] if f["severity"] == "warning"]
        assert len(warn) == 1 and sorted(warn[0]["details"]["pairs"]) == sorted("%s->%s" % p for p in pairs - crossing)
