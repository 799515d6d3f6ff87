# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one table of Calico encapsulation modes (pure, no I/O).

Every place that needs to know what a mode means reads it from here: the calico role (through the
``kubeadm_ec2.cluster.calico_mode`` / ``calico_modes`` filters), the security-group audit (analysis/sg.py)
and the reachability analysis (analysis/reachability.py).

A mode is the value of the operator Installation's ``ipPools[].encapsulation``. For each one:
  ipip_mode / vxlan_mode  the IPPool ipipMode / vxlanMode it produces
  bgp                     whether BGP (BIRD, tcp/179) distributes the routes (Installation calicoNetwork.bgp)
  needs                   what must pass between nodes: "ipip" (IP protocol 4), "vxlan" (udp/4789), "bgp" (tcp/179)
  cross_subnet            encapsulated only between nodes of different subnets; unencapsulated (and so subject
                          to the EC2 source/destination check) within a subnet
  encapsulated            whether any traffic is encapsulated at all
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

MODES = {
    "IPIP": {"ipip_mode": "Always", "vxlan_mode": "Never", "bgp": True,
             "needs": ("ipip", "bgp"), "cross_subnet": False, "encapsulated": True},
    "IPIPCrossSubnet": {"ipip_mode": "CrossSubnet", "vxlan_mode": "Never", "bgp": True,
                        "needs": ("ipip", "bgp"), "cross_subnet": True, "encapsulated": True},
    "VXLAN": {"ipip_mode": "Never", "vxlan_mode": "Always", "bgp": False,
              "needs": ("vxlan",), "cross_subnet": False, "encapsulated": True},
    "VXLANCrossSubnet": {"ipip_mode": "Never", "vxlan_mode": "CrossSubnet", "bgp": False,
                         "needs": ("vxlan",), "cross_subnet": True, "encapsulated": True},
    "None": {"ipip_mode": "Never", "vxlan_mode": "Never", "bgp": True,
             "needs": ("bgp",), "cross_subnet": False, "encapsulated": False},
}
ENCAPSULATIONS = tuple(MODES)
DEFAULT = "IPIP"


def mode(name):
    """The settings of mode ``name``; ValueError naming the valid modes for anything else."""
    try:
        return MODES[name]
    except (KeyError, TypeError):
        raise ValueError("unknown Calico encapsulation %r; valid: %s" % (name, ", ".join(ENCAPSULATIONS)))


def needs(name):
    """What must pass between nodes for mode ``name`` (empty for an unknown mode)."""
    return MODES.get(name, {}).get("needs", ())


def is_cross_subnet(name):
    return bool(MODES.get(name, {}).get("cross_subnet"))


def pair_needs(name, same_subnet):
    """What must pass between two nodes for mode ``name``: a CrossSubnet mode routes natively between
    nodes of one subnet, so there only BGP is left (when the mode uses it). Pairs whose subnets are not
    known count as crossing subnets."""
    if same_subnet and is_cross_subnet(name):
        return tuple(n for n in needs(name) if n == "bgp")
    return needs(name)


def from_pool_modes(ipip_mode, vxlan_mode):
    """The mode of an IPPool from its ipipMode / vxlanMode (missing = Never); vxlanMode wins when both are set."""
    for field, value in (("vxlan_mode", vxlan_mode), ("ipip_mode", ipip_mode)):
        if value and value != "Never":
            for name, settings in MODES.items():
                if settings[field] == value:
                    return name
    return "None"
