#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The work happens in the action plugin of the same name (plugins/action/dns_report.py), on the
# controller; this file carries its documentation.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: dns_report
short_description: Combine the cluster DNS reads, every node's host path and the probe pods into findings
version_added: "0.2.0"
description:
  - Runs on the controller (an action plugin). Knows which CoreDNS endpoint lives on which node, so a
    cross-node timeout is reported with the node pair, and an external name failing only at unreachable
    endpoints is not taken for an upstream problem.
  - Returns the dns check result C({status, msg, findings, evidence}) and a per-node summary.
author:
  - kubeadm_ec2 maintainers (@kubeadm-ec2)
options:
  cluster_result:
    description: The registered result of M(kubeadm_ec2.cluster.dns_cluster_info) (or of async_status on it).
    type: dict
    default: {}
  host_results:
    description:
      - The registered M(kubeadm_ec2.cluster.node_probe) results of the nodes (their C(dns) part is read).
      - Default, the host variable I(result_var) of each of I(hosts).
    type: list
    elements: raw
  hosts:
    description: The nodes whose I(result_var) holds their node_probe result (when I(host_results) is not given).
    type: list
    elements: str
    default: []
  result_var:
    description: The variable the nodes registered their node_probe result in.
    type: str
    default: validate_node_result
  pod_result:
    description: The registered result of M(kubeadm_ec2.cluster.dns_probe_pods).
    type: dict
    default: {}
  timeout:
    description: The per-query timeout the nodes and pods used.
    type: float
    default: 2.0
  dns_namespace:
    description: Namespace of CoreDNS and the DNS Service.
    type: str
    default: kube-system
  probe_namespace:
    description: Namespace of the probe pods.
    type: str
    default: default
  fail_on_findings:
    description: Fail when error findings exist, or when the cluster reads or probe pods failed.
    type: bool
    default: true
seealso:
  - module: kubeadm_ec2.cluster.node_probe
  - module: kubeadm_ec2.cluster.dns_cluster_info
  - module: kubeadm_ec2.cluster.dns_probe_pods
"""

EXAMPLES = r"""
- name: Combine and fail with every finding
  kubeadm_ec2.cluster.dns_report:
    cluster_result: "{{ dns_cluster }}"
    hosts: "{{ ansible_play_hosts }}"
    result_var: probe
    pod_result: "{{ dns_pods }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
status:
  description: passed or failed.
  returned: always
  type: str
msg:
  description: The failing findings, or the healthy summary.
  returned: always
  type: str
findings:
  description: Problems found; each has id, severity, where, observed, why, remediation and optional details.
  returned: always
  type: list
  elements: dict
evidence:
  description: C(state) (the cluster summary), C(host_results) and C(pod_results).
  returned: always
  type: dict
summary:
  description: One line per node.
  returned: always
  type: list
  elements: str
  sample: ["node1: 3/3 names via 10.96.0.10, 2/2 CoreDNS endpoints answer (slowest 3 ms)"]
"""
