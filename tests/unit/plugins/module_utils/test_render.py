"""The report renderers: terminal text, self-contained HTML, JUnit XML (exact expectations)."""

import copy
import re
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import render as r
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import WARNING, finding
from tests.fakes import reports
from tests.fakes.html_dom import Dom

BROKEN = reports.broken_report()
BROKEN_PLUS = reports.broken_report(unexplained_dns=True)
HEALTHY = reports.healthy_report()
# what the seeds' broken cluster gives today (the finding ids and counts are the analysis modules'):
# one cause explains the SG audit's, the node matrix's and the DNS host path's errors, one the image's
N_SG, N_REACH, N_IMG = (reports.errors_of(BROKEN, c) for c in ("sg_audit", "node_reachability", "image_arch"))
N_DNS = reports.errors_of(BROKEN, "dns", "DNS_POD_UNREACHABLE")
N_CAUSE1 = N_SG + N_REACH + N_DNS
HEADLINE = "2 root causes explain %d findings" % (N_CAUSE1 + N_IMG)
REACH_IDS = list(dict.fromkeys(f["id"] for f in BROKEN["checks"]["node_reachability"]["findings"]))


def _f(fid, where, observed="seen", severity="error"):
    return finding(fid, observed, "it breaks", "do this", severity=severity, where=where)


# A small report written out by hand, for the exact renderings.
SMALL = {
    "headline": "1 root cause explains 2 findings",
    "root_causes": [{
        "id": "SG_NO_SELF_REF", "title": "sg-1 has no self-referencing rule", "confidence": "certain",
        "explains": [{"check": "sg_audit", "index": 0, "id": "SG_NO_SELF_REF", "where": "sg-1"},
                     {"check": "node_reachability", "index": 0, "id": "SG_NO_SELF_REF", "where": "a (10.0.0.1) -> b (10.0.0.2)"}],
        "evidence": ["sg-1 has no rule with itself as source"],
        "fix": {"cli": "aws ec2 authorize-security-group-ingress --group-id sg-1 --ip-permissions "
                       "'IpProtocol=-1,UserIdGroupPairs=[{GroupId=sg-1}]'",
                "role_var": "ec2_network_sg_self_reference: true"},
        "verify": "ansible-playbook kubeadm_ec2.cluster.validate -e validate_checks=node_reachability",
    }],
    "checks": {
        "node_reachability": {"status": "failed", "msg": "2 nodes", "evidence": {
            "nodes": {"a": "10.0.0.1", "b": "10.0.0.2"},
            "matrix": [{"src": "a", "dst": "b", "check": "kubelet", "proto": "tcp", "port": 10250, "ok": False,
                        "reason": "timeout"},
                       {"src": "b", "dst": "a", "check": "kubelet", "proto": "tcp", "port": 10250, "ok": True,
                        "reason": "refused"},
                       {"src": "b", "dst": "a", "check": "vxlan", "proto": "udp", "port": 4789, "ok": None,
                        "reason": "a's listener did not report"}]},
            "findings": [_f("SG_NO_SELF_REF", "a (10.0.0.1) -> b (10.0.0.2)", "tcp/10250 blocked from a to b")]},
        "sg_audit": {"status": "failed", "msg": "sg_audit: 2 problem(s) found", "evidence": {}, "findings": [
            _f("SG_NO_SELF_REF", "sg-1", "no self-reference"),
            _f("EGRESS_443", "sg-1", "egress tcp 443 closed"),
            _f("SG_OPEN_WORLD", "sg-1", "tcp/22 open to 0.0.0.0/0", severity=WARNING)]},
        "image_arch": {"status": "skipped", "msg": "no image to check", "findings": [], "evidence": {}},
        "dns": {"status": "passed", "msg": "dns: every node resolves\nsecond line", "findings": [], "evidence": {}},
    },
    "unexplained": [{"check": "sg_audit", "index": 1, "id": "EGRESS_443", "where": "sg-1"}],
}

SMALL_TEXT = """\
validate: 1 root cause explains 2 findings
==========================================

Root cause 1/1: sg-1 has no self-referencing rule
    SG_NO_SELF_REF | confidence: certain | explains 2 findings
    - sg-1 has no rule with itself as source
    fix:     aws ec2 authorize-security-group-ingress --group-id sg-1 --ip-permissions \\
               'IpProtocol=-1,UserIdGroupPairs=[{GroupId=sg-1}]'
    or set:  ec2_network_sg_self_reference: true
    verify:  ansible-playbook kubeadm_ec2.cluster.validate -e validate_checks=node_reachability
    explains:
      sg_audit           SG_NO_SELF_REF x1: sg-1
      node_reachability  SG_NO_SELF_REF x1: a -> b

1 error finding not explained by a root cause: sg_audit EGRESS_443 (detail below)

Checks
  FAIL sg_audit           2 errors (1 explained by root cause 1), 1 warning
       [EGRESS_443] sg-1: egress tcp 443 closed
           why: it breaks
           fix: do this
       warning [SG_OPEN_WORLD] sg-1: tcp/22 open to 0.0.0.0/0
  FAIL node_reachability  1 error (1 explained by root cause 1)
  PASS dns                dns: every node resolves
  SKIP image_arch         no image to check
"""


