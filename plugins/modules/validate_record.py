#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The work happens in the action plugin of the same name (plugins/action/validate_record.py); this
# file carries its documentation.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: validate_record
short_description: Write a check result or a part of the node plan into validate's shared structures
version_added: "0.2.0"
description:
  - With I(check) and I(result), turns a registered task result (a check module, an action plugin of
    this collection, or M(kubeadm_ec2.cluster.job_wait)) into the check result
    C({status, msg, findings, evidence}) and sets it as C(validate_results[check]), a fact.
  - With I(plan) (and no I(stop)), merges its keys into the fact C(validate_plan), what every node's
    M(kubeadm_ec2.cluster.node_probe) task runs. A key replaces the one recorded before, except
    C(analyses) (per check, what the report needs to analyse the nodes' reports) and C(jobs) (per
    background job C({job, timeout, delegate, become}), the registered async start, how long to wait
    for it and where), whose entries are merged.
  - Use C(delegate_to) and C(delegate_facts=true) to say whose facts they are (localhost for a role on
    its own, and in C(kubeadm_ec2.cluster.validate) each controller check's own host
    (C(validate_results_host))). M(kubeadm_ec2.cluster.validate_report) merges the C(validate_results)
    of localhost and of every check host.
author:
  - kubeadm_ec2 maintainers (@kubeadm-ec2)
options:
  check:
    description: The check name (sg_audit, node_reachability, dns, image_arch, paths).
    type: str
  result:
    description: The registered result of the check's task.
    type: raw
  timeout:
    description: The bound of a background job, named in the message when it did not finish.
    type: float
  plan:
    description: Keys to merge into C(validate_plan) (C(reachability), C(dns), C(become), C(k8s), C(analyses), C(jobs)).
    type: dict
  stop:
    description:
      - With I(check) and I(plan), why the check cannot run (its inputs are wrong; name the variables to
        set). When not empty, the check is recorded as failed with this message and the plan is not
        merged; when empty, the plan is merged. One task plans a check or records why it cannot run.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Record the sg_audit result
  kubeadm_ec2.cluster.validate_record:
    check: sg_audit
    result: "{{ sg_audit_job }}"
  delegate_to: localhost
  delegate_facts: true
"""

RETURN = r"""
check:
  description: The check result that was recorded.
  returned: with check
  type: dict
  sample: {"status": "failed", "msg": "...", "findings": [], "evidence": {}}
"""
