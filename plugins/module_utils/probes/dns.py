# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The DNS host path: A queries from a node to the DNS service IP and to each CoreDNS endpoint.

Every query runs in parallel, each bounded by its timeout. Also reads the resolv.conf kubelet hands
to pods (the ``resolvConf`` of the kubelet configuration, else /etc/resolv.conf).

The queries are plain DNS over UDP (RFC 1035, recursion desired, no EDNS), retried over TCP when the
answer is truncated, written with the standard library only: a node needs no DNS library, and the
node task does not pay its import (a quarter of a second of CPU per node).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import concurrent.futures
import os
import random
import socket
import struct
import time

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import resolv as dnscheck

TYPE_A = 1
TYPE_CNAME = 5
CLASS_IN = 1
FLAG_QR = 0x8000
FLAG_TC = 0x0200
FLAG_RD = 0x0100
# RFC 1035 / RFC 2136 response codes, as the check reports them
RCODES = {0: "noerror", 1: "formerr", 2: "servfail", 3: "nxdomain", 4: "notimp", 5: "refused",
          6: "yxdomain", 7: "yxrrset", 8: "nxrrset", 9: "notauth", 10: "notzone"}


class DNSWireError(Exception):
    """A DNS message that cannot be built or parsed."""


def encode_name(name):
    """The wire form of a domain name, taken as absolute (no search list)."""
    out = b""
    for label in name.rstrip(".").split(".") if name.rstrip(".") else []:
        if not label:
            raise DNSWireError("empty label in %r" % name)
        try:
            raw = label.encode("ascii")
        except UnicodeError:
            raw = label.encode("idna")
        if len(raw) > 63:
            raise DNSWireError("label longer than 63 octets in %r" % name)
        out += struct.pack("!B", len(raw)) + raw
    if len(out) + 1 > 255:
        raise DNSWireError("name longer than 255 octets: %r" % name)
    return out + b"\x00"


def make_query(name, qid, qtype=TYPE_A):
    """A query message: header (id, RD) and one question of ``qtype`` in class IN."""
    return struct.pack("!HHHHHH", qid, FLAG_RD, 1, 0, 0, 0) + encode_name(name) + struct.pack("!HH", qtype, CLASS_IN)


def _skip_name(msg, pos):
    """The offset after the (possibly compressed) name at ``pos``."""
    while True:
        if pos >= len(msg):
            raise DNSWireError("name runs past the end of the message")
        length = msg[pos]
        if length & 0xC0 == 0xC0:
            return pos + 2
        if length & 0xC0:
            raise DNSWireError("unknown label type 0x%02x" % length)
        if length == 0:
            return pos + 1
        pos += 1 + length


def parse_response(msg):
    """(id, flags, rcode, [A addresses of the answer section]) of a response message."""
    if len(msg) < 12:
        raise DNSWireError("message shorter than its header (%d octets)" % len(msg))
    qid, flags, qdcount, ancount = struct.unpack("!HHHH", msg[:8])
    pos = 12
    for _question in range(qdcount):
        pos = _skip_name(msg, pos) + 4
    answers = []
    for _record in range(ancount):
        pos = _skip_name(msg, pos)
        if pos + 10 > len(msg):
            raise DNSWireError("record header runs past the end of the message")
        rtype, rclass, _ttl, rdlength = struct.unpack("!HHIH", msg[pos:pos + 10])
        pos += 10
        rdata = msg[pos:pos + rdlength]
        if len(rdata) != rdlength:
            raise DNSWireError("record data runs past the end of the message")
        pos += rdlength
        if rtype == TYPE_A and rclass == CLASS_IN and rdlength == 4:
            answers.append(socket.inet_ntoa(rdata))
    return qid, flags, flags & 0x000F, answers


def _family(server):
    return socket.AF_INET6 if ":" in server else socket.AF_INET


def _udp(query, qid, server, port, deadline):
    """The response to ``query`` over UDP; raises socket.timeout at the deadline. A datagram from
    another address or with another id is not the answer and is ignored."""
    sock = socket.socket(_family(server), socket.SOCK_DGRAM)
    try:
        sock.sendto(query, (server, port))
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out")
            sock.settimeout(left)
            data, peer = sock.recvfrom(65535)
            if peer[0] != server or peer[1] != port or len(data) < 12:
                continue
            rid, flags = struct.unpack("!HH", data[:4])
            if rid == qid and flags & FLAG_QR:
                return data
    finally:
        sock.close()