# ---------------------------------------------------------------------------------------------
# reading the report
# ---------------------------------------------------------------------------------------------
def test_small_text_exact():
    assert r.text(SMALL) == SMALL_TEXT


def test_text_width_is_a_parameter():
    out = r.text(SMALL, width=60)
    assert "    fix:     aws ec2 authorize-security-group-ingress \\\n" in out
    assert max(len(line) for line in out.splitlines() if "GroupId" not in line) <= 60


@pytest.mark.parametrize("report,expected", [
    (SMALL, {("sg_audit", 0): [1], ("node_reachability", 0): [1]}),
    (BROKEN, dict(((c, i), [1]) for c, n in (("sg_audit", N_SG), ("node_reachability", N_REACH), ("dns", N_DNS))
                  for i in range(n)) | {("image_arch", 0): [2]}),
    (HEALTHY, {}),
])
def test_explained_by(report, expected):
    assert r.explained_by(report) == expected


@pytest.mark.parametrize("ref,expected", [
    ({"check": "sg_audit", "index": 1, "id": "EGRESS_443", "where": "sg-1"}, 1),
    # a stale or missing index falls back to id + where
    ({"check": "sg_audit", "index": 9, "id": "EGRESS_443", "where": "sg-1"}, 1),
    ({"check": "sg_audit", "id": "SG_OPEN_WORLD", "where": "sg-1"}, 2),
    ({"check": "sg_audit", "id": "EGRESS_443", "where": "sg-2"}, None),
    ({"check": "nope", "index": 0, "id": "EGRESS_443", "where": "sg-1"}, None),
])
def test_ref_index(ref, expected):
    assert r._ref_index(SMALL, ref) == expected


@pytest.mark.parametrize("report,expected", [
    (SMALL, [("sg_audit", 1, "EGRESS_443")]),
    (BROKEN, []),
    (BROKEN_PLUS, [("dns", 6, "DNS_NAME_NOT_FOUND")]),
    (HEALTHY, []),
])
def test_unexplained(report, expected):
    assert [(c, i, f["id"]) for c, i, f in r.unexplained(report)] == expected


def _without_headline(report):
    out = copy.deepcopy(report)
    out.pop("headline")
    return out


@pytest.mark.parametrize("report,expected", [
    (BROKEN, HEADLINE),
    (_without_headline(BROKEN), HEADLINE),
    (_without_headline(SMALL), "1 root cause explains 2 findings"),
    (_without_headline(HEALTHY), "healthy"),
    ({"checks": {"dns": {"status": "failed", "findings": [_f("DNS_NO_ENDPOINTS", "kube-system/kube-dns")]}}},
     "no root cause; 1 error finding unexplained"),
])
def test_headline(report, expected):
    assert r.headline(report) == expected


def test_cause_counts_in_the_broken_report():
    assert [r.explained_count(c, BROKEN) for c in BROKEN["root_causes"]] == [N_CAUSE1, 1]
    assert N_CAUSE1 > 10 and N_REACH >= 6


@pytest.mark.parametrize("entry,expected", [
    ({"ok": True}, "ok"), ({"ok": False}, "blocked"), ({"ok": None}, "unknown"), ({}, "unknown"),
    ({"status": "blocked", "ok": None}, "blocked"), ({"status": "weird", "ok": True}, "ok"),
])
def test_probe_state(entry, expected):
    assert r.probe_state(entry) == expected


@pytest.mark.parametrize("oks,expected", [
    ([True, True], "ok"), ([True, None], "unknown"), ([None, False, True], "blocked"), ([], "none"),
])
def test_cell_state(oks, expected):
    assert r.cell_state([{"ok": ok} for ok in oks]) == expected


@pytest.mark.parametrize("entry,expected", [
    ({"proto": "tcp", "port": 10250, "check": "kubelet"}, "tcp/10250"),
    ({"proto": "ip", "port": 4, "check": "ipip"}, "ip/4"),
    ({"kind": "service"}, "service"),
    ({"check": "bgp"}, "bgp"),
])
def test_probe_label(entry, expected):
    assert r.probe_label(entry) == expected


