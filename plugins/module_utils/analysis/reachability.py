# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node-to-node reachability: the probes every node runs and the analysis of the matrix.

Three phases run on the nodes, one on the controller:

``listen``  raw sockets (IPPROTO_UDP and IP protocol 4) record the probe packets that reach
            this node. Raw sockets get a copy of every packet that passed the netfilter INPUT
            hook, even when a VXLAN device or tunl0 owns the traffic, so this works on real
            Calico nodes as well as in the lab. Bounded lifetime; stops early on a stop file.
``probe``   every check to every peer at once (non-blocking sockets, one poll loop, one
            timeout for all): TCP connect (a RST means the security group let the SYN
            through, a timeout means it was dropped), UDP 4789 and IP-in-IP packets carrying a
            magic payload with the run id (re-sent a few times while the TCP probes run).
``collect`` write the stop file and read what the listener recorded.
``analyse`` (controller) combine every node's sent/received records into the matrix and
            findings.

Everything below is stdlib only; the analysis functions are pure and unit-tested.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import select
import socket
import struct
import threading
import time

# The encapsulation protocols each Calico mode needs between nodes: the one table (analysis/calico.py).
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import calico
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import catalogue as cat
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import (
    ERROR,
    WARNING,
    finding,
)

MAGIC = b"KEC2REACH1"
VXLAN_PORT = 4789
IPPROTO_IPIP = 4
DEFAULT_EPHEMERAL_PORT = 40123

ENCAPSULATIONS = calico.ENCAPSULATIONS

# name -> (protocol, port, label, who needs it). Which rule or device dropped a blocked probe is not
# known here: the diagnosis (analysis/diagnosis.py) decides that from the security group as EC2 holds it.
CHECKS = {
    "kubelet": ("tcp", 10250, "tcp/10250", "kubelet API (kubectl logs/exec, metrics-server), every Calico mode"),
    "apiserver": ("tcp", 6443, "tcp/6443", "kube-apiserver from every node, every Calico mode"),
    "etcd-client": ("tcp", 2379, "tcp/2379", "etcd clients between control planes, every Calico mode"),
    "etcd-peer": ("tcp", 2380, "tcp/2380", "etcd peers between control planes, every Calico mode"),
    "bgp": ("tcp", 179, "tcp/179", "Calico BGP peering (BIRD): ipipMode Always/CrossSubnet and unencapsulated pools"),
    "typha": ("tcp", 5473, "tcp/5473", "Calico Typha (Felix to Typha), every Calico mode when Typha runs"),
    "vxlan": ("udp", VXLAN_PORT, "udp/4789", "Calico VXLAN: vxlanMode Always/CrossSubnet"),
    "ipip": ("ip", IPPROTO_IPIP, "ip protocol 4 (IP-in-IP)", "Calico IPIP: ipipMode Always/CrossSubnet"),
    "ephemeral": ("tcp", DEFAULT_EPHEMERAL_PORT, "tcp/ephemeral",
                  "pod-to-pod, ClusterIP and DNS traffic on arbitrary ports, every Calico mode (only a self-referencing "
                  "rule allows it)"),
}
CHECK_ORDER = ("kubelet", "apiserver", "etcd-client", "etcd-peer", "bgp", "typha", "vxlan", "ipip", "ephemeral")

ENCAP_CHECKS = ("bgp", "vxlan", "ipip")
IPIP_NOTE = (" (IP protocol 4 is probed in one direction per node pair: security groups track it by address pair,"
             " so the reverse direction would pass as a reply)")


def label(check, ephemeral_port=DEFAULT_EPHEMERAL_PORT):
    if check == "ephemeral":
        return "tcp/%d (ephemeral)" % ephemeral_port
    return CHECKS[check][2]


def ipip_oriented(src, dst, names):
    """Whether the IP-in-IP check runs from ``src`` to ``dst``: one direction per node pair.

    Security groups (and the lab's conntrack) track IP protocol 4 by address pair only, so once
    ``dst`` sent a protocol-4 packet to ``src``, ``src`` -> ``dst`` passes as a reply whatever the
    inbound rules say. Each pair is therefore tested in one direction only, chosen as a round-robin
    tournament over the sorted names so that every node is the receiving side for about half of
    its peers, and the same direction on every run.
    """
    order = sorted(names)
    n = len(order)
    i, j = order.index(src), order.index(dst)
    d = (j - i) % n
    if 2 * d == n:
        return i < j
    return 0 < d <= n // 2


