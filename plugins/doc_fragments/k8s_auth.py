# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Kubernetes access options every module that reads the cluster shares (probes/k8s.py AUTH_ARGUMENT_SPEC)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  kubeconfig:
    description: Path to a kubeconfig; default is the usual kubeconfig lookup.
    type: path
  context:
    description: The kubeconfig context to use.
    type: str
  api_timeout:
    description: Timeout in seconds of each Kubernetes API request.
    type: float
    default: 10.0
"""