# ---------------------------------------------------------------------------------------------
# shell-safe wrapping of commands
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cmd,expected", [
    ("a b  c", ["a", "b", "c"]),
    ("kubectl patch svc x -p '{\"spec\": {\"selector\": {\"app\": \"api\"}}}'",
     ["kubectl", "patch", "svc", "x", "-p", "'{\"spec\": {\"selector\": {\"app\": \"api\"}}}'"]),
    ('echo "a b" c', ["echo", '"a b"', "c"]),
    ("echo 'unbalanced", None),
    ("", []),
])
def test_shell_words(cmd, expected):
    assert r.shell_words(cmd) == expected


@pytest.mark.parametrize("cmd,width", [
    (reports.SELF_REF_CLI.replace("sg-0a1b2c3d", "sg-0123456789abcdef0"), 60),
    ("kubectl -n shop patch service backend -p '{\"spec\": {\"selector\": {\"app\": \"backend\", \"tier\": \"api\"}}}'", 40),
    ("aws ec2 modify-instance-attribute --instance-id i-0abc --no-source-dest-check", 100),
])
def test_wrapped_command_is_the_same_command(cmd, width):
    out = r.wrap_command(cmd, width, "    fix: ", "         ")
    assert out.startswith("    fix: ")
    joined = re.sub(r" \\\n +", " ", out[len("    fix: "):])
    assert joined == cmd
    lines = out.splitlines()
    assert all(line.endswith(" \\") for line in lines[:-1])
    # a line breaks only where a word would not fit
    assert all(len(line) <= width for line in lines if len(r.shell_words(line)) > 2)
    assert (len(lines) > 1) == (len("    fix: " + cmd) > width)


# ---------------------------------------------------------------------------------------------
# terminal text of the realistic reports
# ---------------------------------------------------------------------------------------------
def test_broken_text_leads_with_the_causes():
    out = r.text(BROKEN)
    lines = out.splitlines()
    assert lines[0] == "validate: " + HEADLINE
    assert lines[3] == "Root cause 1/2: The node security group sg-0a1b2c3d has no self-referencing rule"
    assert lines[4] == "    SG_NO_SELF_REF | confidence: certain | explains %d findings" % N_CAUSE1
    assert "    fix:     aws ec2 authorize-security-group-ingress --group-id sg-0a1b2c3d --ip-permissions \\" in lines
    assert "               'IpProtocol=-1,UserIdGroupPairs=[{GroupId=sg-0a1b2c3d}]'" in lines
    assert "    or set:  ec2_network_sg_self_reference: true" in lines
    for fid in REACH_IDS:
        n = len([f for f in BROKEN["checks"]["node_reachability"]["findings"] if f["id"] == fid])
        assert [line for line in lines if line.startswith("      node_reachability  %s x%d: cp1 -> w1, cp1 -> w2, " % (fid, n))]
    assert ("      dns                DNS_POD_UNREACHABLE x6: cp1 -> w1, cp1 -> w2, w1 -> cp1, w1 -> w2, w2 ->..."
            in lines)
    assert "    IMAGE_ARCH_MISMATCH | confidence: certain | explains 1 finding" in lines
    assert lines.index("Checks") > lines.index("    IMAGE_ARCH_MISMATCH | confidence: certain | explains 1 finding")
    assert "  FAIL node_reachability  %d errors (%d explained by root cause 1)" % (N_REACH, N_REACH) in lines
    assert "  FAIL dns                6 errors (6 explained by root cause 1)" in lines
    assert "  FAIL image_arch         1 error (1 explained by root cause 2)" in lines
    assert "  SKIP paths              validate_paths is empty: no application path to check" in lines
    assert "not explained" not in out


def test_broken_text_fits_100_columns_and_repeats_no_explained_finding():
    for report in (BROKEN, BROKEN_PLUS, HEALTHY):
        out = r.text(report)
        assert max(len(line) for line in out.splitlines()) <= 100, out
        for check, res in report["checks"].items():
            for i, f in enumerate(res["findings"]):
                if (check, i) in r.explained_by(report):
                    assert f["observed"] not in out and f["why"] not in out


def test_unexplained_finding_is_shown_in_full():
    out = r.text(BROKEN_PLUS)
    assert "1 error finding not explained by a root cause: dns DNS_NAME_NOT_FOUND (detail below)" in out
    assert ("  FAIL dns                7 errors (6 explained by root cause 1)\n"
            "       [DNS_NAME_NOT_FOUND] w1: 10.96.0.10 answered NXDOMAIN for\n"
            "           recommendations.default.svc.cluster.local (from w1)\n"
            "           why: the name does not exist in cluster DNS\n"
            "           fix: kubectl get service -A | grep recommendations\n") in out


