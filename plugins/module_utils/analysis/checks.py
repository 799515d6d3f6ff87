# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check results and the validate report (pure: plain data in, plain data out).

Every check of playbooks/validate.yml produces one check result::

    {"status": "passed"|"failed"|"skipped", "msg": str, "findings": [finding, ...], "evidence": {...}}

and the report combines them with the root causes the diagnosis infers::

    {"headline": str, "root_causes": [cause, ...], "checks": {name: check result},
     "unexplained": [{"check", "index", "id", "where"} of error findings no cause explains]}
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
STATUSES = (PASSED, FAILED, SKIPPED)


def check_result(findings=None, msg="", evidence=None, status=None, failed=False):
    """One check result; status follows the findings unless given (``failed``: the check itself broke)."""
    findings = list(findings or [])
    if status is None:
        status = FAILED if failed or any(f.get("severity") == "error" for f in findings) else PASSED
    if status not in STATUSES:
        raise ValueError("unknown check status %r" % (status,))
    return {"status": status, "msg": msg or "", "findings": findings, "evidence": dict(evidence or {})}


def skipped(msg="not selected (validate_checks)"):
    return check_result(status=SKIPPED, msg=msg)


def from_task_result(res, evidence_key="evidence"):
    """A check result from a registered task result (a module or action plugin that ran the check).

    A result that already is a check result (status, findings) is kept; a task that failed without
    findings (bad input, unreachable API, crashed) is a failed check with its message.
    """
    if not isinstance(res, dict) or not res:
        return check_result(status=FAILED, msg="the check did not run (no result)")
    if res.get("skipped") and "findings" not in res:
        return check_result(status=SKIPPED, msg=res.get("skip_reason") or res.get("msg") or "skipped")
    findings = res.get("findings") or []
    failed = bool(res.get("failed") or res.get("unreachable"))
    msg = res.get("msg") or ""
    if failed and not findings and not msg:
        msg = "the check failed: %s" % (res.get("stderr") or res.get("module_stderr") or "no message")
    return check_result(findings, msg, res.get(evidence_key) or {}, failed=failed)


def error_refs(checks):
    """[{"check", "index", "id", "where"}] of every error finding, in check order."""
    out = []
    for name in checks:
        for i, f in enumerate((checks[name] or {}).get("findings") or []):
            if f.get("severity") == "error":
                out.append({"check": name, "index": i, "id": f.get("id"), "where": f.get("where", "")})
    return out


def build_report(checks, causes=None):
    """The report: headline, root causes, the checks and the error findings no cause explains."""
    causes = list(causes or [])
    refs = error_refs(checks)
    explained = set()
    for cause in causes:
        for ref in cause.get("explains") or []:
            explained.add((ref.get("check"), ref.get("index")))
    unexplained = [r for r in refs if (r["check"], r["index"]) not in explained]
    failed = [n for n, c in checks.items() if (c or {}).get("status") == FAILED]
    if causes:
        n_explained = len(refs) - len(unexplained)
        headline = "%d root cause%s explain%s %d finding%s" % (
            len(causes), "" if len(causes) == 1 else "s", "s" if len(causes) == 1 else "", n_explained,
            "" if n_explained == 1 else "s")
        if unexplained:
            headline += ", %d unexplained" % len(unexplained)
    elif failed:
        headline = "%d check%s failed: %s" % (len(failed), "" if len(failed) == 1 else "s", ", ".join(failed))
    else:
        headline = "healthy"
    return {"headline": headline, "root_causes": causes, "checks": dict(checks), "unexplained": unexplained}


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


def stop_result(stop):
    """The failed task result of a check that cannot run, from its ``stop`` option: a message, or a check
    result (``msg`` and ``findings``, e.g. validate_plan.k8s.failure)."""
    if isinstance(stop, dict):
        return {"failed": True, "msg": str(stop.get("msg") or "the check cannot run"),
                "findings": list(stop.get("findings") or [])}
    return {"failed": True, "msg": str(stop), "findings": []}