def plan_checks(src, dst, control_planes, typha=False, names=None):
    """The checks ``src`` runs against ``dst`` (role-dependent ports; IP-in-IP per ipip_oriented())."""
    out = ["kubelet"]
    if dst in control_planes:
        out.append("apiserver")
        if src in control_planes:
            out.extend(["etcd-client", "etcd-peer"])
    out.append("bgp")
    if typha:
        out.append("typha")
    out.append("vxlan")
    if names is None or ipip_oriented(src, dst, names):
        out.append("ipip")
    out.append("ephemeral")
    return out


def validate_nodes(nodes):
    """Return an error message naming the bad entry of ``nodes`` (name -> IPv4), or None."""
    if not nodes:
        return "nodes: at least one node (name -> private IP) is required"
    for name, ip in sorted(nodes.items()):
        try:
            socket.inet_aton(str(ip))
            if str(ip).count(".") != 3:
                raise ValueError(ip)
        except (socket.error, ValueError, TypeError):
            return "nodes: %r has no valid private IPv4 address (got %r); set private_ip_address for it in the inventory" % (name, ip)
    return None


# ---------------------------------------------------------------------------
# Remediation text (the commands themselves live in analysis/catalogue.py)
# ---------------------------------------------------------------------------
def encap_permission(check, sg_id=None):
    if check == "ipip":
        return cat.sg_permission("4", None, sg_id)
    return cat.sg_permission(CHECKS[check][0], CHECKS[check][1], sg_id)


def encap_fix(checks, sg_id=None):
    return cat.encap_fix([label(c) for c in checks], [encap_permission(c, sg_id) for c in checks], sg_id)


def blocked_fix(core, encap, dst, sg_id=None):
    """What to do about probes dropped between two nodes: which device dropped them is not known here."""
    if core:
        sg_fix = cat.self_ref_fix(sg_id)
    else:
        sg_fix = encap_fix(encap, sg_id)
    return ("if the node security group does not allow them: %s. If it does, the drop is outside it: the network "
            "ACL of the nodes' subnet or the host firewall of %s (sudo iptables -S; sudo nft list ruleset); the "
            "report's root causes say which" % (sg_fix, dst))


# ---------------------------------------------------------------------------
# Listener (runs on a node, needs CAP_NET_RAW)
# ---------------------------------------------------------------------------
def payload(run_id, check, src_ip):
    return MAGIC + b" " + run_id.encode("ascii", "replace") + b" " + check.encode("ascii") + b" " + src_ip.encode("ascii")


def parse_packet(data, run_id):
    """Parse a raw IPv4 packet (header included). Returns (src_ip, check) for our probes, else None."""
    if len(data) < 20 or (data[0] if isinstance(data[0], int) else ord(data[0])) >> 4 != 4:
        return None
    first = data[0] if isinstance(data[0], int) else ord(data[0])
    ihl = (first & 0x0F) * 4
    proto = data[9] if isinstance(data[9], int) else ord(data[9])
    src = socket.inet_ntoa(data[12:16])
    if proto == 17:
        if len(data) < ihl + 8:
            return None
        dport = struct.unpack("!H", data[ihl + 2:ihl + 4])[0]
        if dport != VXLAN_PORT:
            return None
        body = data[ihl + 8:]
        check = "vxlan"
    elif proto == IPPROTO_IPIP:
        body = data[ihl:]
        check = "ipip"
    else:
        return None
    parts = body.split(b" ")
    if len(parts) < 4 or parts[0] != MAGIC or parts[1] != run_id.encode("ascii", "replace") or parts[2] != check.encode("ascii"):
        return None
    return src, check