def test_healthy_text():
    lines = r.text(HEALTHY).splitlines()
    assert lines[0] == "validate: healthy"
    assert lines[3:] == [
        "Checks",
        "  PASS sg_audit           sg_audit: security groups allow the cluster's traffic",
        "  PASS node_reachability  3 nodes, 6 directed pairs, 29 probes, 29 passed: tcp/10250 6/6, tcp/644...",
        "  PASS dns                dns: every node resolves through every CoreDNS pod",
        "  SKIP image_arch         no image to check (validate_images is empty)",
    ]


def test_color_only_when_asked():
    assert "\033[" not in r.text(BROKEN)
    colored = r.text(BROKEN, color=True)
    assert "\033[1;31mFAIL\033[0m node_reachability" in colored
    assert re.sub(r"\033\[[0-9;]*m", "", colored) == r.text(BROKEN)


def test_failed_check_without_findings_shows_its_message():
    report = {"root_causes": [], "checks": {"dns": {"status": "failed", "msg": "dns: the module crashed: boom",
                                                    "findings": [], "evidence": {}}}}
    assert r.text(report).splitlines()[3:] == [
        "Checks", "  FAIL dns                dns: the module crashed: boom", "       dns: the module crashed: boom"]


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------
def _expected_node_states(report):
    return dict(((e["src"], e["dst"], e["check"]), r.probe_state(e))
                for e in report["checks"]["node_reachability"]["evidence"]["matrix"])


@pytest.mark.parametrize("report", [BROKEN, HEALTHY, SMALL], ids=["broken", "healthy", "small"])
def test_html_probe_chips_match_the_matrix(report):
    dom = Dom(r.html(report))
    chips = dict(((e["attrs"]["data-src"], e["attrs"]["data-dst"], e["attrs"]["data-check"]), e["attrs"]["data-state"])
                 for e in dom.elements if e["tag"] == "li" and "data-src" in e["attrs"])
    assert all(e["attrs"]["class"] == "probe " + e["attrs"]["data-state"]
               for e in dom.elements if e["tag"] == "li" and "data-src" in e["attrs"])
    assert chips == _expected_node_states(report)


def test_html_broken_cells():
    dom = Dom(r.html(BROKEN))
    cells = dict(((e["attrs"]["data-src"], e["attrs"]["data-dst"]), e["attrs"]["data-state"])
                 for e in dom.elements if e["tag"] == "td" and "data-src" in e["attrs"])
    assert cells == {("cp1", "cp1"): "self", ("cp1", "w1"): "blocked", ("cp1", "w2"): "blocked",
                     ("w1", "cp1"): "blocked", ("w1", "w1"): "self", ("w1", "w2"): "blocked",
                     ("w2", "cp1"): "blocked", ("w2", "w1"): "blocked", ("w2", "w2"): "self"}
    # the silent listener on w2: what only w2 could tell is grey, the TCP probes to it are red
    assert dom.select("li", data_src="cp1", data_dst="w2", data_check="vxlan")[0]["attrs"]["data-state"] == "unknown"
    assert dom.select("li", data_src="cp1", data_dst="w2", data_check="kubelet")[0]["attrs"]["data-state"] == "blocked"
    assert dom.select("li", data_src="w2", data_dst="w1", data_check="vxlan")[0]["attrs"]["data-state"] == "ok"
    ipip = dom.select("li", data_src="w2", data_dst="cp1", data_check="ipip")[0]
    assert ipip["attrs"]["title"] == "sent 3 packet(s) not received by cp1"
    assert ipip["text"] == "ip/4 ipip 1"  # the number links to the cause that explains it
    assert ipip["attrs"]["data-causes"] == "1"


@pytest.mark.parametrize("report,expected", [
    (BROKEN, "every blocked probe"), (reports.broken_report(causes=False), "none"), (HEALTHY, "none"),
])
def test_html_blocked_probes_link_their_cause(report, expected):
    chips = [e for e in Dom(r.html(report)).elements if e["tag"] == "li" and "data-src" in e["attrs"]]
    linked = [e for e in chips if e["attrs"].get("data-causes")]
    if expected == "none":
        assert linked == []
    else:
        assert linked == [e for e in chips if e["attrs"]["data-state"] == "blocked"] and len(linked) > 10
        assert set(e["attrs"]["data-causes"] for e in linked) == {"1"}


def test_html_causes_listed_in_order():
    dom = Dom(r.html(BROKEN))
    causes = [e for e in dom.elements if e["tag"] == "li" and e["attrs"].get("class") == "cause"]
    assert [(c["attrs"]["id"], c["attrs"]["data-cause"], c["attrs"]["data-explains"]) for c in causes] == [
        ("cause-1", "SG_NO_SELF_REF", str(N_CAUSE1)), ("cause-2", "IMAGE_ARCH_MISMATCH", "1")]
    assert dom.select("h1", id="headline")[0]["text"] == HEADLINE
    fixes = [e["text"] for e in dom.select("code", **{"class": "fix-cli"})]
    assert fixes == [reports.SELF_REF_CLI, reports.IMAGE_CAUSE["fix"]["cli"]]
    assert [e["text"] for e in dom.select("code", **{"class": "fix-role-var"})] == ["ec2_network_sg_self_reference: true"]


