# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Findings: the one data shape every check returns.

A finding says what was observed (and where), why it breaks the cluster and the
exact remediation (prose a person reads: the command plus any alternative). An error finding that can
be a root cause also carries ``cli``: ONE shell command that fixes it, which the diagnosis puts in the
cause's ``fix.cli`` (``catalogue.is_one_command`` defines what one command is). Modules turn a
list of findings into ``fail_json`` or ``exit_json``; nothing here does I/O, so it is unit-testable
without Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.catalogue import FINDING_IDS, is_one_command

ERROR = "error"
WARNING = "warning"

# The ids a check may emit: the one catalogue (analysis/catalogue.py) holds them with their titles.
CATALOGUE = FINDING_IDS


def finding(fid, observed, why, remediation, severity=ERROR, where=None, cli=None, **details):
    """Build one finding as a plain dict (JSON-serialisable, stable key order).

    ``cli``: the one command that fixes it (see the module docstring); raises ValueError when the text
    is not one command."""
    if fid not in CATALOGUE:
        raise ValueError("unknown finding id %r (not a finding id of analysis/catalogue.py)" % (fid,))
    if severity not in (ERROR, WARNING):
        raise ValueError("unknown severity %r" % (severity,))
    out = {
        "id": fid,
        "severity": severity,
        "where": where or "",
        "observed": observed,
        "why": why,
        "remediation": remediation,
    }
    if cli is not None:
        if not is_one_command(cli):
            raise ValueError("finding %s: cli must be one command, got %r" % (fid, cli))
        out["cli"] = cli
    if details:
        out["details"] = details
    return out


def errors(findings):
    return [f for f in findings if f["severity"] == ERROR]


def warnings(findings):
    return [f for f in findings if f["severity"] == WARNING]


def format_finding(f):
    """One finding as a short multi-line text block for a failure message."""
    head = "[%s] %s" % (f["id"], f["observed"])
    if f.get("where"):
        head = "[%s] %s: %s" % (f["id"], f["where"], f["observed"])
    return "%s\n    why: %s\n    fix: %s" % (head, f["why"], f["remediation"])


def summary_message(check, findings, ok_text):
    """The ``msg`` of a module: the failing findings, or the healthy summary."""
    errs = errors(findings)
    if not errs:
        warn = warnings(findings)
        if warn:
            return "%s: %s (%d warning(s))" % (check, ok_text, len(warn))
        return "%s: %s" % (check, ok_text)
    lines = ["%s: %d problem(s) found" % (check, len(errs))]
    lines.extend(format_finding(f) for f in errs)
    return "\n".join(lines)
