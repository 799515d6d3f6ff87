# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node-to-node probes: the socket side of node_reachability (runs on a node, stdlib only).

``run_probes()`` does everything one node contributes to the matrix, in one call:

1. open the listeners first: raw sockets for UDP and IP protocol 4 get a copy of every packet that
   passed the netfilter INPUT hook (even when a VXLAN device or tunl0 owns the traffic);
2. TCP connects to every planned peer port, all at once, each bounded by ``timeout``: a RST
   (refused) proves the security group let the SYN through, a timeout means it was dropped, so TCP
   needs no listener on the peer;
3. UDP 4789 and IP-in-IP packets carrying a magic payload with the run id, re-sent every
   ``interval`` seconds through a bounded ``window`` so that peers whose listener opens a little
   later still overlap. A peer that receives one answers with a small acknowledgement (UDP 4789
   back), after which the sender stops re-sending that probe;
4. keep listening until every packet this node expects from its peers arrived and its own probes
   were acknowledged, or ``window + grace`` passed;
5. a peer that started late is still measured: once a probe from a peer is heard (its listener is
   open), this node keeps re-sending its unacknowledged probes to that peer and keeps listening for
   ``HEARD_EXTENSION`` intervals plus ``grace`` after that, never past ``2 * window + grace``.
   Nothing heard (a security group that drops everything) extends nothing.

The result records what was sent and received and the wall-clock intervals of listening and
sending (per probe: first and last send), so the controller can tell "dropped" from "the peer was
not listening at that time" (analysis/reachability.py counts the packets sent while the peer
listened). The listening interval ends BEFORE the last read of the sockets, so a packet sent before
its end was read.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import select
import socket
import struct
import threading
import time

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.node_plan import (
    CHECKS,
    IPPROTO_IPIP,
    VXLAN_PORT,
    plan_checks,
)

MAGIC = b"KEC2REACH1"
ACK = b"ack"

_BLOCKED_ERRNOS = {
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.EPERM: "dropped locally (EPERM)",
    errno.EACCES: "dropped locally (EACCES)",
    errno.ETIMEDOUT: "timeout",
}


# After hearing a peer, re-send to it and keep listening this many intervals more (>= 3 packets
# land while both listen, enough for the controller to call a silence a drop).
HEARD_EXTENSION = 5


def payload(run_id, check, src_ip, kind=b"probe"):
    return b" ".join([MAGIC, run_id.encode("ascii", "replace"), kind, check.encode("ascii"), src_ip.encode("ascii")])


def parse_packet(data, run_id):
    """Parse a raw IPv4 packet (header included).

    Returns ``(kind, src_ip, check)`` for this run's probes (kind ``probe``) and acknowledgements
    (kind ``ack``), else None.
    """
    data = bytearray(data)
    if len(data) < 20 or data[0] >> 4 != 4:
        return None
    ihl = (data[0] & 0x0F) * 4
    proto = data[9]
    src = socket.inet_ntoa(bytes(data[12:16]))
    if proto == 17:
        if len(data) < ihl + 8:
            return None
        dport = struct.unpack("!H", bytes(data[ihl + 2:ihl + 4]))[0]
        if dport != VXLAN_PORT:
            return None
        body = bytes(data[ihl + 8:])
        carrier = "vxlan"
    elif proto == IPPROTO_IPIP:
        body = bytes(data[ihl:])
        carrier = "ipip"
    else:
        return None
    parts = body.split(b" ")
    if len(parts) < 5 or parts[0] != MAGIC or parts[1] != run_id.encode("ascii", "replace"):
        return None
    kind, check = parts[2].decode("ascii", "replace"), parts[3].decode("ascii", "replace")
    if kind == "probe" and check != carrier:
        return None
    if kind not in ("probe", "ack") or check not in ("vxlan", "ipip"):
        return None
    return kind, src, check


def open_listeners():
    """Raw sockets for UDP and IP protocol 4. Raises OSError (EPERM without CAP_NET_RAW)."""
    socks = []
    try:
        for proto in (socket.IPPROTO_UDP, IPPROTO_IPIP):
            sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            except (OSError, socket.error):
                pass
            socks.append(sock)
    except Exception:
        for sock in socks:
            sock.close()
        raise
    return socks


class _Sender(object):
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

    def send(self, ip, carrier, data):
        if carrier == "vxlan":
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


