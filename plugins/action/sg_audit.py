# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action of sg_audit: started in the background on the controller, it runs without async_wrapper."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kubeadm_ec2.cluster.plugins.plugin_utils.local_async import LocalAsyncAction


class ActionModule(LocalAsyncAction):
    JOB_NAME = "sg_audit"
