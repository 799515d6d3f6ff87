# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Renderers of the validate report: terminal text, one self-contained HTML page, JUnit XML.

All three take the Report dict the report plugin builds::

    {"headline": "2 root causes explain 22 findings" | "healthy",
     "root_causes": [{"id", "title", "confidence", "explains": [{"check", "index", "id", "where"}],
                      "evidence": [str], "fix": {"cli", "role_var"}, "verify"}],
     "checks": {name: {"status", "msg", "findings": [finding], "evidence": {...}}},
     "unexplained": [{"check", "index", "id", "where"}]}

and return a string. They are pure (no files, no clock): the caller writes the result.
The causes come first in every format; a finding a cause explains is counted under that cause
and not repeated in full under its check.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import textwrap
import xml.etree.ElementTree as ET
from html import escape as _html_escape

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.reachability import CHECK_ORDER as NODE_CHECKS

CHECK_ORDER = ("sg_audit", "node_reachability", "dns", "image_arch", "paths")
STATUS_WORDS = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}
CELL_STATES = ("ok", "blocked", "unknown")
STATE_LABELS = {
    "ok": "ok (the probe got through)",
    "blocked": "blocked (dropped or refused by a filter)",
    "unknown": "not probed (no report from the node that decides)",
}
WIDTH = 100
MSG_LINES = 12  # lines of a failed check's message shown when it has no finding to show instead