def test_html_pod_matrix_only_with_a_mesh():
    assert 'id="pod-matrix"' in r.html(BROKEN)
    assert 'id="pod-matrix"' not in r.html(HEALTHY)
    dom = Dom(r.html(BROKEN))
    cells = dict(((e["attrs"]["data-src-pod"], e["attrs"]["data-dst"]), e["attrs"]["data-state"])
                 for e in dom.elements if e["tag"] == "td" and "data-src-pod" in e["attrs"])
    pods = ("probe-cp1", "probe-w1", "probe-w2")
    expected = dict(((s, d), "self" if s == d else "blocked") for s in pods for d in pods)
    expected.update(((s, d), "ok") for s in pods for d in ("10.96.0.10:53", "kubernetes.io:443"))
    assert cells == expected
    heads = [e["attrs"]["data-dst"] for e in dom.elements if e["tag"] == "th" and "data-kind" in e["attrs"]]
    assert heads == ["probe-cp1", "probe-w1", "probe-w2", "10.96.0.10:53", "kubernetes.io:443"]


def test_html_pod_matrix_is_compact():
    """Mesh probe pods are named without their common prefix (the full name is the title), pod cells name the
    protocol alone and the caption the ports: the pod matrix fits next to the node matrix."""
    mesh = [{"src_pod": "mesh-probe-n1-ab", "src_node": "n1", "dst": "192.168.2.20:7946", "dst_pod": "mesh-probe-n2-cd",
             "dst_node": "n2", "kind": "pod", "proto": "tcp", "port": 7946, "ok": False, "reason": "timed out"},
            {"src_pod": "mesh-probe-n1-ab", "src_node": "n1", "dst": "192.168.2.20:7947", "dst_pod": "mesh-probe-n2-cd",
             "dst_node": "n2", "kind": "pod", "proto": "udp", "port": 7947, "ok": True, "reason": "answered"},
            {"src_pod": "mesh-probe-n1-ab", "src_node": "n1", "dst": "10.96.0.10:53", "kind": "service",
             "proto": "tcp", "port": 53, "ok": True, "reason": "connected"}]
    report = {"checks": {"paths": {"status": "failed", "findings": [], "evidence": {"mesh": mesh, "paths": []}}}}
    dom = Dom(r.html(report))
    heads = [(e["text"].strip(), e["attrs"].get("title")) for e in dom.elements
             if e["tag"] == "th" and ("data-kind" in e["attrs"] or "data-src-pod" in e["attrs"])]
    assert heads == [("n2-cdn2", "mesh-probe-n2-cd"), ("10.96.0.10:53service", None), ("n1-abn1", "mesh-probe-n1-ab")]
    chips = [e["text"].strip() for e in dom.elements if e["tag"] == "li" and "data-src-pod" in e["attrs"]]
    assert chips == ["tcp", "udp", "tcp/53"]
    assert [e["text"] for e in dom.select("p", **{"class": "caption"})] == [
        "probe pods (mesh-probe-...) listen on tcp/7946, udp/7947"]


def test_pod_grid_orders_rows_by_node_and_columns_by_kind():
    mesh = [{"src_pod": "p-b", "src_node": "n2", "dst": "x.example:443", "kind": "external", "ok": True},
            {"src_pod": "p-b", "src_node": "n2", "dst": "p-a", "kind": "pod", "ok": False},
            {"src_pod": "p-a", "src_node": "n1", "dst": "10.96.0.10:53", "kind": "service", "ok": True},
            {"src_pod": "p-a", "src_node": "n1", "dst": "p-b", "kind": "pod", "ok": None}]
    rows, cols, cells = r.pod_grid(mesh)
    assert rows == [("p-a", "n1"), ("p-b", "n2")]
    assert cols == [("p-a", "pod"), ("p-b", "pod"), ("10.96.0.10:53", "service"), ("x.example:443", "external")]
    assert [r.cell_state(cells[k]) for k in sorted(cells)] == ["ok", "unknown", "blocked", "ok"]


