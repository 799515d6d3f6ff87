"""Faults during a playbooks/validate.yml run, in the lab (root: network namespaces).

Each run must end within its timeouts, with a finding naming the node or the endpoint, and the
report file must still be written:
* a node that stops answering mid-run: its namespace is deleted while validate runs;
* 20% packet loss on one node's link (nftables ``numgen random mod 100 < 20 drop``, both directions);
* a Kubernetes API that accepts connections and never answers (a socket server on loopback).
"""

import os
import shutil
import threading
import time

import pytest

from tests.lab.netlab import HEALTHY_SG, run
from tests.lab.validatelab import ValidateLab
from tests.support.lifecycle import SilentServer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the network lab needs root")

# what every run here is bounded by: probe 1.5 s, packet window 3 s + 1 s, DNS 1.5 s per query,
# API requests 3 s, probe pods 10 s; the rest is Ansible's own cost on a loaded 2-core machine
BOUND = 150


def refs(report, check):
    return [f for f in report["checks"][check]["findings"] if f["severity"] == "error"]


def names(finding, node):
    return node in finding.get("where", "") or node in finding.get("observed", "")


def test_node_vanishes_mid_run():
    with ValidateLab(3, sg=HEALTHY_SG, with_ec2=False, with_registry=False,
                     extra_vars={"validate_dns_probe_timeout": 10}) as vlab:
        ns = vlab.lab.node("node3")["ns"]
        gone = {}

        def kill_when_probing():
            # as soon as anything runs inside node3 (its node_probe task), the node disappears
            deadline = time.time() + BOUND
            while time.time() < deadline:
                pids = run(["ip", "netns", "pids", ns], check=False).stdout.split()
                if pids:
                    for pid in pids:
                        try:
                            os.kill(int(pid), 9)
                        except (OSError, ValueError):
                            pass
                    run(["ip", "netns", "delete", ns], check=False)
                    gone["at"] = time.time()
                    return
                time.sleep(0.02)

        killer = threading.Thread(target=kill_when_probing, daemon=True)
        # the DNS lab runs nothing inside node3 itself (its CoreDNS pods are on node1 and node2)
        assert run(["ip", "netns", "pids", ns], check=False).stdout.split() == []
        killer.start()
        started = time.time()
        rc, report, wall, out = vlab.validate(timeout=BOUND + 60)
        killer.join(5)
    assert "at" in gone and gone["at"] - started < wall, "node3 was never seen running its task"
    assert wall < BOUND, wall
    assert rc != 0, out[-3000:]
    assert report is not None, out[-3000:]
    reach = refs(report, "node_reachability")
    assert [(f["id"], f["where"]) for f in reach] == [("NODE_UNREACHABLE", "node3")], reach
    assert report["checks"]["node_reachability"]["evidence"]["unreachable"] == ["node3"]
    # the other nodes still reached each other
    rows = report["checks"]["node_reachability"]["evidence"]["matrix"]
    assert all(r["ok"] for r in rows if {r["src"], r["dst"]} == {"node1", "node2"}), rows


def test_packet_loss_on_one_node():
    with ValidateLab(3, sg=HEALTHY_SG, with_ec2=False, with_registry=False,
                     extra_vars={"validate_dns_probe_timeout": 10,
                                 "validate_dns_names": ["a.default", "b.default", "c.default", "d.default"]}) as vlab:
        ns = vlab.lab.node("node2")["ns"]
        rules = "\n".join([
            "table inet kec2loss {",
            "  chain in { type filter hook input priority -10; iifname \"eth0\" numgen random mod 100 < 20 drop; }",
            "  chain out { type filter hook output priority -10; oifname \"eth0\" numgen random mod 100 < 20 drop; }",
            "}", ""])
        run(["nft", "-f", "-"], ns=ns, input=rules)
        rc, report, wall, out = vlab.validate(timeout=BOUND + 60)
        dropped = run(["nft", "list", "table", "inet", "kec2loss"], ns=ns).stdout
    assert "numgen random mod 100 < 20 drop" in dropped
    assert wall < BOUND, wall
    assert report is not None, out[-3000:]
    errors = [f for c in report["checks"].values() for f in c["findings"] if f["severity"] == "error"]
    assert rc != 0 and errors, out[-3000:]
    # what is lost is node2's: a finding names it
    assert any(names(f, "node2") for f in errors), errors


def test_api_accepts_but_never_answers(tmp_path):
    with SilentServer() as silent, ValidateLab(3, sg=HEALTHY_SG, with_ec2=False) as vlab:
        endpoint = "http://127.0.0.1:%d" % silent.port
        kubeconfig = vlab.api.write_kubeconfig(str(tmp_path / "silent-kubeconfig"), server=endpoint)
        rc, report, wall, out = vlab.validate(timeout=BOUND + 60, extra_vars={
            "validate_dns_kubeconfig": kubeconfig, "validate_images_kubeconfig": kubeconfig,
            "validate_dns_api_timeout": 3, "validate_api_admin_conf": str(tmp_path / "no-admin.conf")})
        held = len(silent.conns)
    assert held >= 1  # the probe did connect: it was the answer that never came
    assert wall < BOUND, wall
    assert report is not None, out[-3000:]
    assert rc != 0
    assert "does not answer the controller" in out and "accepted the connection but sent no answer" in out, out[-3000:]
    for check in ("dns", "image_arch"):
        api = [f for f in refs(report, check) if f["id"] == "API_UNREACHABLE"]
        assert api and api[0]["where"] == endpoint, report["checks"][check]
    # the checks that do not need the API are not affected
    assert report["checks"]["node_reachability"]["status"] == "passed"
    assert shutil.which("nft")
