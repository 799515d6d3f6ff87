#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The work happens in the action plugin of the same name (plugins/action/job_wait.py); this file
# carries its documentation.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: job_wait
short_description: Wait, bounded, for a background (async) task and return its result
version_added: "0.2.0"
description:
  - Waits until the job started with C(async) and C(poll=0) finished, or I(timeout) passed, in one task.
  - A job on the controller (local connection, no become) is read from its job file directly, without
    a module run per poll; other jobs are polled with C(ansible.builtin.async_status).
  - Never fails because the job failed. The job's own result is returned (its keys at the top level,
    without C(failed) and C(changed)) with C(job_failed), so a caller can report every check. The
    finished job's file is removed (I(cleanup)).
author:
  - kubeadm_ec2 maintainers (@kubeadm-ec2)
options:
  job:
    description:
      - The registered result of the task that may have started the job. Without C(ansible_job_id)
        (the task ran in the foreground with C(async=0), or was skipped) it is returned as it is.
      - One of I(job) and I(jid) is required.
    type: dict
  jid:
    description: The job id (C(ansible_job_id) of the registered async task).
    type: str
  timeout:
    description: Seconds to wait at most.
    type: float
    default: 60.0
  interval:
    description: Seconds between polls (at least 0.5 for remote jobs).
    type: float
    default: 0.1
  cleanup:
    description: Remove the job file of a finished local job.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Start a check in the background
  kubeadm_ec2.cluster.sg_audit:
    filters: {"tag:kubeadm_ec2/cluster": demo}
  async: 120
  poll: 0
  register: audit_job

- name: Wait for it
  kubeadm_ec2.cluster.job_wait:
    job: "{{ audit_job }}"
    timeout: 120
  register: audit
"""

RETURN = r"""
finished:
  description: Whether the job finished within I(timeout).
  returned: always
  type: bool
job_failed:
  description: Whether the job's result is a failure.
  returned: always
  type: bool
ansible_job_id:
  description: The job id.
  returned: always
  type: str
"""