def test_html_checks_mark_explained_findings():
    dom = Dom(r.html(BROKEN_PLUS))
    rows = [e for e in dom.elements if e["tag"] == "tr" and "data-check" in e["attrs"]]
    assert len(rows) == sum(len(c["findings"]) for c in BROKEN_PLUS["checks"].values())
    by = dict(((e["attrs"]["data-check"], e["attrs"]["data-index"]), e["attrs"].get("data-explained-by")) for e in rows)
    assert by[("dns", "6")] is None and by[("dns", "0")] == "1" and by[("image_arch", "0")] == "2"
    assert by[("sg_audit", "3")] is None  # the SG_OPEN_WORLD warning
    # the explained rows are folded away, the others are in plain sight
    assert all(("details" in e["parents"]) == bool(e["attrs"].get("data-explained-by")) for e in rows)
    assert [e["text"] for e in dom.elements if e["tag"] == "summary"] == [
        "3 findings explained by root cause 1", "%d findings explained by root cause 1" % N_REACH,
        "%d findings explained by root cause 1" % N_DNS, "1 finding explained by root cause 2"]
    assert [e["attrs"]["data-status"] for e in dom.elements if e["tag"] == "section" and "data-status" in e["attrs"]] \
        == ["failed", "failed", "failed", "failed", "skipped"]


def test_html_is_self_contained():
    for report in (BROKEN, HEALTHY, SMALL):
        out = r.html(report)
        assert out.startswith("<!DOCTYPE html>")
        for bad in ("<script", "<link", "<img", "<iframe", "url(", "@import", "@font-face", "http:", "https:",
                    " src="):
            assert bad not in out.lower(), bad


