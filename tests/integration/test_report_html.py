"""The HTML report as a browser shows it: headless Chromium renders it, the test reads pixels and DOM.

For each report two files are written to a private temp dir: the report itself, and a copy with a
small inline script that records the bounding box of every colour swatch (and of the matrices) in
an attribute of <body>. ``--dump-dom`` of the copy gives the boxes, ``--dump-dom`` of the report
gives its DOM as Chromium parsed it, ``--screenshot`` of the report gives the pixels. The colour at
the centre of each swatch must be the colour of its state in the matrix: red blocked, green ok,
grey not probed. The script only sets an attribute, so both files lay out the same.
"""

import html
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
import zlib

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import diagnosis, mesh, render
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import finding
from tests.fakes import reports
from tests.fakes.html_dom import Dom

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM, reason="Debian's chromium is not installed (scripts/sysdeps.sh)")

WIDTH, HEIGHT = 1400, 1600
TIMEOUT = 120  # seconds per Chromium run; one run takes about 2 s on an idle machine
TIMINGS = {}

MEASURE = """<script>
(function () {
  function box(el) {
    var r = el.getBoundingClientRect();
    return {x: r.left, y: r.top, w: r.width, h: r.height};
  }
  var out = {dots: [], tables: {}};
  document.querySelectorAll(".dot").forEach(function (dot) {
    var owner = dot.parentElement, attrs = {};
    for (var i = 0; i < owner.attributes.length; i++) {
      if (owner.attributes[i].name.indexOf("data-") === 0) attrs[owner.attributes[i].name] = owner.attributes[i].value;
    }
    out.dots.push({box: box(dot), attrs: attrs});
  });
  ["node-matrix", "pod-matrix", "causes"].forEach(function (id) {
    var el = document.getElementById(id);
    if (el) out.tables[id] = box(el);
  });
  document.body.setAttribute("data-boxes", JSON.stringify(out));
})();
</script>"""

RGB = dict((state, tuple(int(render.COLORS[state][i:i + 2], 16) for i in (1, 3, 5))) for state in render.COLORS)


@pytest.fixture(scope="module")
def workdir():
    path = tempfile.mkdtemp(prefix="report-html-")
    yield path
    shutil.rmtree(path, ignore_errors=True)
    print("\nchromium run times in seconds: %s" % json.dumps(TIMINGS, sort_keys=True))


