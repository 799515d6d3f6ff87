"""End to end: `make demo` must tell the seeds' story and exit 0 (and leave nothing behind)."""

import json
import os
import re
import subprocess
import sys

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import diagnosis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the demo needs root (network namespaces)")


def _namespaces():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _children():
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
    return [line for line in out.splitlines() if "moto_server" in line or "docker-registry serve" in line]


def test_demo_tells_the_story(tmp_path):
    before_ns, before_procs = _namespaces(), _children()
    report = tmp_path / "demo.json"
    html_dir = tmp_path / "html"
    html_dir.mkdir()
    proc = subprocess.run([sys.executable, "-m", "tests.demo.run", "--no-color", "--json", str(report),
                           "--repeat-broken", "3", "--html-dir", str(html_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1500, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    data = json.loads(report.read_text())
    broken, fixed = data["reports"]["broken"], data["reports"]["fixed"]
    # the seeds' cluster: every check failed, each with the catalogue id and a concrete fix
    ids = {check: {f["id"] for f in res["findings"] if f["severity"] == "error"} for check, res in broken.items()}
    assert "SG_NO_SELF_REF" in ids["sg_audit"]
    assert "NODE_PORT_BLOCKED" in ids["node_reachability"]
    assert "DNS_POD_UNREACHABLE" in ids["dns"]
    # CoreDNS runs on node1 and node2: every cross-node pair times out, same-node queries answer
    pairs = {f["where"] for f in broken["dns"]["findings"] if f["id"] == "DNS_POD_UNREACHABLE"}
    assert pairs == {"node1 -> node2", "node2 -> node1", "node3 -> node1", "node3 -> node2"}
    assert ids["image_arch"] == {"IMAGE_ARCH_MISMATCH"}
    fixes = " ".join(f["remediation"] for res in broken.values() for f in res["findings"])
    assert "UserIdGroupPairs=[{GroupId=sg-" in fixes
    assert "ec2_network_sg_self_reference" in fixes
    assert "docker buildx build --platform linux/amd64,linux/arm64" in fixes
    # the seeds' app: marketplace -> recommendations:50051, probed from a pod with marketplace's labels, is blocked
    # across a node pair (DNS to a CoreDNS pod on another node, or the connect to recommendations on node3)
    [path_finding] = broken["paths"]["findings"]
    assert path_finding["id"] == "PATH_BLOCKED" and path_finding["details"]["observed_by"] == "probe"
    assert path_finding["details"]["layer"] in ("dns", "connect")
    assert path_finding["where"] == "validate_paths[0]: deployment shop/marketplace -> recommendations:50051"
    # after the fixes, every check passes, the app's path too (resolved, connected)
    assert {check: res["status"] for check, res in fixed.items()} == dict.fromkeys(
        ["sg_audit", "node_reachability", "dns", "image_arch", "paths"], "passed")
    [fixed_path] = fixed["paths"]["evidence"]["paths"]
    assert fixed_path["verdict"] == "ok" and fixed_path["layers"]["connect"]["status"] == "ok"
    # the diagnosis, three times over the same broken cluster: exactly the two causes each time (the SG's
    # missing self-reference, the arm64-only image), every error finding explained by one of them and
    # none contradicting another check's evidence, whichever CoreDNS pod each probe reached
    full = data["full_reports"]
    for name in ("broken", "broken-2", "broken-3"):
        rep = full[name]
        assert [c["id"] for c in rep["root_causes"]] == ["SG_NO_SELF_REF", "IMAGE_ARCH_MISMATCH"], (name, rep["headline"])
        assert rep["unexplained"] == [], (name, rep["unexplained"])
        assert diagnosis.contradictions(rep["checks"]) == [], name
        assert rep["root_causes"] == diagnosis.diagnose(rep["checks"]), name
        assert rep["headline"].startswith("2 root causes explain "), rep["headline"]
        sg_cause = rep["root_causes"][0]
        assert sg_cause["confidence"] == "certain"
        assert "ec2_network_sg_self_reference: true" == sg_cause["fix"]["role_var"]
        assert {"SG_NO_SELF_REF", "NODE_PORT_BLOCKED", "DNS_POD_UNREACHABLE"} <= {e["id"] for e in sg_cause["explains"]}
        # the app's blocked path is a symptom of the missing self-reference, not a cause of its own
        assert [(e["check"], e["id"]) for e in sg_cause["explains"] if e["check"] == "paths"] == [
            ("paths", "PATH_BLOCKED")], name
    # the fixed cluster: no cause at all
    assert full["fixed"]["root_causes"] == [] and full["fixed"]["unexplained"] == []
    assert full["fixed"]["headline"] == "healthy"
    assert "The story holds" in proc.stdout
    # the HTML reports show the path: blocked on the broken cluster, open after the fixes
    for name, verdict in (("broken", "blocked"), ("fixed", "ok")):
        page = (html_dir / ("report-%s.html" % name)).read_text()
        assert re.search(r'<tr data-verdict="%s" id="path-0">' % verdict, page), name
    # nothing left behind
    assert _namespaces() <= before_ns
    assert _children() == before_procs