# characters XML 1.0 cannot carry (ElementTree writes them unescaped, which no parser accepts)
_XML_INVALID = re.compile(u"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(value):
    return _XML_INVALID.sub(u"\ufffd", u"%s" % ("" if value is None else value))


def _esc(value):
    return _html_escape(_clean(value), quote=True)


def _slug(value):
    return re.sub(r"[^A-Za-z0-9_-]+", "-", _clean(value)).strip("-") or "x"


def _plural(n, word, plural=None):
    return "%d %s" % (n, word if n == 1 else (plural or word + "s"))


# ---------------------------------------------------------------------------------------------
# Reading the report (shared by the three renderers)
# ---------------------------------------------------------------------------------------------
def check_names(report):
    """The checks of the report: the known ones in their usual order, then any others sorted."""
    checks = report.get("checks") or {}
    known = [c for c in CHECK_ORDER if c in checks]
    return known + sorted(c for c in checks if c not in CHECK_ORDER)


def _findings(report, check):
    return ((report.get("checks") or {}).get(check) or {}).get("findings") or []


def _ref_index(report, ref):
    """The index in its check's findings a reference points at (by index, else by id and where)."""
    findings = _findings(report, ref.get("check"))
    idx = ref.get("index")
    if isinstance(idx, int) and 0 <= idx < len(findings):
        return idx
    for i, f in enumerate(findings):
        if f.get("id") == ref.get("id") and f.get("where", "") == ref.get("where", ""):
            return i
    return None


def explained_by(report):
    """``{(check, index): [cause number (1-based), ...]}`` for every finding a cause explains."""
    out = {}
    for n, cause in enumerate(report.get("root_causes") or [], 1):
        for ref in cause.get("explains") or []:
            idx = _ref_index(report, ref)
            if idx is not None:
                nums = out.setdefault((ref.get("check"), idx), [])
                if n not in nums:
                    nums.append(n)
    return out


def explained_count(cause, report):
    """How many distinct findings one cause explains."""
    seen = set()
    for ref in cause.get("explains") or []:
        idx = _ref_index(report, ref)
        seen.add((ref.get("check"), idx if idx is not None else (ref.get("id"), ref.get("where"))))
    return len(seen)


def unexplained(report):
    """Error findings no cause explains, as ``[(check, index, finding)]`` in check order."""
    done = explained_by(report)
    out = []
    for check in check_names(report):
        for i, f in enumerate(_findings(report, check)):
            if f.get("severity") == "error" and (check, i) not in done:
                out.append((check, i, f))
    return out


def headline(report):
    """The report's headline, or the same sentence computed from the causes when it has none."""
    if report.get("headline"):
        return report["headline"]
    causes = report.get("root_causes") or []
    if not causes:
        rest = unexplained(report)
        return "no root cause; %s unexplained" % _plural(len(rest), "error finding") if rest else "healthy"
    n = len(explained_by(report))
    return "%s %s %s" % (_plural(len(causes), "root cause"), "explains" if len(causes) == 1 else "explain",
                         _plural(n, "finding"))


def _fix(cause):
    fix = cause.get("fix") or {}
    if not isinstance(fix, dict):
        return {"cli": u"%s" % fix, "role_var": ""}
    return {"cli": fix.get("cli") or "", "role_var": fix.get("role_var") or ""}


def _explains_by_check(cause, report):
    """``[(check, [(finding id, count, [distinct where...])])]`` in check order, for the cause summaries."""
    groups = {}
    for ref in cause.get("explains") or []:
        by_id = groups.setdefault(ref.get("check") or "?", {})
        entry = by_id.setdefault(ref.get("id") or "?", [len(by_id), 0, []])
        entry[1] += 1
        if ref.get("where") and ref["where"] not in entry[2]:
            entry[2].append(ref["where"])
    names = check_names(report)
    order = [c for c in names if c in groups] + sorted(c for c in groups if c not in names)
    return [(check, [(fid, n, wheres) for fid, (_pos, n, wheres) in sorted(groups[check].items(), key=lambda kv: kv[1][0])])
            for check in order]


# ---------------------------------------------------------------------------------------------
# Matrices (node_reachability.matrix and paths.mesh evidence)
# ---------------------------------------------------------------------------------------------
def probe_state(entry):
    """``ok``, ``blocked`` or ``unknown`` for one matrix or mesh entry (``ok``: true/false/null)."""
    status = entry.get("status")
    if status in CELL_STATES:
        return status
    ok = entry.get("ok")
    if ok is True:
        return "ok"
    if ok is False:
        return "blocked"
    return "unknown"


def cell_state(entries):
    """One word for a whole cell: blocked if anything is, else unknown if anything is, else ok."""
    states = set(probe_state(e) for e in entries)
    for state in ("blocked", "unknown", "ok"):
        if state in states:
            return state
    return "none"


def probe_label(entry):
    proto, port = entry.get("proto"), entry.get("port")
    if proto and port not in (None, ""):
        return "%s/%s" % (proto, port)
    return u"%s" % (proto or entry.get("kind") or entry.get("check") or "probe")


def node_grid(evidence):
    """``(names, ips, {(src, dst): [entries]})`` of the node matrix, each cell's entries in the probe order."""
    evidence = evidence or {}
    ips = dict(evidence.get("nodes") or {})
    cells = {}
    names = list(ips)
    for e in evidence.get("matrix") or []:
        src, dst = e.get("src"), e.get("dst")
        for n in (src, dst):
            if n is not None and n not in names:
                names.append(n)
        cells.setdefault((src, dst), []).append(e)
    rank = dict((c, i) for i, c in enumerate(NODE_CHECKS))
    for entries in cells.values():
        entries.sort(key=lambda e: rank.get(e.get("check"), len(rank)))  # stable: unknown checks keep their order
    return sorted(names, key=u"{0}".format), ips, cells


def pod_grid(mesh):
    """``(rows, columns, {(src_pod, dst): [entries]})``: rows ``(pod, node)``, columns ``(dst, kind)``; a pod
    column is the destination pod (``dst_pod``, its TCP and UDP cells in one), else the address."""
    rows, cols, cells = [], [], {}
    for e in mesh or []:
        row = (e.get("src_pod"), e.get("src_node"))
        if row not in rows:
            rows.append(row)
        col = (e.get("dst_pod") or e.get("dst"), e.get("kind") or "pod")
        if col not in cols:
            cols.append(col)
        cells.setdefault((row[0], col[0]), []).append(e)
    kinds = {"pod": 0, "service": 1, "external": 2}
    rows.sort(key=lambda r: (u"%s" % (r[1] or ""), u"%s" % r[0]))
    cols.sort(key=lambda c: (kinds.get(c[1], 3), u"%s" % c[0]))
    return rows, cols, cells


# ---------------------------------------------------------------------------------------------
# Terminal text
# ---------------------------------------------------------------------------------------------
def _wrap(text, width, first, rest=None):
    rest = first if rest is None else rest
    text = " ".join((u"%s" % text).split())
    return textwrap.fill(text, width=width, initial_indent=first, subsequent_indent=rest,
                         break_long_words=False, break_on_hyphens=False) or first.rstrip()


def _one_line(text):
    return " ".join((u"%s" % text).split())


def _short_where(where):
    """``cp1 (10.0.1.11) -> w1 (10.0.1.21)`` as ``cp1 -> w1`` for the compact lists."""
    return re.sub(r" \([^()]*\)", "", _one_line(where))


def _clip(text, width):
    text = text.rstrip()
    return text if len(text) <= width else text[:max(0, width - 3)] + "..."


def shell_words(cmd):
    """Split a command line at the blanks outside quotes (the quotes stay), or None if unbalanced."""
    words, cur, quote = [], "", None
    for ch in cmd:
        if quote:
            cur += ch
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            cur += ch
        elif ch.isspace():
            if cur:
                words.append(cur)
            cur = ""
        else:
            cur += ch
    if quote:
        return None
    if cur:
        words.append(cur)
    return words


def wrap_command(cmd, width, first, rest):
    """A command wrapped with backslash continuations, so the wrapped text still pastes into a shell."""
    words = shell_words(cmd or "")
    if not words:
        return first + (cmd or "")
    lines, cur = [], first + words[0]
    for w in words[1:]:
        if len(cur) + 1 + len(w) + 2 > width and cur.strip():
            lines.append(cur + " \\")
            cur = rest + w
        else:
            cur += " " + w
    lines.append(cur)
    return "\n".join(lines)


class _Paint:
    def __init__(self, color):
        self.color = color

    def __call__(self, text, code):
        return "\033[%sm%s\033[0m" % (code, text) if self.color else text


_STATUS_COLORS = {"passed": "1;32", "failed": "1;31", "skipped": "33"}


def _format_full(f, width, indent):
    head = "[%s] %s%s" % (f.get("id", "?"), (f.get("where") + ": ") if f.get("where") else "", f.get("observed", ""))
    out = [_wrap(head, width, indent, indent + "    ")]
    if f.get("why"):
        out.append(_wrap("why: " + f["why"], width, indent + "    ", indent + "         "))
    if f.get("remediation"):
        out.append(_wrap("fix: " + f["remediation"], width, indent + "    ", indent + "         "))
    return out


def _id_counts(items):
    """``[(check, index, finding)]`` as ``sg_audit EGRESS_443; dns DNS_NO_ENDPOINTS x2, ...``."""
    groups = []
    for check, _i, f in items:
        if not groups or groups[-1][0] != check:
            groups.append((check, []))
        ids = groups[-1][1]
        for entry in ids:
            if entry[0] == f.get("id"):
                entry[1] += 1
                break
        else:
            ids.append([f.get("id"), 1])
    return "; ".join("%s %s" % (check, ", ".join(fid + (" x%d" % n if n > 1 else "") for fid, n in ids))
                     for check, ids in groups)


def text(report, width=WIDTH, color=False):
    """The terminal report: headline, the causes with fix and verify, then each check's rest."""
    paint = _Paint(color)
    causes = report.get("root_causes") or []
    done = explained_by(report)
    lines = []
    head = "validate: %s" % headline(report)
    lines.append(paint(head, "1"))
    lines.append("=" * min(width, len(head)))
    for n, cause in enumerate(causes, 1):
        fix = _fix(cause)
        lines.append("")
        lines.append(paint(_wrap("Root cause %d/%d: %s" % (n, len(causes), cause.get("title", "")), width, "", "    "),
                           "1;31"))
        lines.append(_wrap("%s | confidence: %s | explains %s" % (
            cause.get("id", "?"), cause.get("confidence", "?"), _plural(explained_count(cause, report), "finding")),
            width, "    ", "      "))
        for ev in cause.get("evidence") or []:
            lines.append(_wrap(ev, width, "    - ", "      "))
        if fix["cli"]:
            lines.append(wrap_command(fix["cli"], width, "    fix:     ", "               "))
        if fix["role_var"]:
            lines.append(_wrap(fix["role_var"], width, "    or set:  ", "             "))
        if cause.get("verify"):
            lines.append(wrap_command(cause["verify"], width, "    verify:  ", "               "))
        if cause.get("explains"):
            lines.append("    explains:")
        for check, by_id in _explains_by_check(cause, report):
            for fid, n_id, wheres in by_id:
                places = ", ".join(_short_where(w) for w in wheres)
                lines.append(_clip("      %-18s %s x%d%s" % (check, fid, n_id, ": " + places if places else ""), width))
    rest = unexplained(report)
    lines.append("")
    if rest:
        lines.append(paint(_wrap("%s not explained by a root cause: %s (detail below)" % (
            _plural(len(rest), "error finding"), _id_counts(rest)), width, "", "    "), "1;33"))
        lines.append("")
    lines.append(paint("Checks", "1"))
    for check in check_names(report):
        res = (report.get("checks") or {}).get(check) or {}
        status = res.get("status", "missing")
        findings = res.get("findings") or []
        errs = [i for i, f in enumerate(findings) if f.get("severity") == "error"]
        warns = [i for i, f in enumerate(findings) if f.get("severity") != "error"]
        if findings:
            parts = []
            for idx, word in ((errs, "error"), (warns, "warning")):
                if idx:
                    expl = [i for i in idx if (check, i) in done]
                    nums = sorted(set(n for i in expl for n in done[(check, i)]))
                    parts.append(_plural(len(idx), word) + (" (%d explained by root cause %s)" % (
                        len(expl), ", ".join(str(n) for n in nums)) if expl else ""))
            summary = ", ".join(parts)
        else:
            summary = ((res.get("msg") or "").strip().splitlines() or [""])[0]
        word = STATUS_WORDS.get(status, status.upper()[:4]).ljust(4)
        lines.append("  %s %s" % (paint(word, _STATUS_COLORS.get(status, "33")),
                                  _clip("%-18s %s" % (check, _one_line(summary)), width - 7)))
        if status == "failed" and not errs and res.get("msg"):
            msg = res["msg"].strip().splitlines()
            lines.extend(_wrap(line, width, "       ", "         ") for line in msg[:MSG_LINES] if line.strip())
            if len(msg) > MSG_LINES:
                lines.append("       ... %d more line(s) in the JSON report" % (len(msg) - MSG_LINES))
        for i in errs:
            if (check, i) not in done:
                lines.extend(_format_full(findings[i], width, "       "))
        for i in warns:
            if (check, i) not in done:
                f = findings[i]
                lines.append(_clip("       warning [%s] %s" % (f.get("id", "?"), _one_line(
                    ((f.get("where") + ": ") if f.get("where") else "") + f.get("observed", ""))), width))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------
COLORS = {"ok": "#1a7f37", "blocked": "#cf222e", "unknown": "#8c959f"}
_CSS = u"""
body{font-family:sans-serif;margin:16px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 12px}h2{font-size:18px;margin:18px 0 8px}h3{font-size:15px;margin:8px 0}
code,pre{font-family:monospace;font-size:12px;background:#f6f8fa;padding:1px 4px;white-space:pre-wrap;
word-break:break-all}
.cause{border:1px solid #d0d7de;border-left:6px solid #cf222e;padding:8px 12px;margin:8px 0;list-style:none}
.badge{display:inline-block;padding:0 6px;border-radius:8px;font-size:12px;background:#eaeef2}
.badge.certain{background:#cf222e;color:#fff}.badge.likely{background:#bf8700;color:#fff}
.panels{display:flex;gap:24px;align-items:flex-start;overflow-x:auto}
table.matrix{border-collapse:collapse}
table.matrix th,table.matrix td{border:1px solid #d0d7de;padding:4px;vertical-align:top;font-size:12px}
table.matrix th{background:#f6f8fa;text-align:left}
td.self{background:repeating-linear-gradient(45deg,#f6f8fa,#f6f8fa 4px,#eaeef2 4px,#eaeef2 8px)}
ul.probes{list-style:none;margin:0;padding:0}
li.probe{margin:1px 0;padding:1px 4px;border-radius:3px;white-space:nowrap}
.dot{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}
.probe.ok{background:#dafbe1}.probe.blocked{background:#ffebe9;font-weight:bold}
.probe.unknown{background:#eaeef2;color:#59636e}
.dot.ok{background:#1a7f37}.dot.blocked{background:#cf222e}.dot.unknown{background:#8c959f}
p.caption{font-size:12px;color:#59636e;margin:6px 0 0}
.legend{display:flex;gap:16px;margin:8px 0;font-size:12px}
a.cause-ref{font-size:10px;color:#cf222e;vertical-align:super}
table.findings{border-collapse:collapse;width:100%}
table.findings td,table.findings th{border:1px solid #d0d7de;padding:4px;font-size:12px;vertical-align:top;
text-align:left}
tr.error td.sev{color:#cf222e;font-weight:bold}tr.warning td.sev{color:#9a6700}
tr.explained{color:#59636e}details.explained summary{cursor:pointer;color:#59636e;margin:4px 0}
#unexplained{border-left:6px solid #bf8700;padding:4px 12px;background:#fff8c5}
#summary{list-style:none;padding:0;display:flex;gap:18px;margin:0 0 8px}#summary a{color:inherit}
.status.passed{color:#1a7f37}.status.failed{color:#cf222e}.status.skipped{color:#9a6700}
td.layer.ok{background:#dafbe1}td.layer.failed{background:#ffebe9;font-weight:bold}td.layer.unknown{color:#59636e}
"""


def _attrs(**kw):
    return "".join(' %s="%s"' % (k.rstrip("_").replace("_", "-"), _esc(v)) for k, v in sorted(kw.items())
                   if v is not None)


def _html_causes(report, out):
    causes = report.get("root_causes") or []
    out.append('<section id="causes"><h2>Root causes (%d)</h2>' % len(causes))
    if not causes:
        out.append('<p class="none">No root cause: %s.</p>' % _esc(headline(report)))
    out.append('<ol class="causes">')
    for n, cause in enumerate(causes, 1):
        fix = _fix(cause)
        count = explained_count(cause, report)
        out.append('<li class="cause"%s>' % _attrs(id="cause-%d" % n, data_cause=cause.get("id", ""),
                                                   data_confidence=cause.get("confidence", ""),
                                                   data_explains=count))
        out.append('<h3><span class="num">%d.</span> <span class="title">%s</span> <span class="badge %s">%s</span>'
                   ' <span class="cid">%s</span></h3>' % (n, _esc(cause.get("title", "")),
                                                          _slug(cause.get("confidence", "")),
                                                          _esc(cause.get("confidence", "")), _esc(cause.get("id", ""))))
        out.append('<p class="explains">Explains %s: %s</p>' % (_esc(_plural(count, "finding")), "; ".join(
            "%s %d (%s)" % (_esc(check), sum(n for _f, n, _w in by_id), _esc(", ".join(fid for fid, _n, _w in by_id)))
            for check, by_id in _explains_by_check(cause, report))))
        if cause.get("evidence"):
            out.append('<ul class="evidence">%s</ul>' % "".join("<li>%s</li>" % _esc(e) for e in cause["evidence"]))
        if fix["cli"]:
            out.append('<p>Fix: <code class="fix-cli">%s</code></p>' % _esc(fix["cli"]))
        if fix["role_var"]:
            out.append('<p>Or set: <code class="fix-role-var">%s</code></p>' % _esc(fix["role_var"]))
        if cause.get("verify"):
            out.append('<p>Verify: <code class="verify">%s</code></p>' % _esc(cause["verify"]))
        out.append("</li>")
    out.append("</ol>")
    rest = unexplained(report)
    if rest:
        links = ['<a href="#finding-%s-%d">%s</a>' % (_slug(c), i, _esc("%s %s%s" % (
            c, f.get("id", ""), " (%s)" % f["where"] if f.get("where") else ""))) for c, i, f in rest]
        out.append('<p id="unexplained"%s>%s not explained by a root cause: %s</p>' % (
            _attrs(data_count=len(rest)), _esc(_plural(len(rest), "error finding")), ", ".join(links)))
    out.append("</section>")


def _chips(entries, causes=None, **common):
    """The probes of one cell; ``causes``: {check: [cause numbers]} that explain a blocked probe. A pod-to-pod
    mesh cell names its protocol alone (the pod matrix's caption gives the probe pods' ports)."""
    items = []
    for e in entries:
        label = e["proto"] if e.get("kind") == "pod" and e.get("proto") else probe_label(e)
        state = probe_state(e)
        nums = (causes or {}).get(e.get("check") or e.get("proto")) if state == "blocked" else None
        items.append('<li class="probe %s"%s><span class="dot %s"></span>%s%s%s</li>' % (
            state, _attrs(data_state=state, data_check=e.get("check") or e.get("kind"), data_proto=e.get("proto"),
                          data_port=e.get("port"), title=e.get("reason") or "",
                          data_causes=",".join(str(n) for n in nums) if nums else None, **common),
            state, _esc(label), (" " + _esc(e["check"])) if e.get("check") else "",
            "".join(' <a class="cause-ref" href="#cause-%d">%d</a>' % (n, n) for n in nums or ())))
    return '<ul class="probes">%s</ul>' % "".join(items)


def probe_causes(report):
    """``{(src, dst, check): [cause numbers]}``: the causes that explain a node-matrix finding naming
    that pair and probe (its ``details``: ``src``, ``dst``, ``checks``)."""
    out = {}
    findings = _findings(report, "node_reachability")
    for (check, idx), nums in explained_by(report).items():
        if check != "node_reachability":
            continue
        d = findings[idx].get("details") or {}
        for probe in d.get("checks") or ():
            key = (d.get("src"), d.get("dst"), probe)
            out[key] = sorted(set(out.get(key, []) + nums))
    return out


MESH_POD_PREFIX = "mesh-probe-"
MESH_FINDINGS = {"POD_PATH_BLOCKED": "pod", "SERVICE_PATH_BLOCKED": "service", "EGRESS_BLOCKED": "external"}


def mesh_causes(report):
    """``{(src_node, dst_node or kind, proto): [cause numbers]}``: the causes that explain a pod-mesh finding
    (``details``: ``src_node``, ``dst_node`` for pod cells, ``protocol``)."""
    out = {}
    findings = _findings(report, "paths")
    for (check, idx), nums in explained_by(report).items():
        if check != "paths" or findings[idx].get("id") not in MESH_FINDINGS:
            continue
        d = findings[idx].get("details") or {}
        kind = MESH_FINDINGS[findings[idx]["id"]]
        key = (d.get("src_node"), d.get("dst_node") if kind == "pod" else kind, str(d.get("protocol") or "tcp"))
        out[key] = sorted(set(out.get(key, []) + nums))
    return out


def _legend():
    return '<div class="legend" id="legend">%s</div>' % "".join(
        '<span class="key"%s><span class="dot %s"></span>%s</span>' % (_attrs(data_state=s), s, _esc(STATE_LABELS[s]))
        for s in ("blocked", "ok", "unknown"))


def _th(name, sub, shown=None, **attrs):
    """A header cell: ``shown`` (default ``name``), ``sub`` below it; a shortened name keeps the full one as title."""
    if shown is not None and shown != name:
        attrs["title"] = name
    return "<th%s>%s<br><small>%s</small></th>" % (_attrs(**attrs), _esc(name if shown is None else shown),
                                                   _esc(sub or ""))


def _pod_label(name):
    """A mesh probe pod's name without the common ``mesh-probe-`` prefix (the matrix is about those pods)."""
    text = u"%s" % (name or "")
    return text[len(MESH_POD_PREFIX):] if text.startswith(MESH_POD_PREFIX) and len(text) > len(MESH_POD_PREFIX) \
        else text


def _td(entries, self_cell, causes=None, **keys):
    """One matrix cell: its probes as chips, or the hatched diagonal."""
    if self_cell:
        return '<td class="cell self"%s></td>' % _attrs(data_state="self", **keys)
    state = cell_state(entries)
    chip_keys = dict((k, v) for k, v in keys.items() if k in ("data_src", "data_dst", "data_src_pod"))
    return '<td class="cell %s"%s>%s</td>' % (state, _attrs(data_state=state, **keys),
                                              _chips(entries, causes, **chip_keys))


def _table(table_id, head, rows):
    """``head``: the column headers; ``rows``: (row header, [cells])."""
    out = ['<table class="matrix" id="%s"><thead><tr><th class="corner">from \\ to</th>%s</tr></thead><tbody>'
           % (table_id, "".join(head))]
    out.extend("<tr>%s%s</tr>" % (th, "".join(cells)) for th, cells in rows)
    out.append("</tbody></table>")
    return "".join(out)


def _html_node_matrix(report, out):
    names, ips, cells = node_grid(((report.get("checks") or {}).get("node_reachability") or {}).get("evidence"))
    by_pair = {}
    for (src, dst, check), nums in probe_causes(report).items():
        by_pair.setdefault((src, dst), {})[check] = nums
    out.append('<div class="panel" id="node-panel"><h2>Node to node</h2>')
    if not names:
        out.append('<p class="none">No node matrix in the report.</p></div>')
        return
    head = [_th(n, ips.get(n), data_dst=n, scope="col") for n in names]
    rows = [(_th(src, ips.get(src), data_src=src, scope="row"),
             [_td(cells.get((src, dst), []), src == dst, by_pair.get((src, dst)), data_src=src, data_dst=dst)
              for dst in names])
            for src in names]
    out.append(_table("node-matrix", head, rows) + "</div>")


def _html_pod_matrix(mesh, out, report=None):
    rows, cols, cells = pod_grid(mesh)
    causes = mesh_causes(report or {})
    col_node = dict(((e.get("dst_pod") or e.get("dst")), e.get("dst_node")) for e in mesh or [] if e.get("dst_node"))
    out.append('<div class="panel" id="pod-panel"><h2>Pod to pod, Service and external</h2>')
    head = [_th(dst, col_node.get(dst) or kind, _pod_label(dst) if kind == "pod" else None, data_dst=dst,
                data_kind=kind, scope="col") for dst, kind in cols]

    def cell_causes(node, dst, kind):
        target = col_node.get(dst) if kind == "pod" else kind
        return dict((proto, nums) for (s, t, proto), nums in causes.items() if s == node and t == target) or None

    body = [(_th(pod, node, _pod_label(pod), data_src_pod=pod, data_src_node=node, scope="row"),
             [_td(cells.get((pod, dst), []), dst == pod and not cells.get((pod, dst)), cell_causes(node, dst, kind),
                  data_src_pod=pod, data_src_node=node, data_dst=dst, data_kind=kind) for dst, kind in cols])
            for pod, node in rows]
    ports = sorted({probe_label(e) for e in mesh or [] if e.get("kind") == "pod"})
    caption = '<p class="caption">probe pods (mesh-probe-...) listen on %s</p>' % _esc(", ".join(ports)) if ports else ""
    out.append(_table("pod-matrix", head, body) + caption + "</div>")


_FINDINGS_HEAD = ('<table class="findings"><thead><tr><th>severity</th><th>id</th><th>where</th><th>observed</th>'
                  '<th>why</th><th>fix</th><th>root cause</th></tr></thead><tbody>')


def _finding_row(check, i, f, nums):
    sev = f.get("severity", "")
    return ('<tr class="finding %s%s"%s><td class="sev">%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td>'
            '<td><code>%s</code></td><td>%s</td></tr>' % (
                _slug(sev), " explained" if nums else "",
                _attrs(id="finding-%s-%d" % (_slug(check), i), data_check=check, data_index=i, data_id=f.get("id", ""),
                       data_explained_by=",".join(str(n) for n in nums) or None),
                _esc(sev), _esc(f.get("id", "")), _esc(f.get("where", "")), _esc(f.get("observed", "")),
                _esc(f.get("why", "")), _esc(f.get("remediation", "")),
                ", ".join('<a href="#cause-%d">%d</a>' % (n, n) for n in nums) or "-"))


def _html_checks(report, out):
    """Each check: its findings no cause explains in a table, the explained ones folded below it."""
    done = explained_by(report)
    out.append('<section id="checks"><h2>Checks</h2>')
    for check in check_names(report):
        res = (report.get("checks") or {}).get(check) or {}
        status = res.get("status", "missing")
        findings = res.get("findings") or []
        out.append('<section class="check"%s>' % _attrs(id="check-%s" % _slug(check), data_check=check,
                                                        data_status=status))
        word = STATUS_WORDS.get(status, status)
        out.append('<h3>%s <span class="status %s">%s</span></h3>' % (_esc(check), _slug(status), _esc(word)))
        msg = (res.get("msg") or "").strip()
        if msg and (not findings or status != "failed"):
            out.append('<pre class="msg">%s</pre>' % _esc(msg))
        if check == "paths":
            _html_paths((res.get("evidence") or {}).get("paths") or [], out)
        rest = [i for i in range(len(findings)) if (check, i) not in done]
        explained = [i for i in range(len(findings)) if (check, i) in done]
        if rest:
            out.append(_FINDINGS_HEAD + "".join(_finding_row(check, i, findings[i], []) for i in rest)
                       + "</tbody></table>")
        if explained:
            nums = sorted(set(n for i in explained for n in done[(check, i)]))
            out.append('<details class="explained"><summary>%s explained by root cause %s</summary>%s%s'
                       '</tbody></table></details>' % (
                           _esc(_plural(len(explained), "finding")), ", ".join(str(n) for n in nums), _FINDINGS_HEAD,
                           "".join(_finding_row(check, i, findings[i], done[(check, i)]) for i in explained)))
        out.append("</section>")
    out.append("</section>")


def _html_paths(paths, out):
    """The application paths: one row each, its verdict and every layer's status (detail on hover)."""
    if not paths:
        return
    layers = ("dns", "service", "netpol", "connect")
    out.append('<table class="findings" id="paths"><thead><tr><th>from</th><th>to</th><th>verdict</th>%s</tr>'
               '</thead><tbody>' % "".join("<th>%s</th>" % n for n in layers))
    for i, p in enumerate(paths):
        cells = []
        for name in layers:
            layer = (p.get("layers") or {}).get(name) or {}
            attrs = _attrs(**{"class": "layer %s" % _slug(layer.get("status", "")), "data-layer": name,
                              "title": layer.get("detail")})
            cells.append('<td%s>%s</td>' % (attrs, _esc(layer.get("status", ""))))
        out.append('<tr%s><td>%s</td><td>%s/%s</td><td class="verdict">%s</td>%s</tr>' % (
            _attrs(id="path-%d" % i, data_verdict=p.get("verdict", "")),
            _esc((p.get("from") or {}).get("workload", "")), _esc(p.get("to", "")), _esc(p.get("protocol", "")),
            _esc(p.get("verdict", "")), "".join(cells)))
    out.append("</tbody></table>")


def _html_summary(report):
    """One line of check statuses under the headline, each linking to its section."""
    items = []
    for check in check_names(report):
        status = ((report.get("checks") or {}).get(check) or {}).get("status", "missing")
        items.append('<li%s><a href="#check-%s">%s</a> <span class="status %s">%s</span></li>' % (
            _attrs(data_check=check, data_status=status), _slug(check), _esc(check), _slug(status),
            _esc(STATUS_WORDS.get(status, status))))
    return '<ul id="summary">%s</ul>' % "".join(items)


def html(report, title="kubeadm_ec2 validate report"):
    """One self-contained page (inline CSS, no script, no external reference)."""
    checks = report.get("checks") or {}
    out = [u'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
           u"<title>%s</title><style>%s</style></head><body>" % (_esc(title), _CSS),
           u'<h1 id="headline">%s</h1>' % _esc(headline(report)), _html_summary(report)]
    _html_causes(report, out)
    out.append('<section id="matrices"><h2>Reachability</h2>')
    out.append(_legend())
    out.append('<div class="panels">')
    _html_node_matrix(report, out)
    mesh = ((checks.get("paths") or {}).get("evidence") or {}).get("mesh")
    if mesh:
        _html_pod_matrix(mesh, out, report)
    out.append("</div></section>")
    _html_checks(report, out)
    out.append("</body></html>\n")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# JUnit XML
# ---------------------------------------------------------------------------------------------
def _format_ref(report, ref):
    idx = _ref_index(report, ref)
    if idx is None:
        return "[%s] %s (not in the report)" % (ref.get("id", "?"), ref.get("where", ""))
    f = _findings(report, ref.get("check"))[idx]
    return "[%s] %s%s" % (f.get("id", "?"), (f.get("where") + ": ") if f.get("where") else "", f.get("observed", ""))


def _finding_block(f):
    head = "[%s] %s%s" % (f.get("id", "?"), (f.get("where") + ": ") if f.get("where") else "", f.get("observed", ""))
    return "%s\n    why: %s\n    fix: %s" % (head, f.get("why", ""), f.get("remediation", ""))


def _sub(parent, tag, body=None, **attrs):
    el = ET.SubElement(parent, tag, dict((k, _clean(v)) for k, v in attrs.items()))
    if body is not None:
        el.text = _clean(body)
    return el


def junit(report, suite="kubeadm_ec2.validate"):
    """JUnit XML: suite ``root_causes`` with one failing testcase per cause, suite ``checks`` with one
    testcase per check (skipped checks as ``<skipped/>``).

    A check fails only for what no cause explains (its unexplained error findings, or its message when
    it failed without findings); a failed check whose every error a cause explains passes and says so
    in ``system-out``. So the failure count is the number of things to fix: one per cause plus one per
    check with unexplained errors.
    """
    causes = report.get("root_causes") or []
    done = explained_by(report)
    root = ET.Element("testsuites", {"name": _clean(suite)})
    rc = _sub(root, "testsuite", name="root_causes")
    props = _sub(rc, "properties")
    _sub(props, "property", name="headline", value=headline(report))
    _sub(props, "property", name="unexplained", value=str(len(unexplained(report))))
    for n, cause in enumerate(causes, 1):
        fix = _fix(cause)
        case = _sub(rc, "testcase", classname="%s.root_causes" % suite, name=cause.get("id", "cause-%d" % n), time="0")
        body = [cause.get("title", ""), "confidence: %s" % cause.get("confidence", "")]
        body += ["evidence: %s" % e for e in cause.get("evidence") or []]
        if fix["cli"]:
            body.append("fix: %s" % fix["cli"])
        if fix["role_var"]:
            body.append("or set: %s" % fix["role_var"])
        if cause.get("verify"):
            body.append("verify: %s" % cause["verify"])
        body.append("explains %s:" % _plural(explained_count(cause, report), "finding"))
        body += ["  %s %s" % (ref.get("check", "?"), _format_ref(report, ref)) for ref in cause.get("explains") or []]
        _sub(case, "failure", "\n".join(body), type=cause.get("id", ""),
             message="%s (%s; explains %s)" % (cause.get("title", ""), cause.get("confidence", ""),
                                               _plural(explained_count(cause, report), "finding")))
    ck = _sub(root, "testsuite", name="checks")
    for check in check_names(report):
        res = (report.get("checks") or {}).get(check) or {}
        status = res.get("status", "missing")
        findings = res.get("findings") or []
        case = _sub(ck, "testcase", classname="%s.checks" % suite, name=check, time="0")
        rest = [f for i, f in enumerate(findings) if f.get("severity") == "error" and (check, i) not in done]
        errs = [i for i, f in enumerate(findings) if f.get("severity") == "error"]
        nums = sorted(set(n for i in errs for n in done.get((check, i), [])))
        out = []
        if status == "skipped":
            _sub(case, "skipped", message=((res.get("msg") or "skipped").strip().splitlines() or ["skipped"])[0])
        elif rest:
            _sub(case, "failure", "\n".join(_finding_block(f) for f in rest), type="unexplained",
                 message="%s not explained by a root cause: %s" % (
                     _plural(len(rest), "error finding"), ", ".join(f.get("id", "?") for f in rest)))
        elif status not in ("passed", "skipped") and not errs:
            _sub(case, "failure", res.get("msg") or "", type=status,
                 message=((res.get("msg") or status).strip().splitlines() or [status])[0])
        if status == "failed" and nums:
            out.append("%s: %d error finding(s) explained by root cause(s) %s (suite root_causes)" % (
                status, len(errs) - len(rest), ", ".join((causes[n - 1].get("id") or str(n)) for n in nums)))
        elif status != "skipped" and res.get("msg"):
            out.append(res["msg"].strip())
        out += ["warning " + _finding_block(f) for f in findings if f.get("severity") != "error"]
        if out:
            _sub(case, "system-out", "\n".join(out))
    for ts in (rc, ck):
        cases = ts.findall("testcase")
        ts.set("tests", str(len(cases)))
        ts.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
        ts.set("errors", "0")
        ts.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
        ts.set("time", "0")
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(sum(int(ts.get(key)) for ts in (rc, ck))))
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
