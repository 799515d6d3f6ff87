# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check the cluster-wide contract in one step (analysis/contract.py), remember that it was checked, and warn
about the old variable names still set (one DEPRECATED line)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import contract

ARGS = dict((key, dict(type="raw")) for key in contract.VARIABLES)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        _spec, args = self.validate_argument_spec(argument_spec=ARGS)
        problem = contract.first_problem(args)
        if problem:
            result.update(failed=True, msg=problem)
            return result
        # the other roles of this run skip the checks (roles/cluster_defaults/tasks/main.yml)
        result.update(changed=False, msg="the cluster-wide contract holds",
                      ansible_facts={"kubeadm_ec2_contract_checked": True})
        aliases = contract.used_aliases(task_vars or {})
        if aliases:
            result["deprecated_names"] = aliases
            result.setdefault("warnings", []).append(contract.deprecation_line(aliases))
        return result
