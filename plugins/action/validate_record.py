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
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.checks import merge_plan

ARGS = dict(
    check=dict(type="str"),
    result=dict(type="raw"),
    timeout=dict(type="float"),
    plan=dict(type="dict"),
    stop=dict(type="str", default=""),
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


def record(args, task_vars):
    """The facts one validate_record task sets: (facts, recorded check result or None).

    ``stop`` (with ``check``): the check cannot run, it is recorded as failed with that message and the
    plan is not merged; ``plan`` (and no stop): merged into validate_plan; ``check`` with ``result``:
    the check's result recorded in validate_results."""
    task_vars = task_vars or {}
    if args.get("plan") is not None and not args.get("stop"):
        if args.get("check") and args.get("result") is not None:
            raise AnsibleActionFail("validate_record: give either check with result or plan")
        return {"validate_plan": merge_plan(task_vars.get("validate_plan"), args["plan"])}, None
    if not args.get("check"):
        raise AnsibleActionFail("validate_record: give check (with result or stop), or plan")
    if args.get("stop"):
        check = normalise({"failed": True, "msg": args["stop"]})
    else:
        check = normalise(args.get("result"), args.get("timeout"))
    shared = dict(task_vars.get("validate_results") or {})
    shared[args["check"]] = check
    return {"validate_results": shared}, check


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        _spec, args = self.validate_argument_spec(argument_spec=ARGS)
        facts, check = record(args, task_vars)
        if check is not None:
            result["check"] = check
        result.update(changed=False, ansible_facts=facts)
        return result
