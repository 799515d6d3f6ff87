# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write into validate's shared structures: a check result into validate_results, a part of the node
task's plan into validate_plan (both facts of the host the task runs for, usually localhost)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import checks

ARGS = dict(
    check=dict(type="str"),
    result=dict(type="raw"),
    timeout=dict(type="float"),
    plan=dict(type="dict"),
)


def normalise(result, timeout=None):
    """A check result ({status, msg, findings, evidence}) from a registered task result."""
    if isinstance(result, dict) and result.get("ansible_job_id") and result.get("finished") is False:
        return checks.check_result(status=checks.FAILED, msg="did not finish within %s (job %s)" % (
            "%gs" % timeout if timeout else "its time", result["ansible_job_id"]))
    if isinstance(result, dict) and result.get("job_failed"):  # a failed kubeadm_ec2.cluster.job_wait job
        result = dict(result, failed=True)
    if isinstance(result, dict) and result.get("status") in checks.STATUSES and "findings" in result:
        return checks.check_result(result.get("findings"), result.get("msg"), result.get("evidence"),
                                   status=result["status"])
    return checks.from_task_result(result)


# the keys of validate_plan that several roles add entries to (one per check)
MERGED = ("analyses", "jobs")


def merge_plan(shared, plan):
    """validate_plan with ``plan``'s keys: each replaces the one before, except ``analyses`` and ``jobs``,
    whose entries (one per check, recorded by different roles) are merged."""
    out = dict(shared or {})
    for key, value in plan.items():
        if key in MERGED and isinstance(value, dict):
            value = dict(out.get(key) or {}, **value)
        out[key] = value
    return out


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        _spec, args = self.validate_argument_spec(argument_spec=ARGS)
        task_vars = task_vars or {}
        if bool(args["check"]) == bool(args["plan"]):
            raise AnsibleActionFail("validate_record: give either check (with result) or plan")
        facts = {}
        if args["check"]:
            check = normalise(args["result"], args["timeout"])
            shared = dict(task_vars.get("validate_results") or {})
            shared[args["check"]] = check
            facts["validate_results"] = shared
            result["check"] = check
        else:
            facts["validate_plan"] = merge_plan(task_vars.get("validate_plan"), args["plan"])
        result.update(changed=False, ansible_facts=facts)
        return result
