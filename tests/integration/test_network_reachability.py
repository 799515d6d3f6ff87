"""node_reachability through ansible-playbook against the network lab (real kernel, real iptables).

Needs root (network namespaces). Each test builds its own lab with a unique prefix and tears it
down even when the test fails (NetLab is a context manager with an atexit fallback).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from tests.lab.netlab import HEALTHY_SG, SEED_SG, NetLab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = os.path.join(ROOT, "tests", "integration", "playbooks", "network_reachability.yml")
BIN = os.path.dirname(sys.executable)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the network lab needs root")


def run_reachability(lab, extra_vars=None, control_planes=1, timeout=300):
    """Run the reachability playbook against ``lab``; return (rc, analyse result dict, wall seconds, output).

    The analyse result is read from the JSON stdout callback (no extra task in the timed play).
    """
    tmp = tempfile.mkdtemp(prefix="kreach-")
    try:
        inv = lab.write_inventory(os.path.join(tmp, "inventory.json"), python=os.path.realpath(sys.executable),
                                  control_planes=control_planes)
        evars = {
            "validate_network_become": False,
            "validate_network_probe_timeout": 2.0,
        }
        evars.update(extra_vars or {})
        env = dict(os.environ)
        env.update({
            "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"),
            "ANSIBLE_FORKS": str(max(20, lab.count)),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_PIPELINING": os.environ.get("ANSIBLE_PIPELINING", "True"),
            "ANSIBLE_NOCOLOR": "1",
            "PATH": BIN + os.pathsep + env.get("PATH", ""),
        })
        start = time.time()
        proc = subprocess.run(
            [os.path.join(BIN, "ansible-playbook"), "-i", inv, PLAYBOOK, "-e", json.dumps(evars)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout, check=False)
        wall = time.time() - start
        result, failures = {}, []
        try:
            doc = json.loads(proc.stdout)
        except ValueError:
            doc = {"plays": []}
        for play in doc.get("plays", []):
            for task in play.get("tasks", []):
                for host, res in task.get("hosts", {}).items():
                    if res.get("failed"):
                        failures.append("%s | %s: %s" % (task["task"]["name"], host, res.get("msg")))
                    if task["task"]["name"].endswith("Analyse the node-to-node matrix"):
                        result = res
        tail = "" if doc.get("plays") else proc.stdout[-3000:]
        out = "rc=%d\n%s\n%s\n%s" % (proc.returncode, "\n".join(failures), proc.stderr[-3000:], tail)
        return proc.returncode, result, wall, out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _by_pair(findings, fid):
    out = {}
    for f in findings:
        if f["id"] == fid and f["severity"] == "error":
            out[(f["details"]["src"], f["details"]["dst"])] = f
    return out


def test_seed_sg_fails_with_findings_per_pair():
    with NetLab(3, sg=SEED_SG) as lab:
        rc, res, wall, out = run_reachability(lab)
    assert rc != 0, out
    assert res.get("failed"), out
    findings = res["findings"]
    pairs = [(a, b) for a in ("node1", "node2", "node3") for b in ("node1", "node2", "node3") if a != b]
    # one observation per blocked pair; the cause (the SG's missing self-reference) is the diagnosis' call
    blocked = _by_pair(findings, "NODE_PORT_BLOCKED")
    assert sorted(blocked) == sorted(pairs), out
    for pair in pairs:
        assert "tcp/10250" in blocked[pair]["observed"]
        assert "tcp/40123 (ephemeral)" in blocked[pair]["observed"]
        assert "ec2_network_sg_self_reference: true" in blocked[pair]["remediation"]
        assert "IpProtocol=-1,UserIdGroupPairs=[{GroupId=<node-sg-id>}]" in blocked[pair]["remediation"]
        assert "host firewall of %s" % pair[1] in blocked[pair]["remediation"]
        assert blocked[pair]["details"]["blocked"][0] == "tcp/10250"
        encap = [c for c in blocked[pair]["details"]["checks"] if c in ("bgp", "ipip", "vxlan")]
        assert encap in (["bgp", "ipip"], ["bgp"]), blocked[pair]
        assert "Calico BGP" in blocked[pair]["why"]
    # IP-in-IP: one direction per pair (stateful SGs), every pair covered once
    ipip = sorted(tuple(sorted(p)) for p in pairs if "ipip" in blocked[p]["details"]["checks"])
    assert ipip == [("node1", "node2"), ("node1", "node3"), ("node2", "node3")], ipip
    assert "Calico IPIP" in blocked[("node1", "node2")]["why"]
    assert "ip protocol 4 (IP-in-IP)" in blocked[("node1", "node2")]["observed"]
    # API only towards the control plane (node1): blocked from workers by the seed SG (admin CIDR only)
    assert "tcp/6443" in blocked[("node2", "node1")]["observed"]
    assert "tcp/6443" not in blocked[("node1", "node2")]["observed"]
    # the seed SG allows VXLAN from anywhere: the UDP probe passes through the listener
    assert "vxlan" not in json.dumps(res["matrix"])
    assert res["summary"]["per_check"]["vxlan"] == {"ok": 6, "blocked": 0, "unknown": 0}
    assert "node1 (10.231.0.12) -> node2 (10.231.0.13)" in res["msg"]


def _namespaces(prefix):
    out = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE, text=True, check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix + "-")]


def test_healthy_sg_passes_quietly_with_matrix():
    with NetLab(3, sg=HEALTHY_SG) as lab:
        rc, res, wall, out = run_reachability(lab)
        # the listeners ended at collect; async_wrapper's watchdog polls every 5 s, so it may take
        # that long to notice: nothing of ours is left running inside the nodes after that
        deadline = time.time() + 10
        while True:
            left = dict((n["ns"], subprocess.run(["ip", "netns", "pids", n["ns"]], stdout=subprocess.PIPE,
                                                 text=True, check=False).stdout.split()) for n in lab.nodes)
            if not any(left.values()) or time.time() > deadline:
                break
            time.sleep(0.5)
        assert not any(left.values()), [subprocess.run(["ps", "-o", "pid,etime,args", "-p", p], stdout=subprocess.PIPE,
                                                       text=True, check=False).stdout for v in left.values() for p in v]
    assert _namespaces(lab.prefix) == []
    assert rc == 0, out
    assert res["findings"] == []
    assert res["summary"]["blocked"] == 0 and res["summary"]["unknown"] == 0
    # 6 pairs x (kubelet, bgp, vxlan, ephemeral) + ipip once per pair + 6443 from 2 workers to node1
    assert res["summary"]["probes"] == 6 * 4 + 3 + 2
    assert res["summary"]["per_check"]["ipip"] == {"ok": 3, "blocked": 0, "unknown": 0}
    assert all(v == "ok" for row in res["matrix"].values() for v in row.values())
    assert res["msg"].startswith("node_reachability: 3 nodes, 6 directed pairs, 29 probes, 29 passed")


def test_only_ipip_blocked_names_ipip_and_mode():
    # healthy except IP protocol 4: an explicit allow-list without the self rule, but every TCP port and UDP open
    sg = SEED_SG + [
        {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "UserIdGroupPairs": [{"GroupId": "self"}]},
        {"IpProtocol": "udp", "FromPort": 0, "ToPort": 65535, "UserIdGroupPairs": [{"GroupId": "self"}]},
    ]
    with NetLab(3, sg=sg) as lab:
        rc, res, wall, out = run_reachability(lab, {"validate_network_security_group_id": "sg-0abc"})
    assert rc != 0, out
    errs = [f for f in res["findings"] if f["severity"] == "error"]
    assert {f["id"] for f in errs} == {"NODE_PORT_BLOCKED"}
    assert len(errs) == 3
    assert all(f["details"]["checks"] == ["ipip"] for f in errs)
    assert "'IpProtocol=4,UserIdGroupPairs=[{GroupId=sg-0abc}]'" in errs[0]["remediation"]


def test_blackhole_node_ends_within_timeout_with_finding():
    lab = NetLab(3, sg=HEALTHY_SG)
    with pytest.raises(AssertionError):
        with lab:
            lab.blackhole("node3")
            rc, res, wall, out = run_reachability(lab, timeout=120)
            probe_done = wall
            raise AssertionError("a failing test body still tears the lab down")
    assert _namespaces(lab.prefix) == []
    assert rc != 0, out
    assert probe_done < 60
    ids = [(f["id"], f["where"]) for f in res["findings"] if f["severity"] == "error"]
    assert ids == [("NODE_UNREACHABLE", "node3")], out
    assert res["matrix"]["node1"]["node2"] == "ok"
    assert wall < 60, wall
