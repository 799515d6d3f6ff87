# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of the dns check: cluster reads + every node's host path + probe pods -> the check result."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase

from ansible_collections.kubeadm_ec2.cluster.plugins.action.reachability_report import host_results
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import dns as dnscheck
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.checks import check_result
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import errors, summary_message

CHECK = "dns_check"

ARGS = dict(
    cluster_result=dict(type="dict", default={}),
    host_results=dict(type="list", elements="raw"),
    hosts=dict(type="list", elements="str", default=[]),
    result_var=dict(type="str", default="validate_node_result"),
    pod_result=dict(type="dict", default={}),
    timeout=dict(type="float", default=2.0),
    dns_namespace=dict(type="str", default="kube-system"),
    probe_namespace=dict(type="str", default="default"),
    fail_on_findings=dict(type="bool", default=True),
)


def host_result(res):
    """The DNS host-path part of a registered node_probe result (None when the node did not report)."""
    if not isinstance(res, dict) or res.get("skipped") or res.get("unreachable"):
        return None
    part = res.get("dns")
    return part if isinstance(part, dict) and "queries" in part else None


def analyse(args):
    cres = args["cluster_result"] or {}
    hosts = [h for h in (host_result(r) for r in args["host_results"]) if h]
    pods = (args["pod_result"] or {}).get("pod_results") or []
    findings = dnscheck.analyze(cres.get("cluster_state") or {}, cres.get("findings") or [], hosts, pods,
                                args["timeout"], args["dns_namespace"], args["probe_namespace"])
    summary = dnscheck.node_summary(hosts, pods)
    problems = []  # parts of the check that could not run: a failed check even without findings
    for what, res in (("cluster reads", cres), ("probe pods", args["pod_result"] or {})):
        if res.get("failed") or res.get("job_failed") or res.get("finished") is False:
            problems.append("%s: %s" % (what, res.get("msg") or "failed"))
    msg = summary_message(CHECK, findings, "cluster DNS healthy\n" + "\n".join(summary))
    if problems:
        msg = "\n".join([msg] + problems)
    evidence = {"state": cres.get("cluster_state") or {}, "host_results": hosts, "pod_results": pods}
    res = check_result(findings, msg, evidence, failed=bool(problems))
    res.update(summary=summary, changed=False)
    return res, bool(errors(findings)) or bool(problems)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        _spec, args = self.validate_argument_spec(argument_spec=ARGS)
        if args["host_results"] is None:
            found = host_results(task_vars, args["hosts"], args["result_var"], registered=True)
            args["host_results"] = [found[h] for h in args["hosts"] if found[h] is not None]
        res, failed = analyse(args)
        result.update(res)
        if failed and args["fail_on_findings"]:
            result["failed"] = True
        return result
