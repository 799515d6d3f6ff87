#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The work happens in the action plugin of the same name (plugins/action/reachability_report.py),
# on the controller; this file carries its documentation.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: reachability_report
short_description: Combine every node's node_probe report into the node-to-node matrix and findings
version_added: "0.2.0"
description:
  - Runs on the controller (an action plugin). Builds the matrix from what each node sent and received,
    tells dropped from not-listening-at-the-time, and returns the node_reachability check result
    C({status, msg, findings, evidence}) with the summary and a compact matrix.
  - Findings state what was observed. One C(NODE_PORT_BLOCKED) per node pair names the blocked
    ports/protocols, what needs each of them and the Calico mode. Its remediation does not say which
    device dropped the probes (this check cannot tell). If the security group lacks them, it gives the
    self-referencing rule (AWS CLI command, role variable C(ec2_network_sg_self_reference=true)) or the
    missing encapsulation rule. If the group allows them, the network ACL or the host firewall of the
    destination node. The root causes in the C(kubeadm_ec2.cluster.validate) report decide between
    those (C(SG_NO_SELF_REF), C(BLOCKED_OUTSIDE_SG)).
  - An encapsulation that is blocked but that the Calico mode does not need between those two nodes
    (CrossSubnet inside a subnet) is one warning over all such pairs. A node that reported nothing, or
    that nothing reached, is C(NODE_UNREACHABLE).
author:
  - kubeadm_ec2 maintainers (@kubeadm-ec2)
options:
  nodes:
    description: Every node of the cluster, inventory hostname to private IPv4 address.
    type: dict
    required: true
  control_planes:
    description: Names of the control plane nodes.
    type: list
    elements: str
    default: []
  results:
    description:
      - Node name to its registered M(kubeadm_ec2.cluster.node_probe) result (null when it did not run).
      - Default, each node's host variable I(result_var).
    type: dict
  result_var:
    description: The variable each node registered its node_probe result in (read when I(results) is not given).
    type: str
    default: validate_node_result
  typha:
    description: Typha (tcp 5473) was probed.
    type: bool
    default: false
  ephemeral_port:
    description: The "all traffic" probe port the nodes used.
    type: int
    default: 40123
  calico_encapsulation:
    description:
      - Encapsulation of the Calico IPPool. Decides which of IP-in-IP, BGP and VXLAN being blocked is an
        error; the others are warnings.
    type: str
    default: IPIP
    choices: [IPIP, IPIPCrossSubnet, VXLAN, VXLANCrossSubnet, None]
  security_group_id:
    description: The node security group id, used in the remediation commands (a placeholder otherwise).
    type: str
  subnets:
    description:
      - Node name to its subnet (id or CIDR). With a CrossSubnet encapsulation (C(IPIPCrossSubnet),
        C(VXLANCrossSubnet)) IP-in-IP / VXLAN are needed only between nodes of different subnets, so a
        blocked one between two nodes of one subnet is a warning, not an error.
      - Default, each node's host variable I(subnet_var) (the C(amazon.aws.aws_ec2) inventory sets C(subnet_id)).
        A node whose subnet is not known counts as being in a subnet of its own (its pairs cross subnets);
        the message says which nodes those are.
    type: dict
  subnet_var:
    description: The host variable holding each node's subnet (read when I(subnets) is not given).
    type: str
    default: subnet_id
  fail_on_findings:
    description: Fail when an error finding exists.
    type: bool
    default: true
seealso:
  - module: kubeadm_ec2.cluster.node_probe
"""

EXAMPLES = r"""
- name: Analyse the matrix
  kubeadm_ec2.cluster.reachability_report:
    nodes: "{{ nodes }}"
    control_planes: "{{ groups['control_plane'] }}"
    result_var: probe
    security_group_id: sg-0123456789abcdef0
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
status:
  description: passed or failed.
  returned: always
  type: str
  sample: failed
msg:
  description: The failing findings, or the matrix summary.
  returned: always
  type: str
findings:
  description: Problems found, each with id, severity, where (the node pair), observed, why and remediation.
  returned: always
  type: list
  elements: dict
evidence:
  description:
    - C(nodes), C(control_planes), C(matrix) (one row per probe, src, dst, check, proto, port, ok, status, reason),
      C(unreachable) and C(subnets) (node to subnet, the nodes whose subnet is known).
  returned: always
  type: dict
summary:
  description: Counts of the matrix and a one-line text.
  returned: always
  type: dict
  sample: {nodes: 3, pairs: 6, probes: 29, ok: 29, blocked: 0, unknown: 0, text: "3 nodes, 6 directed pairs, ..."}
matrix:
  description: Source node to destination node to C(ok) or the blocked/unknown checks.
  returned: always
  type: dict
  sample: {"node1": {"node2": "blocked: bgp, ipip, kubelet, ephemeral"}}
"""
