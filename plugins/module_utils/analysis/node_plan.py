# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node-to-node probe plan (pure, no I/O, stdlib only): which checks each node runs against
each peer, on which ports. Shared by the nodes (probes/net.py, through node_probe) and the
controller's analysis (analysis/reachability.py, which re-exports these names), and kept apart
from the analysis so that the node task ships and compiles only this.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

VXLAN_PORT = 4789
IPPROTO_IPIP = 4
DEFAULT_EPHEMERAL_PORT = 40123

# name -> (protocol, port, label, who needs it). Which rule or device dropped a blocked probe is not
# known here: the diagnosis (analysis/diagnosis.py) decides that from the security group as EC2 holds it.
CHECKS = {
    "kubelet": ("tcp", 10250, "tcp/10250", "kubelet API (kubectl logs/exec, metrics-server), every Calico mode"),
    "apiserver": ("tcp", 6443, "tcp/6443", "kube-apiserver from every node, every Calico mode"),
    "etcd-client": ("tcp", 2379, "tcp/2379", "etcd clients between control planes, every Calico mode"),
    "etcd-peer": ("tcp", 2380, "tcp/2380", "etcd peers between control planes, every Calico mode"),
    "bgp": ("tcp", 179, "tcp/179", "Calico BGP peering (BIRD): ipipMode Always/CrossSubnet and unencapsulated pools"),
    "typha": ("tcp", 5473, "tcp/5473", "Calico Typha (Felix to Typha), every Calico mode when Typha runs"),
    "vxlan": ("udp", VXLAN_PORT, "udp/4789", "Calico VXLAN: vxlanMode Always/CrossSubnet"),
    "ipip": ("ip", IPPROTO_IPIP, "ip protocol 4 (IP-in-IP)", "Calico IPIP: ipipMode Always/CrossSubnet"),
    "ephemeral": ("tcp", DEFAULT_EPHEMERAL_PORT, "tcp/ephemeral",
                  "pod-to-pod, ClusterIP and DNS traffic on arbitrary ports, every Calico mode (only a self-referencing "
                  "rule allows it)"),
}
CHECK_ORDER = ("kubelet", "apiserver", "etcd-client", "etcd-peer", "bgp", "typha", "vxlan", "ipip", "ephemeral")

ENCAP_CHECKS = ("bgp", "vxlan", "ipip")
IPIP_NOTE = (" (IP protocol 4 is probed in one direction per node pair: security groups track it by address pair,"
             " so the reverse direction would pass as a reply)")


def label(check, ephemeral_port=DEFAULT_EPHEMERAL_PORT):
    if check == "ephemeral":
        return "tcp/%d (ephemeral)" % ephemeral_port
    return CHECKS[check][2]


def ipip_oriented(src, dst, names):
    """Whether the IP-in-IP check runs from ``src`` to ``dst``: one direction per node pair.

    Security groups (and the lab's conntrack) track IP protocol 4 by address pair only, so once
    ``dst`` sent a protocol-4 packet to ``src``, ``src`` -> ``dst`` passes as a reply whatever the
    inbound rules say. Each pair is therefore tested in one direction only, chosen as a round-robin
    tournament over the sorted names so that every node is the receiving side for about half of
    its peers, and the same direction on every run.
    """
    order = sorted(names)
    n = len(order)
    i, j = order.index(src), order.index(dst)
    d = (j - i) % n
    if 2 * d == n:
        return i < j
    return 0 < d <= n // 2


def plan_checks(src, dst, control_planes, typha=False, names=None):
    """The checks ``src`` runs against ``dst`` (role-dependent ports; IP-in-IP per ipip_oriented())."""
    out = ["kubelet"]
    if dst in control_planes:
        out.append("apiserver")
        if src in control_planes:
            out.extend(["etcd-client", "etcd-peer"])
    out.append("bgp")
    if typha:
        out.append("typha")
    out.append("vxlan")
    if names is None or ipip_oriented(src, dst, names):
        out.append("ipip")
    out.append("ephemeral")
    return out


def validate_nodes(nodes):
    """Return an error message naming the bad entry of ``nodes`` (name -> IPv4), or None."""
    if not nodes:
        return "nodes: at least one node (name -> private IP) is required"
    for name, ip in sorted(nodes.items()):
        try:
            ipaddress.IPv4Address(str(ip))
        except ValueError:
            return "nodes: %r has no valid private IPv4 address (got %r); set private_ip_address for it in the inventory" % (name, ip)
    return None
