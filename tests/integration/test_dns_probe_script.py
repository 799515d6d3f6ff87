"""The DNS probe pod's script (analysis/dns.py probe_script) run for real with busybox's nslookup and timeout,
as in the default probe image, from a lab node's namespace against the lab's cluster DNS (dnsmasq as the
CoreDNS pod on node1 behind the service VIP 10.96.0.10). nftables rules in the CoreDNS pod's namespace
lose the first queries or every query on their way in, as a security group drops them on another host
(a drop in the sender's own output would fail its send at once instead).

What it proves: a lookup sends its queries again every half second within its bound, so one lost send
costs half a second and not the lookup; a black-holed cluster DNS is reported as a timeout after the
bound (``timeout`` rounded up to whole seconds), not before it and not twice as late. The path probe
pods' script (analysis/paths.py) does its lookup the same way.

Needs root (network namespaces) and busybox (scripts/sysdeps.sh installs both)."""

import os
import shutil
import time

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import dns, paths
from tests.lab.dnslab import DnsLab, LabKubelet
from tests.lab.netlab import run

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="the network lab needs root"),
              pytest.mark.skipif(not shutil.which("busybox"), reason="busybox not installed")]

CLUSTER_NAME = ("kubernetes.default.svc.cluster.local", "cluster")
TIMEOUT = 1.5  # the bench lab's validate_dns_timeout: each lookup may take 2 s (rounded up)


@pytest.fixture(scope="module")
def lab():
    with DnsLab(1, coredns_nodes=("node1",)) as dnslab:
        yield dnslab


@pytest.fixture()
def coredns(lab):
    """The CoreDNS pod's namespace, with an nftables table of the test's own that is removed afterwards."""
    ns = lab.coredns[0]["ns"]
    yield ns
    run(["nft", "delete", "table", "inet", "probe_test"], ns=ns, check=False)


def drop(ns, rule):
    run(["nft", "add", "table", "inet", "probe_test"], ns=ns)
    run(["nft", "add chain inet probe_test in { type filter hook input priority 0 ; }"], ns=ns)
    run(["nft", "add rule inet probe_test in " + rule], ns=ns)


def probe(lab, plan, script=None, parse=dns.parse_probe_message):
    """Run the script from node1 as the lab kubelet runs a pod: (exit code, results, seconds)."""
    started = time.monotonic()
    code, message = LabKubelet(lab).run_script("node1", script or dns.probe_script(plan, TIMEOUT))
    return code, parse(message), time.monotonic() - started


def test_lookups_answer_and_a_missing_name_is_nxdomain(lab, coredns):
    code, res, took = probe(lab, [CLUSTER_NAME, ("nope.default.svc.cluster.local", "user")])
    assert [(r["name"], r["status"]) for r in res] == [
        ("kubernetes.default.svc.cluster.local", "ok"), ("nope.default.svc.cluster.local", "nxdomain")]
    assert res[0]["answer"] == "10.96.0.1"
    assert code == 1  # a name failed
    assert took < 1.0


def test_a_lost_first_send_costs_half_a_second_not_the_lookup(lab, coredns):
    # the first two DNS packets that reach CoreDNS (the lookup's A and AAAA queries) are dropped
    drop(coredns, "udp dport 53 numgen inc mod 1000000 < 2 counter drop")
    code, res, took = probe(lab, [CLUSTER_NAME])
    counters = run(["nft", "list", "table", "inet", "probe_test"], ns=coredns).stdout
    assert "packets 2 " in counters, counters  # the loss really happened
    assert [(r["name"], r["status"], r["answer"]) for r in res] == [
        ("kubernetes.default.svc.cluster.local", "ok", "10.96.0.1")]
    assert code == 0
    # busybox's default would resend after 2.5 s; the script resends after 0.5 s
    assert 0.4 < took < 1.3, took


def test_a_black_holed_cluster_dns_times_out_at_the_bound(lab, coredns):
    drop(coredns, "udp dport 53 drop")
    drop(coredns, "tcp dport 53 drop")
    code, res, took = probe(lab, [CLUSTER_NAME, ("example.test", "external")])
    assert [(r["name"], r["status"]) for r in res] == [
        ("kubernetes.default.svc.cluster.local", "timeout"), ("example.test", "timeout")]
    assert code == 1
    bound = dns.lookup_bound(TIMEOUT)
    assert bound == 2
    # every lookup at once: the pod takes one bound, not one per name, and not the guard's extra second
    assert bound - 0.1 < took < bound + 0.7, took


def test_a_path_probe_lookup_ends_at_its_bound_too(lab, coredns):
    drop(coredns, "udp dport 53 drop")
    drop(coredns, "tcp dport 53 drop")
    script = paths.probe_script("kubernetes.default.svc.cluster.local", 443, timeout=3)
    code, res, took = probe(lab, None, script, paths.parse_probe_message)
    assert res == {"dns": {"status": "timeout", "answer": ""}, "connect": {"status": "skipped"}}
    assert code == 1
    # 3 s (connect_timeout) where the old script, busybox's defaults under a bound of 5 s, took 5 s
    assert 2.9 < took < 3.7, took
