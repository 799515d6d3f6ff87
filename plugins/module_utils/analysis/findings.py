# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Findings: the one data shape every check returns.

A finding says what was observed (and where), why it breaks the cluster and the
exact remediation. Modules turn a list of findings into ``fail_json`` or
``exit_json``; nothing here does I/O, so it is unit-testable without Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

ERROR = "error"
WARNING = "warning"

# The catalogue ids (see docs/FAILURES.md of the design notes).
CATALOGUE = (
    "SG_NO_SELF_REF",
    "ENCAP_BLOCKED",
    "SRC_DST_CHECK",
    "EGRESS_443",
    "SG_OPEN_WORLD",
    "NODE_UNREACHABLE",
    "DNS_POD_UNREACHABLE",
    "DNS_SERVICE_UNREACHABLE",
    "COREDNS_NOT_READY",
    "UPSTREAM_TIMEOUT",
    "DNS_NO_ENDPOINTS",
    "NETPOL_BLOCKS_DNS",
    "SVC_NO_ENDPOINTS",
    "IMAGE_ARCH_MISMATCH",
    # a single manifest of another architecture: pulled, then "exec format error" at start
    "IMAGE_EXEC_FORMAT",
    # only a 32-bit build containerd falls back to (arm/v7 on arm64, 386 on amd64): a warning
    "IMAGE_PLATFORM_FALLBACK",
    "IMAGE_UNREACHABLE",
    "INPUT_INVALID",
    # additive (dns_check): a name cluster DNS answers NXDOMAIN for; a DNS probe pod that gave no result
    "DNS_NAME_NOT_FOUND",
    "DNS_PROBE_FAILED",
    # additive (netpol / paths): policy parts that match nothing; an application path that is blocked
    "NETPOL_NEAR_MISS",
    "NETPOL_SELECTS_NOTHING",
    "PATH_BLOCKED",
)


def finding(fid, observed, why, remediation, severity=ERROR, where=None, **details):
    """Build one finding as a plain dict (JSON-serialisable, stable key order)."""
    if fid not in CATALOGUE:
        raise ValueError("unknown finding id %r" % (fid,))
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