def open_listeners():
    """Raw sockets for UDP and IP protocol 4. Raises OSError (EPERM without CAP_NET_RAW)."""
    socks = []
    try:
        for proto in (socket.IPPROTO_UDP, IPPROTO_IPIP):
            s = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
            s.setblocking(False)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            except (OSError, socket.error):
                pass
            socks.append(s)
    except Exception:
        for s in socks:
            s.close()
        raise
    return socks


def listen(run_id, max_seconds, stop_path=None, result_path=None, socks=None, ready_path=None):
    """Record probe packets until ``stop_path`` exists or ``max_seconds`` passed.

    Returns ``{"received": [[src_ip, check, count], ...], "packets": n, "seconds": s, "stopped_by": ...}``
    and also writes it as JSON to ``result_path`` (atomically) for the collect phase.
    """
    start = time.time()
    deadline = start + max_seconds
    socks = socks if socks is not None else open_listeners()
    if ready_path:
        with open(ready_path, "w") as fh:
            fh.write("%d\n" % os.getpid())
    counts = {}
    packets = 0
    stopped_by = "deadline"
    try:
        while True:
            now = time.time()
            if now >= deadline:
                break
            if stop_path and os.path.exists(stop_path):
                stopped_by = "stop file"
                # drain what is already queued, then stop
                _drain(socks, run_id, counts)
                break
            readable = select.select(socks, [], [], min(0.1, max(0.0, deadline - now)))[0]
            for s in readable:
                packets += _read_all(s, run_id, counts)
    finally:
        for s in socks:
            s.close()
        if ready_path and os.path.exists(ready_path):
            os.remove(ready_path)
    result = {
        "received": [[src, check, n] for (src, check), n in sorted(counts.items())],
        "packets": packets,
        "seconds": round(time.time() - start, 3),
        "stopped_by": stopped_by,
    }
    if result_path:
        tmp = result_path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(result, fh)
        os.rename(tmp, result_path)
    return result


def _read_all(sock, run_id, counts):
    n = 0
    while True:
        try:
            data = sock.recv(65535)
        except (OSError, socket.error) as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                return n
            raise
        n += 1
        hit = parse_packet(bytearray(data), run_id)
        if hit:
            counts[hit] = counts.get(hit, 0) + 1


def _drain(socks, run_id, counts):
    for s in socks:
        _read_all(s, run_id, counts)


def state_paths(state_dir, run_id, node):
    """(stop file, result file, ready file) of one node's listener."""
    base = os.path.join(state_dir, "kubeadm_ec2_reach-%s-%s" % (_safe(run_id), _safe(node)))
    return base + ".stop", base + ".json", base + ".ready"


def wait_ready(state_dir, run_id, node, timeout):
    """Wait until this node's own listener has its sockets open (or the result is already there)."""
    _stop, result_path, ready_path = state_paths(state_dir, run_id, node)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(ready_path) or os.path.exists(result_path):
            return True
        time.sleep(0.02)
    return False


def _safe(text):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text))


def collect(state_dir, run_id, node, timeout, job_file=None):
    """Signal the listener to stop and read its records. Returns the listener result or a 'missing' record.

    ``job_file``: the listener's async job file (``results_file`` of the async task); removed once the
    listener has ended, so no async_status round trip is needed to clean up.
    """
    stop_path, result_path, _ready = state_paths(state_dir, run_id, node)
    with open(stop_path, "w") as fh:
        fh.write("stop\n")
    deadline = time.time() + timeout
    result = None
    while time.time() < deadline:
        if os.path.exists(result_path):
            with open(result_path) as fh:
                result = json.load(fh)
            break
        time.sleep(0.05)
    for path in (stop_path, result_path):
        try:
            os.remove(path)
        except OSError:
            pass
    if job_file:
        result_job = _remove_job_file(job_file, max(0.0, min(3.0, deadline - time.time())))
    if result is None:
        return {"received": [], "missing": True, "error": "no listener result after %.1fs (listener not started or died)" % timeout}
    result["missing"] = False
    if job_file:
        result["job_file_removed"] = result_job
    return result


