"""End to end: `make demo` must tell the seeds' story and exit 0 (and leave nothing behind).

The HTML reports the demo wrote are opened in headless Chromium as tests/integration/test_report_html.py
does: the pod matrix must stand next to the node matrix, and every swatch must show its cell's state.
"""

import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import diagnosis, render
from tests.fakes.html_dom import Dom
from tests.integration.test_report_html import MEASURE, classify, pixel, read_png

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the demo needs root (network namespaces)")


def _namespaces():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _alive(pid):
    """True while process ``pid`` exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (IOError, OSError, IndexError):
        return False


def assert_nothing_left_behind(resources):
    """What this demo run made is gone: every namespace of its lab (they all carry the lab's prefix), their
    /etc/netns directories, the servers it started, its work directory. Other labs on the machine (another
    test, a benchmark) are not this run's business."""
    prefix = resources["lab_prefix"] + "-"
    assert [n for n in _namespaces() if n.startswith(prefix)] == []
    netns_dirs = os.listdir("/etc/netns") if os.path.isdir("/etc/netns") else []
    assert [n for n in netns_dirs if n.startswith(prefix)] == []
    assert len(resources["pids"]) == 2 and [p for p in resources["pids"] if _alive(p)] == []  # moto, the registry
    assert not os.path.exists(resources["workdir"])


CHROMIUM = shutil.which("chromium")
WINDOW = (1400, 2400)  # a laptop's width; tall enough for the causes and both matrices


def chromium_view(page_file):
    """(boxes, dom, png) of an HTML report file as headless Chromium lays it out (see test_report_html)."""
    work = tempfile.mkdtemp(prefix="demo-html-")
    try:
        with open(page_file) as fh:
            page = fh.read()
        measured = os.path.join(work, "measure.html")
        with open(measured, "w") as fh:
            fh.write(page.replace("</body>", MEASURE + "</body>"))
        shot = os.path.join(work, "shot.png")
        outs = []
        for url, arg in (("file://" + measured, "--dump-dom"), ("file://" + os.path.abspath(page_file), "--dump-dom"),
                         ("file://" + os.path.abspath(page_file), "--screenshot=%s" % shot)):
            profile = tempfile.mkdtemp(prefix="profile-", dir=work)
            res = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                                  "--no-first-run", "--disable-background-networking", "--disable-component-update",
                                  "--disable-sync", "--user-data-dir=%s" % profile, "--force-device-scale-factor=1",
                                  "--hide-scrollbars", "--window-size=%d,%d" % WINDOW, arg, url],
                                 capture_output=True, text=True, timeout=120, check=False)
            assert res.returncode == 0, res.stderr[-2000:]
            outs.append(res.stdout)
        found = re.search(r'<body[^>]* data-boxes="([^"]*)"', outs[0])
        assert found, "the measuring script did not run"
        boxes = json.loads(html.unescape(found.group(1)))
        bottom = max(d["box"]["y"] + d["box"]["h"] for d in boxes["dots"])
        assert bottom < WINDOW[1], "the matrices end at %dpx, below the window" % bottom
        return boxes, Dom(outs[1]), read_png(shot, max_rows=int(bottom) + 2)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def assert_pod_matrix_beside_node_matrix(page_file, mesh):
    """Both matrices side by side inside the window, each pod swatch coloured as its mesh cell."""
    boxes, dom, png = chromium_view(page_file)
    node_box, pod_box = boxes["tables"]["node-matrix"], boxes["tables"]["pod-matrix"]
    assert pod_box["x"] >= node_box["x"] + node_box["w"], (node_box, pod_box)
    assert abs(pod_box["y"] - node_box["y"]) < 5, (node_box, pod_box)
    assert pod_box["x"] + pod_box["w"] <= WINDOW[0], (pod_box, "wider than the window")
    seen = {}
    for dot in boxes["dots"]:
        a, b = dot["attrs"], dot["box"]
        if "data-src-pod" in a:
            state, dist = classify(pixel(png, b["x"] + b["w"] / 2, b["y"] + b["h"] / 2))
            assert dist < 30, dot
            seen[(a["data-src-pod"], a["data-dst"], a["data-check"], a.get("data-proto"))] = state
    want = dict(((e["src_pod"], e.get("dst_pod") or e["dst"], e["kind"], e["proto"]), render.probe_state(e))
                for e in mesh)
    assert seen == want
    cells = [e for e in dom.elements if e["tag"] == "td" and "data-src-pod" in e["attrs"]]
    return {e["attrs"]["data-state"] for e in cells}