def tcp_probes(jobs, timeout, max_parallel=512):
    """Non-blocking TCP connects ``(ip, dst, check, port)``, ``max_parallel`` at a time, each bounded by ``timeout``.

    Returns ``[[dst, check, "ok"|"blocked", detail], ...]``.
    """
    results = []
    pending = list(jobs)
    active = {}  # fd -> (sock, job, started)
    poller = select.poll()
    while pending or active:
        while pending and len(active) < max_parallel:
            job = pending.pop(0)
            ip, dst, check, port = job
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            rc = sock.connect_ex((ip, port))
            if rc in (errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK):
                active[sock.fileno()] = (sock, job, time.time())
                poller.register(sock.fileno(), select.POLLOUT | select.POLLERR | select.POLLHUP)
            else:
                results.append([dst, check] + _tcp_verdict(rc, port))
                sock.close()
        if not active:
            continue
        oldest = min(v[2] for v in active.values())
        wait_ms = max(0, int((oldest + timeout - time.time()) * 1000)) + 1
        for fd, _ev in poller.poll(min(wait_ms, 100)):
            sock, job, _t = active.pop(fd)
            poller.unregister(fd)
            results.append([job[1], job[2]] + _tcp_verdict(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), job[3]))
            sock.close()
        now = time.time()
        for fd in [fd for fd, v in active.items() if now - v[2] >= timeout]:
            sock, job, _t = active.pop(fd)
            poller.unregister(fd)
            results.append([job[1], job[2], "blocked", "timeout after %gs (dropped silently)" % timeout])
            sock.close()
    return results


def _tcp_verdict(err, port):
    if err in (0, errno.EISCONN):
        return ["ok", "connected (port %d open)" % port]
    if err == errno.ECONNREFUSED:
        return ["ok", "refused (port %d reached, nothing listening)" % port]
    return ["blocked", _BLOCKED_ERRNOS.get(err, os.strerror(err))]


def plan(src_name, nodes, control_planes, typha=False, ephemeral_port=None):
    """(tcp jobs, packet jobs, expected inbound packets) of node ``src_name``."""
    names = list(nodes)
    tcp_jobs, pkt_jobs, expected = [], [], set()
    for dst in sorted(nodes):
        if dst == src_name:
            continue
        for check in plan_checks(src_name, dst, control_planes, typha, names=names):
            proto = CHECKS[check][0]
            if proto == "tcp":
                port = ephemeral_port if (check == "ephemeral" and ephemeral_port) else CHECKS[check][1]
                tcp_jobs.append((nodes[dst], dst, check, port))
            else:
                pkt_jobs.append((dst, check))
        for check in plan_checks(dst, src_name, control_planes, typha, names=names):
            if CHECKS[check][0] != "tcp":
                expected.add((nodes[dst], check))
    return tcp_jobs, pkt_jobs, expected