def _remove_job_file(job_file, wait):
    """Remove an async job file once it holds the final result (not the 'started' record)."""
    deadline = time.time() + wait
    while True:
        try:
            with open(job_file) as fh:
                data = json.load(fh)
            if not data.get("started") or data.get("finished"):
                os.remove(job_file)
                return True
        except (OSError, IOError, ValueError):
            pass
        if time.time() >= deadline:
            return False
        time.sleep(0.05)


# ---------------------------------------------------------------------------
# Prober (runs on a node)
# ---------------------------------------------------------------------------
_BLOCKED_ERRNOS = {
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.EPERM: "dropped locally (EPERM)",
    errno.EACCES: "dropped locally (EACCES)",
    errno.ETIMEDOUT: "timeout",
}


def probe(src_name, nodes, control_planes, run_id, timeout=2.0, ephemeral_port=DEFAULT_EPHEMERAL_PORT,
          typha=False, resend_interval=0.25, min_send_window=1.0, max_parallel=512):
    """Probe every peer of ``src_name`` with every planned check, all in parallel.

    Returns ``{"node", "ip", "results": [[dst, check, status, detail], ...], "sent": [[dst, check, n], ...], "seconds"}``
    with status ``ok`` (SYN answered: connected or refused), ``blocked`` (timeout or ICMP/local drop)
    or ``sent`` for packet checks (the verdict comes from the peer's listener).
    """
    start = time.time()
    src_ip = nodes[src_name]
    tcp_jobs, pkt_jobs = [], []
    for dst in sorted(nodes):
        if dst == src_name:
            continue
        for check in plan_checks(src_name, dst, control_planes, typha, names=list(nodes)):
            proto = CHECKS[check][0]
            if proto == "tcp":
                port = ephemeral_port if check == "ephemeral" else CHECKS[check][1]
                tcp_jobs.append((dst, check, port))
            else:
                pkt_jobs.append((dst, check))
    # packets are (re-)sent from a thread while the TCP connects are in flight
    sent = dict(((d, c), [0, ""]) for d, c in pkt_jobs)
    sender = threading.Thread(target=_send_packets,
                              args=(pkt_jobs, nodes, src_ip, run_id, sent, timeout, resend_interval, min_send_window))
    sender.daemon = True
    sender.start()
    try:
        results = _tcp_probes([(nodes[d], d, c, p) for d, c, p in tcp_jobs], timeout, max_parallel)
    finally:
        sender.join(timeout + min_send_window + 5)
    return {
        "node": src_name,
        "ip": src_ip,
        "results": results + [[d, c, "sent", "%d packet(s)" % sent[(d, c)][0] if not sent[(d, c)][1] else sent[(d, c)][1]]
                              for d, c in pkt_jobs],
        "sent": [[d, c, sent[(d, c)][0]] for d, c in pkt_jobs],
        "seconds": round(time.time() - start, 3),
    }


class _Sender:
    """Packet sockets for UDP 4789 and IP protocol 4 (the latter needs CAP_NET_RAW)."""

    def __init__(self):
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.setblocking(False)
        self.raw = None
        self.raw_error = None
        try:
            self.raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_IPIP)
            self.raw.setblocking(False)
        except (OSError, socket.error) as exc:
            self.raw_error = "cannot open a raw socket for IP protocol 4: %s (needs root/CAP_NET_RAW)" % exc

    def send(self, ip, check, data):
        if check == "vxlan":
            self.udp.sendto(data, (ip, VXLAN_PORT))
        elif self.raw is not None:
            self.raw.sendto(data, (ip, 0))
        else:
            raise OSError(errno.EPERM, self.raw_error)

    def drain_errors(self):
        # ICMP port unreachable from peers without a VXLAN socket surfaces as ECONNREFUSED: ignore.
        for _i in range(1000):
            try:
                self.udp.recv(2048)
            except (OSError, socket.error):
                return

    def close(self):
        self.udp.close()
        if self.raw is not None:
            self.raw.close()


