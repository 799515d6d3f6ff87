#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The work happens in the action plugin of the same name (plugins/action/validate_report.py), on the
# controller; this file carries its documentation.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: validate_report
short_description: Build, write and print the validate report from every check result
version_added: "0.2.0"
description:
  - Runs on the controller (an action plugin), as the last task of C(kubeadm_ec2.cluster.validate).
  - Takes every check result C({status, msg, findings, evidence}), infers the root causes
    (C(analysis.diagnosis)), and builds the report C({headline, root_causes, checks, unexplained}).
  - Writes it as JSON (I(report_file)), HTML (I(html_file)) and JUnit XML (I(junit_file)), each
    when set, and returns the text report as C(msg). Fails when a check failed (I(fail_on_errors)).
author:
  - kubeadm_ec2 maintainers (@kubeadm-ec2)
options:
  checks:
    description: Check name to its result (the shared C(validate_results) of localhost).
    type: dict
    default: {}
  check_hosts:
    description:
      - Hosts whose fact C(validate_results) holds more check results (in C(kubeadm_ec2.cluster.validate),
        each controller check's own host); merged over I(checks).
    type: list
    elements: str
    default: []
  jobs:
    description:
      - The results of the M(kubeadm_ec2.cluster.job_wait) loop over the background jobs of
        C(validate_plan.jobs) (C(dict2items)), each naming its job in C(item.key). A job named after an
        enabled check that has no result yet becomes that check's result (a job that did not finish
        within C(item.value.timeout) is a failed check that says so); C(dns_pods) is the DNS probe
        pods' result, which the C(dns) analysis reads.
    type: list
    elements: dict
    default: []
  plan:
    description:
      - The shared C(validate_plan). Its C(analyses) say which checks are analysed here from the nodes'
        reports (the registered I(node_result_var) of each node), C(node_reachability) (the matrix of
        C(reachability) with C(calico_encapsulation), C(security_group_id)) and C(dns) (C(cluster_result),
        C(timeout), C(dns_namespace), C(probe_namespace), and when C(pods) is true the probe pods' job
        C(dns_pods) of I(jobs)).
      - A check that already has a result (it could not run) keeps it.
    type: dict
    default: {}
  node_hosts:
    description: The nodes whose reports the C(dns) analysis reads.
    type: list
    elements: str
    default: []
  node_result_var:
    description: The name each node registered its M(kubeadm_ec2.cluster.node_probe) result under.
    type: str
    default: validate_node_result
  order:
    description: Every check name, in report order.
    type: list
    elements: str
    required: true
  enabled:
    description: The checks that ran (the others are reported as skipped); must be names of I(order).
    type: list
    elements: str
    required: true
  report_file:
    description: Write the report as JSON here.
    type: path
  html_file:
    description: Write the report as one self-contained HTML file here.
    type: path
  junit_file:
    description: Write the report as JUnit XML here (one testcase per check).
    type: path
  check_files:
    description:
      - Check name to a file to write that check's own result to (JSON), when the check ran; an empty
        path writes nothing. C(kubeadm_ec2.cluster.validate) passes C(validate_dns_result_file) as C(dns).
    type: dict
    default: {}
  fail_on_errors:
    description: Fail when a check failed.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Report
  kubeadm_ec2.cluster.validate_report:
    checks: "{{ validate_results }}"
    order: [sg_audit, node_reachability, dns, image_arch]
    enabled: [sg_audit, node_reachability, dns, image_arch]
    report_file: /tmp/report.json
"""

RETURN = r"""
msg:
  description: The text report.
  returned: always
  type: str
headline:
  description: C(healthy), or how many root causes explain how many findings.
  returned: always
  type: str
  sample: 2 root causes explain 22 findings
statuses:
  description: Check name to passed, failed or skipped.
  returned: always
  type: dict
failed_checks:
  description: Names of the failed checks.
  returned: always
  type: list
  elements: str
errors:
  description: Number of error findings.
  returned: always
  type: int
root_causes:
  description: Number of root causes.
  returned: always
  type: int
files:
  description: The files written.
  returned: always
  type: list
  elements: str
"""