def run_probes(src_name, nodes, control_planes, run_id, timeout=2.0, ephemeral_port=None, typha=False,
               window=3.0, interval=0.2, grace=1.0, max_parallel=512, socks=None):
    """Listen, probe every peer and collect, all bounded by ``max(timeout, 2 * window + grace)`` plus a little.

    Returns ``{"node", "ip", "results": [[dst, check, status, detail]],
    "sent": [[dst, check, n, acked, first, last]] (first/last send of that probe, epoch seconds or None),
    "received": [[src_ip, check, n]], "listen": [opened, closed], "send": [first, last] (epoch seconds),
    "listener_error", "seconds"}``. Packet checks have status ``sent``: the peer's ``received`` decides.
    """
    start = time.time()
    src_ip = nodes[src_name]
    tcp_jobs, pkt_jobs, expected = plan(src_name, nodes, control_planes, typha, ephemeral_port)
    listener_error = ""
    if socks is None:
        try:
            socks = open_listeners()
        except (OSError, socket.error) as exc:
            hint = " (raw sockets need root/CAP_NET_RAW: use become)" if exc.errno in (errno.EPERM, errno.EACCES) else ""
            listener_error = "cannot open raw sockets: %s%s" % (exc, hint)
            socks = []
    opened = time.time()
    tcp_results = []
    tcp_thread = threading.Thread(target=lambda: tcp_results.extend(tcp_probes(tcp_jobs, timeout, max_parallel)))
    tcp_thread.daemon = True
    tcp_thread.start()
    sent = dict(((d, c), [0, False, "", None, None]) for d, c in pkt_jobs)  # count, acked, error, first, last
    by_ip = dict((ip, name) for name, ip in nodes.items())
    received = {}
    heard = {}  # peer IP -> when its first probe arrived (its listener was open by then)
    sender = None
    sender_error = ""
    try:
        sender = _Sender()
    except (OSError, socket.error) as exc:
        sender_error = "send failed: %s" % exc
    first_send = last_send = None
    send_end = start + window
    cap = start + 2 * window + grace
    extension = HEARD_EXTENSION * interval
    next_send = time.time()
    closed = None
    try:
        while True:
            now = time.time()
            # a probe is re-sent through the window, and after it while its peer was heard lately
            unacked = [k for k, v in sent.items() if not v[1] and not v[2]
                       and (now < send_end or now < min(cap, heard.get(nodes[k[0]], 0) + extension))]
            if sender is not None and unacked and now >= next_send:
                for key in unacked:
                    try:
                        sender.send(nodes[key[0]], key[1], payload(run_id, key[1], src_ip))
                        job = sent[key]
                        job[0] += 1
                        job[3] = job[3] or now
                        job[4] = time.time()
                    except (OSError, socket.error) as exc:
                        if exc.errno not in (errno.ECONNREFUSED, errno.EAGAIN):
                            sent[key][2] = "send failed: %s" % (os.strerror(exc.errno) if exc.errno else exc)
                sender.drain_errors()
                first_send = first_send or now
                last_send = time.time()
                next_send = now + interval
            listen_end = min(cap, max([start + window + grace] + [t + extension + grace for t in heard.values()]))
            inbound_done = not socks or expected <= set(received)
            tcp_done = not tcp_thread.is_alive()
            # without a sender nothing is re-sent, so nothing waits for the send window (as before the extension)
            sends_done = sender is None or not unacked
            if tcp_done and sends_done and (inbound_done or now >= listen_end):
                break
            wait = 0.05 if not socks else max(0.0, min(0.1, next_send - now if unacked else 0.1))
            readable = select.select(socks, [], [], wait)[0] if socks else (time.sleep(wait) or [])
            for sock in readable:
                _read(sock, run_id, received, sent, by_ip, sender, src_ip, heard)
        # the listening interval ends here, before the last read: whatever was sent before this
        # moment is in the socket buffers and still counts (a busy machine runs this loop late)
        closed = time.time()
        for sock in select.select(socks, [], [], 0)[0] if socks else []:
            _read(sock, run_id, received, sent, by_ip, sender, src_ip, heard)
    finally:
        closed = closed or time.time()
        for sock in socks:
            sock.close()
        if sender is not None:
            sender.close()
        tcp_thread.join(timeout + 5)
    results = list(tcp_results)
    for dst, check in pkt_jobs:
        count, acked, err = sent[(dst, check)][:3]
        err = err or sender_error
        results.append([dst, check, "sent", err or "%d packet(s)%s" % (count, ", acknowledged" if acked else "")])
    return {
        "node": src_name,
        "ip": src_ip,
        "results": results,
        "sent": [[d, c, sent[(d, c)][0], sent[(d, c)][1],
                  round(sent[(d, c)][3], 3) if sent[(d, c)][3] else None,
                  round(sent[(d, c)][4], 3) if sent[(d, c)][4] else None] for d, c in pkt_jobs],
        "received": [[ip, check, n] for (ip, check), n in sorted(received.items())],
        "listen": [round(opened, 3), round(closed, 3)] if socks or not listener_error else [],
        "send": [round(first_send, 3), round(last_send, 3)] if first_send else [],
        "listener_error": listener_error,
        "seconds": round(time.time() - start, 3),
    }


def _read(sock, run_id, received, sent, by_ip, sender, src_ip, heard=None):
    while True:
        try:
            data = sock.recv(65535)
        except (OSError, socket.error) as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                return
            raise
        hit = parse_packet(data, run_id)
        if not hit:
            continue
        kind, peer_ip, check = hit
        if kind == "probe":
            received[(peer_ip, check)] = received.get((peer_ip, check), 0) + 1
            if heard is not None and peer_ip not in heard:
                heard[peer_ip] = time.time()
            if sender is not None:
                try:
                    sender.send(peer_ip, "vxlan", payload(run_id, check, src_ip, kind=ACK))
                except (OSError, socket.error):
                    pass
        else:
            peer = by_ip.get(peer_ip)
            if (peer, check) in sent:
                sent[(peer, check)][1] = True