def _send_round(sender, pkt_jobs, nodes, src_ip, run_id, sent):
    for dst, check in pkt_jobs:
        try:
            sender.send(nodes[dst], check, payload(run_id, check, src_ip))
            sent[(dst, check)][0] += 1
        except (OSError, socket.error) as exc:
            if exc.errno not in (errno.ECONNREFUSED, errno.EAGAIN):
                sent[(dst, check)][1] = "send failed: %s" % (os.strerror(exc.errno) if exc.errno else exc)
    sender.drain_errors()


def _send_packets(pkt_jobs, nodes, src_ip, run_id, sent, timeout, interval, min_window):
    if not pkt_jobs:
        return sent
    try:
        sender = _Sender()
    except (OSError, socket.error) as exc:
        for key in sent:
            sent[key][1] = "send failed: %s" % exc
        return sent
    try:
        window = min_window
        end = time.time() + window
        while True:
            _send_round(sender, pkt_jobs, nodes, src_ip, run_id, sent)
            if time.time() + interval > end:
                break
            time.sleep(interval)
    finally:
        sender.close()
    return sent


def _tcp_probes(jobs, timeout, max_parallel):
    """Non-blocking TCP connects, ``max_parallel`` at a time, each bounded by ``timeout``."""
    results = []
    pending = list(jobs)
    active = {}  # fd -> (sock, job, started)
    poller = select.poll()
    while pending or active:
        while pending and len(active) < max_parallel:
            job = pending.pop(0)
            ip, dst, check, port = job
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            rc = s.connect_ex((ip, port))
            if rc in (0, errno.EISCONN):
                results.append([dst, check, "ok", "connected (port %d open)" % port])
                s.close()
            elif rc == errno.ECONNREFUSED:
                results.append([dst, check, "ok", "refused (port %d reached, nothing listening)" % port])
                s.close()
            elif rc in (errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK):
                active[s.fileno()] = (s, job, time.time())
                poller.register(s.fileno(), select.POLLOUT | select.POLLERR | select.POLLHUP)
            else:
                results.append([dst, check, "blocked", _BLOCKED_ERRNOS.get(rc, os.strerror(rc))])
                s.close()
        if not active:
            continue
        oldest = min(v[2] for v in active.values())
        wait_ms = max(0, int((oldest + timeout - time.time()) * 1000)) + 1
        for fd, _ev in poller.poll(min(wait_ms, 100)):
            s, job, _t = active.pop(fd)
            poller.unregister(fd)
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            ip, dst, check, port = job
            if err == 0:
                results.append([dst, check, "ok", "connected (port %d open)" % port])
            elif err == errno.ECONNREFUSED:
                results.append([dst, check, "ok", "refused (port %d reached, nothing listening)" % port])
            else:
                results.append([dst, check, "blocked", _BLOCKED_ERRNOS.get(err, os.strerror(err))])
            s.close()
        now = time.time()
        for fd in [fd for fd, v in active.items() if now - v[2] >= timeout]:
            s, job, _t = active.pop(fd)
            poller.unregister(fd)
            results.append([job[1], job[2], "blocked", "timeout after %gs (dropped silently)" % timeout])
            s.close()
    return results


# ---------------------------------------------------------------------------
# Analysis (controller, pure)
# ---------------------------------------------------------------------------
def build_matrix(nodes, control_planes, probes, listens, typha=False):
    """Combine the per-node reports into ``{(src, dst, check): (status, detail)}``.

    ``probes``: node -> probe() result or None (node did not report);
    ``listens``: node -> collect() result or None.
    Status: ``ok``, ``blocked`` or ``unknown`` (no report from the node that decides).
    """
    matrix = {}
    received = {}
    for name, res in (listens or {}).items():
        if res and not res.get("missing"):
            received[name] = set((src, check) for src, check, _n in res.get("received", []))
    for src in sorted(nodes):
        rep = (probes or {}).get(src)
        by_key = {}
        if rep:
            for dst, check, status, detail in rep.get("results", []):
                by_key[(dst, check)] = (status, detail)
        for dst in sorted(nodes):
            if dst == src:
                continue
            for check in plan_checks(src, dst, control_planes, typha, names=list(nodes)):
                if not rep:
                    matrix[(src, dst, check)] = ("unknown", "%s did not report probe results" % src)
                    continue
                status, detail = by_key.get((dst, check), ("unknown", "not probed"))
                if CHECKS[check][0] in ("udp", "ip"):
                    if status == "sent" and detail.startswith("send failed"):
                        status = "blocked"
                    elif status == "sent":
                        if dst not in received:
                            status, detail = "unknown", "%s's listener did not report" % dst
                        elif (nodes[src], check) in received[dst]:
                            status, detail = "ok", "received by %s" % dst
                        else:
                            status, detail = "blocked", "%s not received by %s" % (detail, dst)
                matrix[(src, dst, check)] = (status, detail)
    return matrix