def test_html_escapes_everything():
    hostile = reports.with_hostile_text(BROKEN)
    out = r.html(hostile)
    assert "<script" not in out and "<img" not in out and "<b>broken" not in out and "\x1b" not in out
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quoted&quot; \ufffd[31m" in out
    dom = Dom(out)
    assert dom.select("li", **{"class": "cause", "data-cause": "SG_NO_SELF_REF"})
    # the table structure survived the text that tried to close it
    assert len([e for e in dom.elements if e["tag"] == "tr" and "data-check" in e["attrs"]]) == \
        sum(len(c["findings"]) for c in hostile["checks"].values()) > N_CAUSE1


# ---------------------------------------------------------------------------------------------
# JUnit
# ---------------------------------------------------------------------------------------------
def _cases(xml):
    root = ET.fromstring(xml)
    out = []
    for suite in root.findall("testsuite"):
        for case in suite.findall("testcase"):
            kids = [k for k in case if k.tag in ("failure", "skipped")]
            out.append((suite.get("name"), case.get("name"), kids[0].tag if kids else "passed",
                        kids[0].get("type") if kids else None))
    return root, out


@pytest.mark.parametrize("report,expected,totals", [
    (BROKEN, [("root_causes", "SG_NO_SELF_REF", "failure", "SG_NO_SELF_REF"),
              ("root_causes", "IMAGE_ARCH_MISMATCH", "failure", "IMAGE_ARCH_MISMATCH"),
              ("checks", "sg_audit", "passed", None), ("checks", "node_reachability", "passed", None),
              ("checks", "dns", "passed", None), ("checks", "image_arch", "passed", None),
              ("checks", "paths", "skipped", None)], ("7", "2", "1")),
    (BROKEN_PLUS, [("root_causes", "SG_NO_SELF_REF", "failure", "SG_NO_SELF_REF"),
                   ("root_causes", "IMAGE_ARCH_MISMATCH", "failure", "IMAGE_ARCH_MISMATCH"),
                   ("checks", "sg_audit", "passed", None), ("checks", "node_reachability", "passed", None),
                   ("checks", "dns", "failure", "unexplained"), ("checks", "image_arch", "passed", None),
                   ("checks", "paths", "skipped", None)], ("7", "3", "1")),
    (HEALTHY, [("checks", "sg_audit", "passed", None), ("checks", "node_reachability", "passed", None),
               ("checks", "dns", "passed", None), ("checks", "image_arch", "skipped", None)], ("4", "0", "1")),
    ({"checks": {"dns": {"status": "failed", "msg": "dns: probe pods did not start", "findings": []}}},
     [("checks", "dns", "failure", "failed")], ("1", "1", "0")),
])
def test_junit_cases(report, expected, totals):
    root, cases = _cases(r.junit(report))
    assert cases == expected
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == totals
    for suite in root.findall("testsuite"):
        cases = suite.findall("testcase")
        assert suite.get("tests") == str(len(cases))
        assert suite.get("failures") == str(sum(1 for c in cases if c.find("failure") is not None))


def test_junit_failure_texts():
    root = ET.fromstring(r.junit(BROKEN_PLUS))
    cause = root.find("testsuite[@name='root_causes']/testcase[@name='SG_NO_SELF_REF']/failure")
    assert cause.get("message") == ("The node security group sg-0a1b2c3d has no self-referencing rule (certain; explains %d findings)"
                                    % N_CAUSE1)
    body = cause.text.splitlines()
    assert body[:3] == ["The node security group sg-0a1b2c3d has no self-referencing rule", "confidence: certain",
                        "evidence: sg-0a1b2c3d has no rule whose source is sg-0a1b2c3d itself"]
    assert "fix: " + reports.SELF_REF_CLI in body
    head = "explains %d findings:" % N_CAUSE1
    assert head in body and len(body) == body.index(head) + 1 + N_CAUSE1
    dns_fail = root.find("testsuite[@name='checks']/testcase[@name='dns']/failure")
    assert dns_fail.get("message") == "1 error finding not explained by a root cause: DNS_NAME_NOT_FOUND"
    assert dns_fail.text.splitlines()[0] == ("[DNS_NAME_NOT_FOUND] w1: 10.96.0.10 answered NXDOMAIN for "
                                             "recommendations.default.svc.cluster.local (from w1)")
    out = root.find("testsuite[@name='checks']/testcase[@name='node_reachability']/system-out").text
    assert out == "failed: %d error finding(s) explained by root cause(s) SG_NO_SELF_REF (suite root_causes)" % N_REACH
    props = dict((p.get("name"), p.get("value")) for p in root.findall("testsuite[@name='root_causes']/properties/property"))
    assert props == {"headline": HEADLINE, "unexplained": "1"}
    skipped = root.find("testsuite[@name='checks']/testcase[@name='paths']/skipped")
    assert skipped.get("message") == "validate_paths is empty: no application path to check"


def test_junit_survives_hostile_text():
    xml = r.junit(reports.with_hostile_text(BROKEN))
    root = ET.fromstring(xml)  # control characters replaced, markup escaped
    msg = root.find("testsuite[@name='root_causes']/testcase[@name='SG_NO_SELF_REF']/failure").get("message")
    assert msg.startswith("<script>alert('x')</script> & \"quoted\" \ufffd[31m")


def test_node_grid_orders_probes_like_the_plan():
    names, ips, cells = r.node_grid(BROKEN["checks"]["node_reachability"]["evidence"])
    assert names == ["cp1", "w1", "w2"] and ips == reports.NODES
    assert [e["check"] for e in cells[("w1", "cp1")]] == ["kubelet", "apiserver", "bgp", "vxlan", "ephemeral"]
    assert [e["check"] for e in cells[("cp1", "w1")]] == ["kubelet", "bgp", "vxlan", "ipip", "ephemeral"]
    odd = {"matrix": [{"src": "a", "dst": "b", "check": "zz"}, {"src": "a", "dst": "b", "check": "yy"},
                      {"src": "a", "dst": "b", "check": "kubelet"}]}
    assert [e["check"] for e in r.node_grid(odd)[2][("a", "b")]] == ["kubelet", "zz", "yy"]


def test_html_summary_lists_every_check_in_order():
    dom = Dom(r.html(BROKEN))
    items = [(e["attrs"]["data-check"], e["attrs"]["data-status"]) for e in dom.elements
             if e["tag"] == "li" and "data-status" in e["attrs"]]
    assert items == [("sg_audit", "failed"), ("node_reachability", "failed"), ("dns", "failed"),
                     ("image_arch", "failed"), ("paths", "skipped")]
    assert [e["attrs"]["href"] for e in dom.elements if e["tag"] == "a" and e["attrs"].get("href", "").startswith(
        "#check-")] == ["#check-sg_audit", "#check-node_reachability", "#check-dns", "#check-image_arch", "#check-paths"]
    assert len(dom.select("section", id="check-node_reachability")) == 1


@pytest.mark.parametrize("report,expected", [
    (BROKEN, None),
    (BROKEN_PLUS, ("1", ["#finding-dns-6"], "1 error finding not explained by a root cause: dns DNS_NAME_NOT_FOUND (w1)")),
    (SMALL, ("1", ["#finding-sg_audit-1"], "1 error finding not explained by a root cause: sg_audit EGRESS_443 (sg-1)")),
])
def test_html_names_the_unexplained_errors(report, expected):
    dom = Dom(r.html(report))
    found = dom.select("p", id="unexplained")
    if expected is None:
        assert found == []
        return
    links = [e["attrs"]["href"] for e in dom.elements if e["tag"] == "a" and e["attrs"].get("href", "").startswith("#finding-")]
    assert (found[0]["attrs"]["data-count"], links, found[0]["text"]) == expected
    for href in links:
        assert len(dom.select("tr", id=href[1:])) == 1


def test_render_the_real_diagnosis():
    """The diagnosis' own causes for the seeds' broken checks go through every renderer."""
    diagnosis = pytest.importorskip(
        "ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.diagnosis")
    checks = reports.broken_checks()
    causes = diagnosis.diagnose(checks)
    rest = diagnosis.unexplained(checks, causes)
    report = {"headline": diagnosis.headline(checks, causes), "root_causes": causes, "checks": checks,
              "unexplained": rest}
    assert [c["id"] for c in causes] == ["SG_NO_SELF_REF", "IMAGE_ARCH_MISMATCH"] and rest == []
    lines = r.text(report).splitlines()
    assert lines[0] == "validate: " + report["headline"]
    for n, cause in enumerate(causes, 1):
        assert "    %s | confidence: %s | explains %s" % (
            cause["id"], cause["confidence"], r._plural(len(cause["explains"]), "finding")) in lines
        assert [line for line in lines if line.startswith("Root cause %d/2: " % n)]
    assert all(len(line) <= 100 for line in lines if len(r.shell_words(line.strip()) or [line]) > 1)
    dom = Dom(r.html(report))
    assert [e["attrs"]["data-cause"] for e in dom.elements if e["tag"] == "li" and e["attrs"].get("class") == "cause"] \
        == ["SG_NO_SELF_REF", "IMAGE_ARCH_MISMATCH"]
    chips = [e for e in dom.elements if e["tag"] == "li" and "data-src" in e["attrs"]]
    assert [e["attrs"].get("data-causes") for e in chips if e["attrs"]["data-state"] == "blocked"] == \
        ["1"] * len([e for e in chips if e["attrs"]["data-state"] == "blocked"])
    root, cases = _cases(r.junit(report))
    assert root.get("failures") == "2" and [c[1] for c in cases if c[0] == "root_causes"] == [c["id"] for c in causes]


def _one_check(findings, explained=(), status="failed", msg="m"):
    report = {"checks": {"dns": {"status": status, "msg": msg, "findings": findings, "evidence": {}}},
              "root_causes": []}
    if explained:
        report["root_causes"] = [{"id": "C", "title": "t", "confidence": "likely", "fix": {}, "verify": "",
                                  "evidence": [], "explains": [{"check": "dns", "index": i, "id": findings[i]["id"],
                                                                "where": findings[i]["where"]} for i in explained]}]
    return report


W1 = _f("DNS_NAME_NOT_FOUND", "w1", severity=WARNING)
E1, E2 = _f("DNS_NO_ENDPOINTS", "kube-system/kube-dns"), _f("COREDNS_NOT_READY", "kube-system/coredns-1")


@pytest.mark.parametrize("report,expected", [
    (_one_check([E1, E2]), "  FAIL dns                2 errors"),
    (_one_check([E1, E2], explained=[1]), "  FAIL dns                2 errors (1 explained by root cause 1)"),
    (_one_check([E1, W1], explained=[1]), "  FAIL dns                1 error, 1 warning (1 explained by root cause 1)"),
    (_one_check([W1], status="passed", msg="dns: fine"), "  PASS dns                1 warning"),
    (_one_check([], status="passed", msg="dns: fine\nmore"), "  PASS dns                dns: fine"),
    (_one_check([], status="weird", msg="?"), "  WEIR dns                ?"),
])
def test_check_line(report, expected):
    lines = r.text(report).splitlines()
    assert lines[lines.index("Checks") + 1] == expected


def test_failed_check_message_keeps_its_lines_up_to_a_bound():
    msg = "\n".join(["dns: the probe pods did not start"] + ["line %d" % i for i in range(20)])
    lines = r.text(_one_check([], msg=msg)).splitlines()
    at = lines.index("Checks")
    assert lines[at + 1:at + 4] == ["  FAIL dns                dns: the probe pods did not start",
                                    "       dns: the probe pods did not start", "       line 0"]
    assert lines[at + 13:] == ["       line 10", "       ... 9 more line(s) in the JSON report"]


def test_unexplained_line_counts_ids_per_check():
    report = reports.broken_report(causes=False)
    lines = r.text(report).splitlines()
    assert lines[0] == "validate: no root cause; %d error findings unexplained" % (N_CAUSE1 + N_IMG)
    ids = [f["id"] for f in report["checks"]["node_reachability"]["findings"]]
    reach = ", ".join("%s x%d" % (i, ids.count(i)) for i in dict.fromkeys(ids))
    expected = ("%d error findings not explained by a root cause: sg_audit SG_NO_SELF_REF, ENCAP_BLOCKED x2; "
                "node_reachability %s; dns DNS_POD_UNREACHABLE x%d; image_arch IMAGE_ARCH_MISMATCH (detail below)"
                % (N_CAUSE1 + N_IMG, reach, N_DNS))
    assert " ".join(" ".join(lines[3:lines.index("Checks")]).split()) == expected
