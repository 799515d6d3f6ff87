"""End to end: `make demo` must tell the seeds' story and exit 0 (and leave nothing behind)."""

import json
import os
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
    proc = subprocess.run([sys.executable, "-m", "tests.demo.run", "--no-color", "--json", str(report),
                           "--repeat-broken", "3"],
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
    # after the fixes, every check passes
    assert {check: res["status"] for check, res in fixed.items()} == dict.fromkeys(
        ["sg_audit", "node_reachability", "dns", "image_arch"], "passed")
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
    # the fixed cluster: no cause at all
    assert full["fixed"]["root_causes"] == [] and full["fixed"]["unexplained"] == []
    assert full["fixed"]["headline"] == "healthy"
    assert "The story holds" in proc.stdout
    # nothing left behind
    assert _namespaces() <= before_ns
    assert _children() == before_procs
