#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The work happens in the action plugin of the same name (plugins/action/contract_check.py); this
# file carries its documentation.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: contract_check
short_description: Check the cluster-wide contract's values in one step
version_added: "0.2.0"
description:
  - Runs on the controller (an action plugin). Checks the values of the cluster-wide contract that
    roles/cluster_defaults holds and stops at the first problem with a message that starts with
    C(Stop:) and names the variable to fix.
  - On success sets the fact C(kubeadm_ec2_contract_checked), so that the other roles of the run skip
    the checks.
author:
  - kubeadm_ec2 maintainers (@kubeadm-ec2)
options:
  cluster_name:
    description: C(kubeadm_ec2_cluster_name), must not be empty.
    type: raw
  control_plane_group:
    description: C(kubeadm_ec2_control_plane_group), must not be empty.
    type: raw
  workers_group:
    description: C(kubeadm_ec2_workers_group), must not be empty.
    type: raw
  nodes_group:
    description: C(kubeadm_ec2_nodes_group), must not be empty.
    type: raw
  pod_cidr:
    description: C(kubeadm_ec2_pod_cidr), an IPv4 CIDR apart from the service CIDR.
    type: raw
  service_cidr:
    description: C(kubeadm_ec2_service_cidr), an IPv4 CIDR.
    type: raw
  cluster_dns_ip:
    description: C(kubeadm_ec2_cluster_dns_ip), inside the service CIDR.
    type: raw
  dns_domain:
    description: C(kubeadm_ec2_dns_domain), a DNS domain such as C(cluster.local).
    type: raw
  calico_encapsulation:
    description: C(kubeadm_ec2_calico_encapsulation), one of the Calico modes of the collection's table.
    type: raw
  kubeconfig:
    description: C(kubeadm_ec2_kubeconfig), must not be empty.
    type: raw
"""

EXAMPLES = r"""
- name: Check the cluster-wide contract
  kubeadm_ec2.cluster.contract_check:
    cluster_name: "{{ kubeadm_ec2_cluster_name }}"
    pod_cidr: "{{ kubeadm_ec2_pod_cidr }}"
    service_cidr: "{{ kubeadm_ec2_service_cidr }}"
  run_once: true
"""

RETURN = r"""
msg:
  description: The first problem (starting with C(Stop:)), or that the contract holds.
  returned: always
  type: str
  sample: "Stop: kubeadm_ec2_dns_domain must be a DNS domain such as cluster.local (got 'Cluster')."
"""