def unreachable_nodes(nodes, matrix, probes):
    """Nodes no peer reached on any probe and that reached no peer (or never reported)."""
    out = {}
    if len(nodes) < 2:
        return out
    for name in sorted(nodes):
        if not (probes or {}).get(name):
            out[name] = "did not report (Ansible could not run the probe there)"
            continue
        inbound = [v[0] for (s, d, _c), v in matrix.items() if d == name and v[0] != "unknown"]
        outbound = [v[0] for (s, _d, _c), v in matrix.items() if s == name and v[0] != "unknown"]
        if inbound and "ok" not in inbound and "ok" not in outbound:
            out[name] = "no peer reached it on any probe and it reached no peer"
    return out


def same_subnet(subnets, src, dst):
    """Whether two nodes share a subnet; unknown (no entry for either) counts as different."""
    subnets = subnets or {}
    return bool(subnets.get(src)) and subnets.get(src) == subnets.get(dst)


def analyse(nodes, control_planes, probes, listens, calico_encapsulation="IPIP", typha=False,
            sg_id=None, ephemeral_port=DEFAULT_EPHEMERAL_PORT, subnets=None):
    """Return (findings, summary) for the reachability matrix.

    ``subnets``: node -> subnet (id or CIDR). With a CrossSubnet mode, VXLAN / IP-in-IP are needed only
    between nodes of different subnets; one blocked inside a subnet is a warning (not needed today).
    """
    matrix = build_matrix(nodes, control_planes, probes, listens, typha)
    findings = []
    dead = unreachable_nodes(nodes, matrix, probes)
    for name, why in sorted(dead.items()):
        findings.append(finding(
            "NODE_UNREACHABLE",
            "%s (%s) %s" % (name, nodes[name], why),
            "a node that drops everything cannot run pods, answer kubelet/API calls or carry pod traffic; "
            "probes to it timed out after their bound instead of hanging",
            "check that the instance is running and reachable: its security groups (aws ec2 describe-security-groups "
            "--group-ids %s), the subnet's network ACL and the host firewall (iptables -S / nft list ruleset on %s)"
            % (sg_id or cat.SG_PLACEHOLDER, name),
            where=name, node=name, ip=nodes[name], reason=why))
    warn_pairs = {}
    for src in sorted(nodes):
        for dst in sorted(nodes):
            if src == dst or src in dead or dst in dead:
                continue
            blocked = [c for c in CHECK_ORDER if matrix.get((src, dst, c), ("",))[0] == "blocked"]
            if not blocked:
                continue
            where = "%s (%s) -> %s (%s)" % (src, nodes[src], dst, nodes[dst])
            core = [c for c in blocked if c not in ENCAP_CHECKS]
            needed = calico.pair_needs(calico_encapsulation, same_subnet(subnets, src, dst))
            encap = [c for c in blocked if c in ENCAP_CHECKS and c in needed]
            for c in blocked:
                if c in ENCAP_CHECKS and c not in needed:
                    warn_pairs.setdefault(c, []).append("%s->%s" % (src, dst))
            if not core and not encap:
                continue
            shown = core + encap
            findings.append(finding(
                "NODE_PORT_BLOCKED",
                "%s blocked from %s to %s" % (", ".join(label(c, ephemeral_port) for c in shown), src, dst),
                "probes from %s to %s timed out or were rejected on the way; needed by: %s%s"
                % (src, dst, "; ".join("%s: %s" % (label(c, ephemeral_port), CHECKS[c][3]) for c in shown),
                   IPIP_NOTE if "ipip" in encap else ""),
                blocked_fix(core, encap, dst, sg_id), severity=ERROR, where=where,
                blocked=[label(c, ephemeral_port) for c in shown], checks=shown,
                ports=[_port_of(c, ephemeral_port) for c in shown],
                reasons=[matrix[(src, dst, c)][1] for c in shown],
                calico_encapsulation=calico_encapsulation,
                src=src, dst=dst, src_ip=nodes[src], dst_ip=nodes[dst]))
    for check in ENCAP_CHECKS:
        pairs = warn_pairs.get(check)
        if pairs:
            findings.append(finding(
                "NODE_PORT_BLOCKED",
                "%s blocked on %d node pair(s) (%s%s); not needed by Calico encapsulation %s"
                % (label(check), len(pairs), ", ".join(pairs[:6]), ", ..." if len(pairs) > 6 else "", calico_encapsulation),
                "harmless today, but switching the IPPool to a mode that needs it (%s) would break cross-node pod traffic"
                % CHECKS[check][3],
                encap_fix([check], sg_id), severity=WARNING, where="%d pair(s)" % len(pairs),
                pairs=pairs, checks=[check], calico_encapsulation=calico_encapsulation))
    summary = summarize(nodes, matrix, ephemeral_port)
    return findings, summary, matrix


