#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The work happens in the action plugin of the same name (plugins/action/job_host_start.py); this file
# carries its documentation.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: job_host_start
short_description: Start the run's job host early and have it load the modules of the background jobs to come
version_added: "0.3.0"
description:
  - The collection's background modules (C(async) with C(poll=0) on the controller) run in one job host
    per ansible-playbook process, which imports each module once and forks every job from itself
    (plugins/plugin_utils/job_host.py). The first such task starts the host, and every job that comes
    while the host imports waits for it.
  - This task starts the host at once and asks it to import I(modules), so it has done so by the time
    the jobs start. It starts no job and changes nothing.
  - When the task's host would not run background modules in a job host (not a local connection,
    become, an C(environment), or no absolute C(ansible_python_interpreter)), it does nothing and says why.
author:
  - kubeadm_ec2 maintainers (@kubeadm-ec2)
options:
  modules:
    description:
      - The modules (collection names) whose jobs come later in this run, the one whose job must start
        first first.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Load the background modules while the play plans
  kubeadm_ec2.cluster.job_host_start:
    modules: [kubeadm_ec2.cluster.dns_probe_pods, kubeadm_ec2.cluster.sg_audit]

- name: Start a check in the background (its job starts without waiting for imports)
  kubeadm_ec2.cluster.sg_audit:
    filters: {"tag:kubeadm_ec2/cluster": demo}
  async: 120
  poll: 0
  register: audit_job
"""

RETURN = r"""
preloaded:
  description: The import names of the modules a job host took to load (empty when none could).
  returned: always
  type: list
  elements: str
"""
