# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of node_reachability: every node's node_probe report -> the check result."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections.abc import Mapping

from ansible.plugins.action import ActionBase

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import calico
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import reachability as reach
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.checks import check_result
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import errors, summary_message

MAX_MSG_FINDINGS = 12

ARGS = dict(
    nodes=dict(type="dict", required=True),
    control_planes=dict(type="list", elements="str", default=[]),
    results=dict(type="dict"),
    result_var=dict(type="str", default="validate_node_result"),
    typha=dict(type="bool", default=False),
    ephemeral_port=dict(type="int", default=reach.DEFAULT_EPHEMERAL_PORT),
    calico_encapsulation=dict(type="str", default="IPIP", choices=list(reach.ENCAPSULATIONS)),
    security_group_id=dict(type="str"),
    subnets=dict(type="dict"),
    subnet_var=dict(type="str", default="subnet_id"),
    fail_on_findings=dict(type="bool", default=True),
)


def host_results(task_vars, hosts, var, registered=False):
    """{host: the host's ``var``} (None for a host that has none).

    ``registered``: ``var`` is a registered task result, read as stored (``HostVars.raw_get``). Reading
    it through ``hostvars[host][var]`` templates the whole result again, which at 50 nodes cost the
    report seconds; a registered result holds no template to render."""
    hostvars = (task_vars or {}).get("hostvars") or {}
    raw_get = getattr(hostvars, "raw_get", None) if registered else None
    out = {}
    for host in hosts:
        try:
            if host not in hostvars:
                out[host] = None
            elif raw_get is not None:
                found = raw_get(host)
                out[host] = found.get(var) if isinstance(found, Mapping) else None
            else:
                out[host] = hostvars[host].get(var)
        except (KeyError, AttributeError):
            out[host] = None
    return out


def node_report(result):
    """The reachability part of a registered node_probe result, or None when the node did not report."""
    if not isinstance(result, dict) or result.get("skipped") or result.get("unreachable"):
        return None
    rep = result.get("reachability")
    if not isinstance(rep, dict) or "results" not in rep:
        return None
    return rep


def node_subnets(nodes, subnets):
    """{node: subnet} for the nodes whose subnet is known (a missing or empty one is left out)."""
    return dict((name, str(subnets[name])) for name in sorted(nodes) if (subnets or {}).get(name))


def evidence(nodes, control_planes, matrix, findings, ephemeral_port, subnets=None, calico_encapsulation=""):
    unreachable = sorted(f["details"]["node"] for f in findings if f["id"] == "NODE_UNREACHABLE")
    return {"nodes": dict(nodes), "control_planes": list(control_planes),
            "matrix": reach.matrix_rows(nodes, matrix, ephemeral_port), "unreachable": unreachable,
            "subnets": dict(subnets or {}), "calico_encapsulation": calico_encapsulation or ""}


def analyse(args):
    """(task result, failed) for validated args."""
    nodes = args["nodes"]
    msg = reach.validate_nodes(nodes)
    if msg:
        return {"failed": True, "msg": msg}, True
    reports = dict((name, node_report(args["results"].get(name))) for name in nodes)
    subnets = node_subnets(nodes, args.get("subnets"))
    findings, summary, matrix = reach.analyse(
        nodes, args["control_planes"], reports, None, calico_encapsulation=args["calico_encapsulation"],
        typha=args["typha"], sg_id=args["security_group_id"], ephemeral_port=args["ephemeral_port"],
        subnets=subnets)
    secs = [r["seconds"] for r in reports.values() if r and "seconds" in r]
    summary["probe_seconds_max"] = max(secs) if secs else None
    errs = errors(findings)
    if errs:
        msg = summary_message("node_reachability", errs[:MAX_MSG_FINDINGS], summary["text"])
        if len(errs) > MAX_MSG_FINDINGS:
            msg += "\n... and %d more finding(s), see 'findings'" % (len(errs) - MAX_MSG_FINDINGS)
        msg += "\nmatrix: " + summary["text"]
    else:
        msg = summary_message("node_reachability", findings, summary["text"])
        if summary["unknown"]:
            msg += "; %d probe(s) unknown" % summary["unknown"]
    unknown = sorted(set(nodes) - set(subnets))
    if unknown and calico.is_cross_subnet(args["calico_encapsulation"]):
        msg += ("\nsubnet unknown for %s (host variable %s): %s counts their pairs as crossing subnets"
                % (", ".join(unknown), args["subnet_var"], args["calico_encapsulation"]))
    res = check_result(findings, msg, evidence(nodes, args["control_planes"], matrix, findings, args["ephemeral_port"],
                                               subnets, args["calico_encapsulation"]))
    res.update(summary=summary, matrix=reach.matrix_table(nodes, matrix), changed=False)
    return res, bool(errs)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        _spec, args = self.validate_argument_spec(argument_spec=ARGS)
        if args["results"] is None:
            args["results"] = host_results(task_vars, list(args["nodes"]), args["result_var"], registered=True)
        if args["subnets"] is None:
            args["subnets"] = host_results(task_vars, list(args["nodes"]), args["subnet_var"])
        res, has_errors = analyse(args)
        result.update(res)
        if has_errors and args["fail_on_findings"]:
            result["failed"] = True
        return result