def _recv_exact(sock, size, deadline):
    data = b""
    while len(data) < size:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        sock.settimeout(left)
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise DNSWireError("the server closed the TCP connection mid-answer")
        data += chunk
    return data


def _tcp(query, server, port, deadline):
    """The response to ``query`` over TCP (two-octet length prefix, RFC 1035 4.2.2)."""
    sock = socket.socket(_family(server), socket.SOCK_STREAM)
    try:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        sock.connect((server, port))
        sock.sendall(struct.pack("!H", len(query)) + query)
        (length,) = struct.unpack("!H", _recv_exact(sock, 2, deadline))
        return _recv_exact(sock, length, deadline)
    finally:
        sock.close()


def dns_query(server, name, timeout, port=53):
    """One A query; returns (status, answers, error)."""
    qid = random.SystemRandom().randint(0, 0xFFFF)
    try:
        query = make_query(name, qid)
    except DNSWireError as exc:
        return "error", [], "DNSWireError: %s" % exc
    deadline = time.monotonic() + timeout
    try:
        msg = _udp(query, qid, server, port, deadline)
        if struct.unpack("!H", msg[2:4])[0] & FLAG_TC:  # _udp checked the header is there
            # truncated: the same question over TCP, with a time bound of its own (as a second query)
            msg = _tcp(query, server, port, time.monotonic() + timeout)
        _rid, _flags, rcode, answers = parse_response(msg)
    except socket.timeout:
        return "timeout", [], "no answer within %.1fs" % timeout
    except ConnectionRefusedError as exc:
        return "refused", [], str(exc)
    except (OSError, DNSWireError) as exc:
        return "error", [], "%s: %s" % (type(exc).__name__, exc)
    if rcode == 3:
        return "nxdomain", [], ""
    if rcode != 0:
        return RCODES.get(rcode, "rcode%d" % rcode), [], ""
    return ("ok" if answers else "nodata"), answers, ""


def read_resolv_conf(resolv_conf=None, kubelet_config="/var/lib/kubelet/config.yaml"):
    path = resolv_conf
    if not path:
        path = "/etc/resolv.conf"
        try:
            with open(kubelet_config) as fh:
                path = dnscheck.parse_kubelet_resolv_conf(fh.read()) or path
        except (IOError, OSError):
            pass
    try:
        with open(path) as fh:
            return {"path": path, "nameservers": dnscheck.parse_resolv_conf(fh.read())}
    except (IOError, OSError) as exc:
        return {"path": path, "nameservers": [], "error": str(exc)}


def host_path(plan, service_ip, endpoints, timeout, port=53, node_name="", node_ip="", resolv_conf=None,
              kubelet_config="/var/lib/kubelet/config.yaml"):
    """Query the service IP for every planned name and each endpoint for the cluster and external names.

    ``plan``: ``[(name, kind)]`` from analysis.dns.query_plan(); ``endpoints``: ``[{ip, node}]``.
    Returns the node result the DNS analysis reads (node, node_ip, service_ip, resolv_conf, queries, elapsed).
    """
    started = time.monotonic()
    jobs = [dict(target="service", server=service_ip, endpoint_node="", name=name, kind=kind) for name, kind in plan]
    for ep in endpoints:
        for name, kind in plan:
            if kind in ("cluster", "external"):
                jobs.append(dict(target="endpoint", server=ep["ip"], endpoint_node=ep.get("node") or "",
                                 name=name, kind=kind))

    def one(job):
        start = time.monotonic()
        status, answers, err = dns_query(job["server"], job["name"], timeout, port)
        return dict(job, status=status, answers=answers, error=err, ms=round((time.monotonic() - start) * 1000.0, 1))

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(32, max(1, len(jobs)))) as pool:
        queries = list(pool.map(one, jobs))
    return {
        "node": node_name or os.uname()[1],
        "node_ip": node_ip,
        "service_ip": service_ip,
        "resolv_conf": read_resolv_conf(resolv_conf, kubelet_config),
        "queries": queries,
        "elapsed": round(time.monotonic() - started, 3),
    }