def mesh_by_kind(report):
    """The pod matrix's cells: {same-node, cross-node, service, external: [ok, ...]}."""
    out = {}
    for c in report["paths"]["evidence"]["mesh"]:
        kind = c["kind"] if c["kind"] != "pod" else "same-node" if c["src_node"] == c["dst_node"] else "cross-node"
        out.setdefault(kind, []).append(c["ok"])
    return out


def test_demo_tells_the_story(tmp_path):
    report = tmp_path / "demo.json"
    html_dir = tmp_path / "html"
    html_dir.mkdir()
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "tests.demo.run", "--no-color", "--json", str(report),
                           "--repeat-broken", "3", "--html-dir", str(html_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1500, check=False)
    wall = time.monotonic() - started
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
    [path_finding] = [f for f in broken["paths"]["findings"] if f["id"] == "PATH_BLOCKED"]
    assert path_finding["id"] == "PATH_BLOCKED" and path_finding["details"]["observed_by"] == "probe"
    assert path_finding["details"]["layer"] in ("dns", "connect")
    assert path_finding["where"] == "validate_paths[0]: deployment shop/marketplace -> recommendations:50051"
    # after the fixes, every check passes, the app's path too (resolved, connected)
    assert {check: res["status"] for check, res in fixed.items()} == dict.fromkeys(
        ["sg_audit", "node_reachability", "dns", "image_arch", "paths"], "passed")
    [fixed_path] = fixed["paths"]["evidence"]["paths"]
    assert fixed_path["verdict"] == "ok" and fixed_path["layers"]["connect"]["status"] == "ok"
    # the live pod mesh ran: 3 nodes x 2 probe pods, each to 5 peers (tcp, udp), the kube-dns ClusterIP and the
    # lab's external host. Broken: every cross-node cell blocked, every same-node and egress cell open, the Service
    # blocked from node3 (no CoreDNS pod there); fixed (BGP peers, pod routes over IPIP): every cell open
    for name in ("broken", "broken-2", "broken-3"):
        cells = mesh_by_kind(data["reports"][name])
        assert {k: len(v) for k, v in cells.items()} == {"same-node": 12, "cross-node": 48, "service": 6,
                                                         "external": 6}, name
        assert not any(cells["cross-node"]) and all(cells["same-node"]) and all(cells["external"]), (name, cells)
        node3 = [c["ok"] for c in data["reports"][name]["paths"]["evidence"]["mesh"]
                 if c["kind"] == "service" and c["src_node"] == "node3"]
        assert node3 == [False, False], name
    cells = mesh_by_kind(fixed)
    assert len(sum(cells.values(), [])) == 72 and all(sum(cells.values(), [])), cells
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
        # the app's blocked path and the mesh's blocked cells are symptoms of the missing self-reference (the
        # blocked node pairs carry them), not causes of their own: SG_NO_SELF_REF explains every paths error
        paths_errors = [(i, f["id"]) for i, f in enumerate(rep["checks"]["paths"]["findings"])
                        if f["severity"] == "error"]
        assert sorted((e["index"], e["id"]) for e in sg_cause["explains"] if e["check"] == "paths") == paths_errors
        assert {i for _i, i in paths_errors} == {"PATH_BLOCKED", "POD_PATH_BLOCKED", "SERVICE_PATH_BLOCKED"}, name
        assert not any(f["details"]["same_node"] for f in rep["checks"]["paths"]["findings"]
                       if f["id"] == "POD_PATH_BLOCKED"), name
    # the fixed cluster: no cause at all
    assert full["fixed"]["root_causes"] == [] and full["fixed"]["unexplained"] == []
    assert full["fixed"]["headline"] == "healthy"
    assert "The story holds" in proc.stdout
    # the HTML reports show the path: blocked on the broken cluster, open after the fixes
    for name, verdict in (("broken", "blocked"), ("fixed", "ok")):
        page = (html_dir / ("report-%s.html" % name)).read_text()
        assert re.search(r'<tr data-verdict="%s" id="path-0">' % verdict, page), name
    # and the pod matrix next to the node matrix, as Chromium shows it: red and green on the broken cluster,
    # green only after the fixes
    if CHROMIUM:
        states = assert_pod_matrix_beside_node_matrix(str(html_dir / "report-broken.html"),
                                                      full["broken"]["checks"]["paths"]["evidence"]["mesh"])
        assert states == {"self", "ok", "blocked"}
        states = assert_pod_matrix_beside_node_matrix(str(html_dir / "report-fixed.html"),
                                                      full["fixed"]["checks"]["paths"]["evidence"]["mesh"])
        assert states == {"self", "ok"}
    print("demo wall time: %.1fs (load average %s); timings %s"
          % (wall, open("/proc/loadavg").read().split()[:3], json.dumps(data["timings"])))
    # nothing left behind
    assert_nothing_left_behind(data["resources"])
