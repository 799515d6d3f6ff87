"""A node that starts seconds after its peer is still measured, and a barely-overlapping silence is
never called a drop (real sockets in the network lab, run_probes() called directly in each node).

On a busy controller Ansible starts the last of 50 nodes seconds after the first (the bench saw
5.7 s). These tests start node2 3.6 s after node1 with a 3 s packet window, so node1 has stopped
sending when node2 opens its listener: only the heard-peer extension of probes/net.py measures the
pair. Needs root (network namespaces).
"""

import json
import os
import subprocess
import sys
import time

import pytest

from tests.lab.netlab import HEALTHY_SG, SEED_SG, SELF, NetLab
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import reachability as r

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the network lab needs root")

SCRIPT = """
import json, sys
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes import net
net.HEARD_EXTENSION = int(sys.argv[3])
nodes = json.loads(sys.argv[2])
print(json.dumps(net.run_probes(sys.argv[1], nodes, [sorted(nodes)[0]], "late1", timeout=1.0,
                                window=3.0, interval=0.2, grace=1.0)))
"""
DELAY = 3.6


def _run_pair(sg, extension=None):
    extension = r_ext() if extension is None else extension
    with NetLab(nodes=2, sg=sg) as lab:
        nodes = dict((n["name"], n["ip"]) for n in lab.nodes)
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, ".collections"))
        procs = {}
        for name in sorted(nodes):
            if procs:
                time.sleep(DELAY)
            procs[name] = subprocess.Popen(
                ["ip", "netns", "exec", lab.node(name)["ns"], sys.executable, "-c", SCRIPT, name, json.dumps(nodes),
                 str(extension)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        reports = {}
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            reports[name] = json.loads(out)
    matrix = r.build_matrix(nodes, [sorted(nodes)[0]], reports)
    return dict(((s, d, c), v) for (s, d, c), v in matrix.items() if c in ("vxlan", "ipip")), reports


def r_ext():
    from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes import net
    return net.HEARD_EXTENSION


def test_late_peer_is_measured_on_a_healthy_group():
    cells, reports = _run_pair(HEALTHY_SG)
    assert cells and all(v[0] == "ok" for v in cells.values()), cells
    # node1 re-sent to node2 past its own 3 s window because it heard node2, and stayed bounded
    opened = reports["node1"]["listen"][0]
    lasts = [entry[5] - opened for entry in reports["node1"]["sent"] if entry[0] == "node2"]
    assert lasts and min(lasts) > 3.0, reports["node1"]["sent"]
    assert reports["node1"]["seconds"] < 2 * 3.0 + 1.0 + 1.0


def test_without_the_extension_the_late_pair_is_unknown_never_blocked():
    # the other way: the same start times without the extension leave node1 -> node2 unmeasured
    cells, _reports = _run_pair(HEALTHY_SG, extension=0)
    assert cells[("node1", "node2", "vxlan")][0] == "unknown", cells
    assert not [k for k, v in cells.items() if v[0] == "blocked"], cells


def test_late_peer_with_ipip_dropped_is_still_judged_blocked():
    # UDP 4789 passes (the seeds' rule, so node1 hears node2), IP protocol 4 is dropped: the extension
    # sends enough IP-in-IP packets while node2 listens to call the silence a drop
    sg = list(SEED_SG) + [{"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "UserIdGroupPairs": [{"GroupId": SELF}]}]
    cells, _reports = _run_pair(sg)
    assert cells[("node1", "node2", "ipip")][0] == "blocked", cells
    assert [v[0] for (s, d, c), v in sorted(cells.items()) if c == "vxlan"] == ["ok", "ok"], cells
    # the other way: without the extension that silence is not evidence
    cells, _reports = _run_pair(sg, extension=0)
    assert cells[("node1", "node2", "ipip")][0] == "unknown", cells