def chromium(workdir, url, *args):
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=workdir)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--user-data-dir=%s" % profile, "--force-device-scale-factor=1", "--hide-scrollbars",
           "--window-size=%d,%d" % (WIDTH, HEIGHT)] + list(args) + [url]
    started = time.monotonic()
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=TIMEOUT, check=False)
    TIMINGS.setdefault(args[0].split("=")[0], []).append(round(time.monotonic() - started, 2))
    shutil.rmtree(profile, ignore_errors=True)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def read_png(path, max_rows=None):
    """Decode an 8-bit, non-interlaced RGB/RGBA PNG (what Chromium writes) into rows of bytes."""
    with open(path, "rb") as fh:
        data = fh.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _c, _f, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(min(height, max_rows or height)):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif ftype == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif ftype == 3:
            for i in range(stride):
                line[i] = (line[i] + ((line[i - bpp] if i >= bpp else 0) + prev[i]) // 2) & 255
        elif ftype == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return width, height, bpp, rows


def pixel(png, x, y):
    _w, _h, bpp, rows = png
    i = int(x) * bpp
    return tuple(rows[int(y)][i:i + 3])


def classify(rgb):
    """The state whose colour is nearest, and how far it is."""
    dist = dict((s, sum((a - b) ** 2 for a, b in zip(rgb, c)) ** 0.5) for s, c in RGB.items())
    best = min(dist, key=dist.get)
    return best, dist[best]


def render_in_chromium(workdir, name, report):
    """(boxes, dom, png) of one report."""
    page = render.html(report)
    path = os.path.join(workdir, name + ".html")
    measured = os.path.join(workdir, name + "-measure.html")
    with open(path, "w") as fh:
        fh.write(page)
    with open(measured, "w") as fh:
        fh.write(page.replace("</body>", MEASURE + "</body>"))
    found = re.search(r'<body[^>]* data-boxes="([^"]*)"', chromium(workdir, "file://" + measured, "--dump-dom"))
    assert found, "the measuring script did not run"
    boxes = json.loads(html.unescape(found.group(1)))
    dom = Dom(chromium(workdir, "file://" + path, "--dump-dom"))
    shot = os.path.join(workdir, name + ".png")
    chromium(workdir, "file://" + path, "--screenshot=%s" % shot)
    bottom = max(d["box"]["y"] + d["box"]["h"] for d in boxes["dots"])
    assert bottom < HEIGHT, "the matrices end at %dpx, below the %dpx window" % (bottom, HEIGHT)
    png = read_png(shot, max_rows=int(bottom) + 2)
    assert png[:2] == (WIDTH, HEIGHT)
    return boxes, dom, png


def expected_states(report):
    nodes = dict(((e["src"], e["dst"], e["check"]), render.probe_state(e))
                 for e in report["checks"]["node_reachability"]["evidence"]["matrix"])
    mesh = (report["checks"].get("paths") or {}).get("evidence", {}).get("mesh") or []
    pods = dict(((e["src_pod"], e.get("dst_pod") or e["dst"], e["kind"], e.get("proto")), render.probe_state(e))
                for e in mesh)
    return nodes, pods


def seen_states(boxes, png):
    """What the screenshot shows at each swatch: {key: state} for node chips, pod chips, legend keys."""
    nodes, pods, legend = {}, {}, {}
    for dot in boxes["dots"]:
        b, a = dot["box"], dot["attrs"]
        assert b["w"] >= 6 and b["h"] >= 6, dot
        state, dist = classify(pixel(png, b["x"] + b["w"] / 2, b["y"] + b["h"] / 2))
        assert dist < 30, (dot, pixel(png, b["x"] + b["w"] / 2, b["y"] + b["h"] / 2))
        if "data-src" in a:
            nodes[(a["data-src"], a["data-dst"], a["data-check"])] = state
        elif "data-src-pod" in a:
            pods[(a["data-src-pod"], a["data-dst"], a["data-check"], a.get("data-proto"))] = state
        else:
            legend[a["data-state"]] = state
    return nodes, pods, legend


def test_broken_report_in_chromium(workdir):
    report = reports.broken_report()
    boxes, dom, png = render_in_chromium(workdir, "broken", report)
    want_nodes, want_pods = expected_states(report)
    nodes, pods, legend = seen_states(boxes, png)
    # every swatch has the colour of its probe's state, and there is one per probe
    assert nodes == want_nodes
    assert pods == want_pods
    assert legend == {"blocked": "blocked", "ok": "ok", "unknown": "unknown"}
    # the cells that matter, by name: red where the seed SG drops, green where it lets through,
    # grey where w2's listener (which alone can tell) did not report
    assert nodes[("w1", "cp1", "kubelet")] == "blocked"
    assert nodes[("cp1", "w2", "ephemeral")] == "blocked"
    assert nodes[("w2", "cp1", "ipip")] == "blocked"
    assert nodes[("w2", "w1", "vxlan")] == "ok"
    assert nodes[("cp1", "w2", "vxlan")] == "unknown"
    assert sorted(set(nodes.values())) == ["blocked", "ok", "unknown"]
    assert pods[("probe-cp1", "probe-w1", "pod", "tcp")] == "blocked"
    assert pods[("probe-cp1", "probe-w1", "pod", "udp")] == "blocked"
    assert pods[("probe-w2", "kubernetes.io:443", "external", "tcp")] == "ok"
    # the pod matrix stands next to the node matrix
    node_box, pod_box = boxes["tables"]["node-matrix"], boxes["tables"]["pod-matrix"]
    assert pod_box["x"] >= node_box["x"] + node_box["w"]
    assert abs(pod_box["y"] - node_box["y"]) < 5
    # the causes come first, before the matrices
    assert boxes["tables"]["causes"]["y"] < node_box["y"]
    # the DOM as Chromium parsed it
    assert dom.select("h1", id="headline")[0]["text"] == report["headline"]
    causes = [(e["attrs"]["data-cause"], e["attrs"]["data-explains"]) for e in dom.elements
              if e["tag"] == "li" and e["attrs"].get("class") == "cause"]
    assert causes == [(c["id"], str(len(c["explains"]))) for c in report["root_causes"]]
    assert [c[0] for c in causes] == ["SG_NO_SELF_REF", "IMAGE_ARCH_MISMATCH"]
    cells = dict(((e["attrs"]["data-src"], e["attrs"]["data-dst"]), e["attrs"]["data-state"])
                 for e in dom.elements if e["tag"] == "td" and "data-src" in e["attrs"])
    assert cells == dict(((s, d), "self" if s == d else "blocked") for s in reports.NODES for d in reports.NODES)
    chips = dict(((e["attrs"]["data-src"], e["attrs"]["data-dst"], e["attrs"]["data-check"]), e["attrs"]["data-state"])
                 for e in dom.elements if e["tag"] == "li" and "data-src" in e["attrs"])
    assert chips == want_nodes


def test_healthy_report_in_chromium(workdir):
    report = reports.healthy_report()
    boxes, dom, png = render_in_chromium(workdir, "healthy", report)
    nodes, pods, legend = seen_states(boxes, png)
    assert len(nodes) == len(report["checks"]["node_reachability"]["evidence"]["matrix"]) == 29
    assert set(nodes.values()) == {"ok"}
    assert pods == {} and "pod-matrix" not in boxes["tables"]
    assert legend == {"blocked": "blocked", "ok": "ok", "unknown": "unknown"}
    assert dom.select("h1", id="headline")[0]["text"] == "healthy"
    assert [e for e in dom.elements if e["tag"] == "li" and e["attrs"].get("class") == "cause"] == []


def mesh_report():
    """A 3-node x 2-pod mesh on the seed SG as analysis/mesh.py records it (cross-node cells blocked, same-node
    cells open, the Service reachable from node1 only, egress open), the blocked node pairs the lab's matrix
    reports, and the diagnosis over both: one cause that explains every red pod cell."""
    nodes = ("node1", "node2", "node3")
    pods = [{"pod": "mesh-%s-%d" % (n, k), "node": n, "ip": "192.168.%s.%d" % (n[-1], 20 + k)} for n in nodes
            for k in (0, 1)]
    tlist = mesh.targets(pods, {"ip": "10.96.0.10", "port": 53, "name": "kube-system/kube-dns"}, ("10.233.0.10", 443))
    results = []
    for p in pods:
        letters = ""
        for t in tlist:
            if t["kind"] == "pod":
                letters += "s" if t["dst"] == p["ip"] else "o" if t["dst_node"] == p["node"] else "t"
            else:
                letters += "o" if t["kind"] == "external" or p["node"] == "node1" else "t"
        results.append(dict(p, outcome="finished", detail="Succeeded", letters=letters))
    rows = mesh.matrix(results, tlist, 2)
    paths = mesh.check_result(rows, mesh.findings(rows, results, "default", ["node1"]), results)
    pairs = [finding("NODE_PORT_BLOCKED", "dropped", "why", "fix", where="%s -> %s" % (a, b), src=a, dst=b,
                     checks=["ipip", "bgp"], ports=[{"proto": "4", "port": None}, {"proto": "tcp", "port": 179}])
             for a in nodes for b in nodes if a != b]
    checks = {"node_reachability": {"status": "failed", "msg": "6 node pairs blocked", "findings": pairs,
                                    "evidence": {"nodes": {}, "matrix": []}}, "paths": paths}
    causes = diagnosis.diagnose(checks)
    return {"headline": diagnosis.headline(checks, causes), "root_causes": causes, "checks": checks,
            "unexplained": diagnosis.unexplained(checks, causes)}


def test_pod_mesh_grid_in_chromium(workdir):
    """The pod matrix of a real mesh result: red where pods on different nodes could not connect, green on
    the same node, each red chip linked to the cause that explains it; the legend names the colours."""
    report = mesh_report()
    assert [c["id"] for c in report["root_causes"]] == ["NODE_PORTS_BLOCKED"] and report["unexplained"] == []
    boxes, dom, png = render_in_chromium(workdir, "mesh", report)
    _nodes, pods, legend = seen_states(boxes, png)
    want = {}
    for e in report["checks"]["paths"]["evidence"]["mesh"]:
        want[(e["src_pod"], e.get("dst_pod") or e["dst"], e["kind"], e["proto"])] = "ok" if e["ok"] else "blocked"
    assert pods == want
    assert legend == {"blocked": "blocked", "ok": "ok", "unknown": "unknown"}
    red = [k for k, v in pods.items() if v == "blocked"]
    assert sorted({(k[0].split("-")[1], k[1].split("-")[1]) for k in red if k[2] == "pod"}) == sorted(
        (a, b) for a in ("node1", "node2", "node3") for b in ("node1", "node2", "node3") if a != b)
    assert all(v == "ok" for k, v in pods.items() if k[2] == "pod" and k[0].split("-")[1] == k[1].split("-")[1])
    red_service = sorted(k[0] for k in red if k[2] == "service")
    assert red_service == ["mesh-node2-0", "mesh-node2-1", "mesh-node3-0", "mesh-node3-1"]
    # every red chip names the cause that explains it; no green one does
    chips = [e for e in dom.elements if e["tag"] == "li" and "data-src-pod" in e["attrs"]]
    assert chips and all((e["attrs"].get("data-causes") == "1") == (e["attrs"]["data-state"] == "blocked")
                         for e in chips), [e["attrs"] for e in chips if e["attrs"]["data-state"] == "blocked"][:3]
    cells = [e for e in dom.elements if e["tag"] == "td" and "data-src-pod" in e["attrs"]]
    assert {e["attrs"]["data-state"] for e in cells} == {"self", "ok", "blocked"}