def _port_of(check, ephemeral_port=DEFAULT_EPHEMERAL_PORT):
    """``{"check", "proto", "port"}`` of one check: proto tcp/udp, or "4" (IP-in-IP, port None)."""
    proto, port = CHECKS[check][0], CHECKS[check][1]
    if check == "ephemeral":
        port = ephemeral_port
    if proto == "ip":
        return {"check": check, "proto": str(port), "port": None}
    return {"check": check, "proto": proto, "port": port}


def matrix_rows(nodes, matrix, ephemeral_port=DEFAULT_EPHEMERAL_PORT):
    """The matrix as the evidence list of the contract: [{src, dst, check, proto, port, ok, reason}]."""
    out = []
    for (src, dst, check), (status, detail) in sorted(matrix.items()):
        if status == "unknown":
            continue
        row = _port_of(check, ephemeral_port)
        out.append({"src": src, "dst": dst, "check": check, "proto": row["proto"], "port": row["port"],
                    "ok": status == "ok", "reason": detail})
    return out


def summarize(nodes, matrix, ephemeral_port=DEFAULT_EPHEMERAL_PORT):
    per_check = {}
    for (_s, _d, check), (status, _detail) in matrix.items():
        per_check.setdefault(check, {"ok": 0, "blocked": 0, "unknown": 0})[status] += 1
    n = len(nodes)
    ok = sum(v["ok"] for v in per_check.values())
    parts = []
    for check in CHECK_ORDER:
        if check in per_check:
            v = per_check[check]
            parts.append("%s %d/%d" % (label(check, ephemeral_port), v["ok"], v["ok"] + v["blocked"] + v["unknown"]))
    return {
        "nodes": n,
        "pairs": n * (n - 1),
        "probes": len(matrix),
        "ok": ok,
        "blocked": sum(v["blocked"] for v in per_check.values()),
        "unknown": sum(v["unknown"] for v in per_check.values()),
        "per_check": per_check,
        "text": "%d nodes, %d directed pairs, %d probes, %d passed: %s" % (n, n * (n - 1), len(matrix), ok, ", ".join(parts)),
    }


def matrix_table(nodes, matrix):
    """Compact matrix for the module result: {src: {dst: "ok" | "blocked: a, b" | "unknown: a"}}."""
    out = {}
    for src in sorted(nodes):
        row = {}
        for dst in sorted(nodes):
            if src == dst:
                continue
            bad = dict((s, []) for s in ("blocked", "unknown"))
            for c in CHECK_ORDER:
                st = matrix.get((src, dst, c))
                if st and st[0] in bad:
                    bad[st[0]].append(c)
            text = "; ".join("%s: %s" % (k, ", ".join(v)) for k, v in sorted(bad.items()) if v)
            row[dst] = text or "ok"
        out[src] = row
    return out
