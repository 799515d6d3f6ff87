# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The validate report: every check result -> root causes, the report JSON (and HTML, JUnit), the text."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import tempfile

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.kubeadm_ec2.cluster.plugins.action import dns_report, reachability_report, validate_record
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import checks as checklib

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import render
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.diagnosis import diagnose, fill_node_sg

ARGS = dict(
    checks=dict(type="dict", default={}),
    check_hosts=dict(type="list", elements="str", default=[]),
    jobs=dict(type="list", elements="dict", default=[]),
    plan=dict(type="dict", default={}),
    node_hosts=dict(type="list", elements="str", default=[]),
    node_result_var=dict(type="str", default="validate_node_result"),
    order=dict(type="list", elements="str", required=True),
    enabled=dict(type="list", elements="str", required=True),
    report_file=dict(type="path"),
    html_file=dict(type="path"),
    junit_file=dict(type="path"),
    check_files=dict(type="dict", default={}),
    fail_on_errors=dict(type="bool", default=True),
)


def collect_checks(order, enabled, results):
    """{name: check result} in ``order``: missing enabled checks count as failed, others as skipped."""
    out = {}
    for name in order:
        res = results.get(name)
        if name not in enabled:
            out[name] = checklib.skipped()
        elif not isinstance(res, dict) or not res:
            out[name] = checklib.check_result(status=checklib.FAILED, msg="%s: the check left no result" % name)
        elif "status" in res and "findings" in res:
            out[name] = checklib.check_result(res.get("findings"), res.get("msg"), res.get("evidence"),
                                              status=res.get("status"))
        else:
            out[name] = checklib.from_task_result(res)
    return out


def _hostvar(task_vars, host, name):
    try:
        return ((task_vars or {}).get("hostvars") or {})[host].get(name)
    except (KeyError, AttributeError):
        return None


def job_results(jobs):
    """{name: (job_wait result, timeout)} of the background jobs. ``jobs`` holds the results of the
    job_wait loop over ``validate_plan.jobs`` (dict2items), so each names its job in ``item.key``."""
    out = {}
    for res in jobs or []:
        item = res.get("item") if isinstance(res, dict) else None
        if isinstance(item, dict) and item.get("key"):
            timeout = (item.get("value") or {}).get("timeout")
            try:
                timeout = float(timeout) if timeout not in (None, "") else None
            except (TypeError, ValueError):
                timeout = None
            out[item["key"]] = (res, timeout)
    return out


def gather(task_vars, args):
    """Every check result: ``checks`` (localhost's validate_results), then each check host's
    validate_results, then the background jobs named after a check (``jobs``), then the analyses of the
    nodes' reports (``plan.analyses``: node_reachability and dns, with the probe pods' job dns_pods)
    for the enabled checks that have no result yet (a check that could not run recorded its failure
    before the node play, and that stays)."""
    results = dict(args["checks"] or {})
    for host in args["check_hosts"]:
        results.update(_hostvar(task_vars, host, "validate_results") or {})
    jobs = job_results(args.get("jobs"))
    for name, (res, timeout) in jobs.items():
        if name in args["enabled"] and name not in results:
            results[name] = validate_record.normalise(res, timeout)
    plan = args["plan"] or {}
    analyses = plan.get("analyses") or {}
    # every node's registered node_probe result, read once for both analyses
    node_results = {}

    def nodes_reports(hosts):
        missing = [h for h in hosts if h not in node_results]
        node_results.update(reachability_report.host_results(task_vars, missing, args["node_result_var"],
                                                             registered=True))
        return dict((h, node_results[h]) for h in hosts)

    reach = analyses.get("node_reachability")
    probes = plan.get("reachability") or {}
    if reach is not None and probes and "node_reachability" in args["enabled"] and "node_reachability" not in results:
        nodes = probes.get("nodes") or {}
        rargs = dict(nodes=nodes, control_planes=probes.get("control_planes") or [], typha=bool(probes.get("typha")),
                     ephemeral_port=int(probes.get("ephemeral_port") or reachability_report.reach.DEFAULT_EPHEMERAL_PORT),
                     calico_encapsulation=reach.get("calico_encapsulation") or "IPIP",
                     security_group_id=reach.get("security_group_id") or None,
                     results=nodes_reports(list(nodes)),
                     subnets=reachability_report.host_results(task_vars, list(nodes), reach.get("subnet_var") or "subnet_id"),
                     subnet_var=reach.get("subnet_var") or "subnet_id")
        results["node_reachability"] = reachability_report.analyse(rargs)[0]
    dns = analyses.get("dns")
    if dns is not None and "dns" in args["enabled"] and "dns" not in results:
        found = nodes_reports(args["node_hosts"])
        pods = jobs.get("dns_pods", ({}, None))[0] if dns.get("pods") else {}
        dargs = dict(cluster_result=dns.get("cluster_result") or {}, pod_result=pods or {},
                     host_results=[found[h] for h in args["node_hosts"] if found[h] is not None],
                     timeout=float(dns.get("timeout") or 2.0), dns_namespace=dns.get("dns_namespace") or "kube-system",
                     probe_namespace=dns.get("probe_namespace") or "default")
        results["dns"] = dns_report.analyse(dargs)[0]
    return results


def write_atomic(path, text):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".validate-report-", dir=directory)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        _spec, args = self.validate_argument_spec(argument_spec=ARGS)
        unknown = [n for n in args["enabled"] if n not in args["order"]]
        if unknown:
            raise AnsibleError("validate_checks may only name %s; got unknown %s"
                               % (", ".join(args["order"]), ", ".join(unknown)))
        checks = collect_checks(args["order"], args["enabled"], gather(task_vars, args))
        try:
            # the node security group's id (when sg_audit found it) in every fix that names the group
            checks = fill_node_sg(checks)
            causes = diagnose(checks)
        except Exception as exc:  # a diagnosis bug must not cost the report  # pylint: disable=broad-except
            causes = []
            result["diagnosis_error"] = "%s: %s" % (type(exc).__name__, exc)
        report = checklib.build_report(checks, causes)
        text = render.text(report)
        written = []
        outputs = (("report_file", lambda r: json.dumps(r, indent=2, sort_keys=False) + "\n"),
                   ("html_file", render.html), ("junit_file", render.junit))
        for key, fmt in outputs:
            if args[key]:
                write_atomic(args[key], fmt(report))
                written.append(args[key])
        for name, path in sorted((args["check_files"] or {}).items()):
            if path and name in checks and checks[name]["status"] != checklib.SKIPPED:
                write_atomic(path, json.dumps(checks[name], indent=2) + "\n")
                written.append(path)
        errs = checklib.error_refs(checks)
        failed = [n for n, c in checks.items() if c["status"] == checklib.FAILED]
        result.update(changed=False, msg=text, headline=report["headline"], failed_checks=failed, errors=len(errs),
                      root_causes=len(causes), files=written,
                      statuses=dict((n, c["status"]) for n, c in checks.items()))
        result["_ansible_verbose_always"] = True
        if failed and args["fail_on_errors"]:
            result["failed"] = True
        return result
