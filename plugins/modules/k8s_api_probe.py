#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The work happens in the action plugin of the same name (plugins/action/k8s_api_probe.py), on the
# controller; this file carries its documentation.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: k8s_api_probe
short_description: Can the controller reach the Kubernetes API? One bounded request
version_added: "0.2.0"
description:
  - Runs on the controller (an action plugin). Sends C(GET /version) to the server of the kubeconfig's
    context, with its CA and client certificate or token, and says whether an HTTP answer (any status)
    came back within I(timeout).
  - Tells a refused or black-holed connection from a server that accepts the connection but never answers.
author:
  - kubeadm_ec2 maintainers (@kubeadm-ec2)
options:
  kubeconfig:
    description: The kubeconfig; default the first file of C(KUBECONFIG), else C(~/.kube/config).
    type: path
  context:
    description: The context to use; default the current context.
    type: str
  timeout:
    description: Seconds for the whole probe (connect, TLS, answer).
    type: float
    default: 3.0
  record:
    description:
      - When the API answers, also set the fact C(validate_plan.k8s) (merged into C(validate_plan)), which
        says that the Kubernetes reads of validate run on the controller with the kubeconfig as it is
        (C(delegate) localhost, no C(kubeconfig) of its own, no C(become), C(usable) true, C(server), C(line),
        an empty C(failure)).
      - When it does not answer, nothing is recorded (role C(validate_api) then looks for a fallback).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Probe the API from the controller
  kubeadm_ec2.cluster.k8s_api_probe:
    kubeconfig: "{{ kubeadm_ec2_kubeconfig }}"
  register: api
"""

RETURN = r"""
reachable:
  description: Whether the API answered within I(timeout).
  returned: always
  type: bool
server:
  description: The server URL of the kubeconfig's context.
  returned: always
  type: str
  sample: https://10.0.1.11:6443
reason:
  description: What happened (the HTTP status, or why there was no answer).
  returned: always
  type: str
  sample: 10.0.1.11:6443 accepted the connection but sent no answer within 3s
msg:
  description: One line saying whether the API answers the controller.
  returned: always
  type: str
finding:
  description: An C(API_UNREACHABLE) finding naming the server, when it did not answer.
  returned: when not reachable
  type: dict
kubeconfig:
  description: The kubeconfig that was read.
  returned: always
  type: str
seconds:
  description: Wall time of the probe.
  returned: always
  type: float
"""
