"""probes/net.py on loopback: packet format, TCP verdicts, and one node's bounded listen+probe run."""

import socket
import struct
import time

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes import net


def _ipv4(proto, src, dst, body):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, proto, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    return bytearray(hdr + body)


def _udp(dport, data):
    return struct.pack("!HHHH", 40000, dport, 8 + len(data), 0) + data


@pytest.mark.parametrize("packet,expected", [
    (_ipv4(17, "10.0.1.21", "10.0.1.11", _udp(4789, net.payload("run1", "vxlan", "10.0.1.21"))), ("probe", "10.0.1.21", "vxlan")),
    (_ipv4(4, "10.0.1.22", "10.0.1.11", net.payload("run1", "ipip", "10.0.1.22")), ("probe", "10.0.1.22", "ipip")),
    (_ipv4(17, "10.0.1.21", "10.0.1.11", _udp(4789, net.payload("run2", "vxlan", "10.0.1.21"))), None),  # other run
    (_ipv4(17, "10.0.1.21", "10.0.1.11", _udp(53, net.payload("run1", "vxlan", "10.0.1.21"))), None),  # other port
    (_ipv4(4, "10.0.1.22", "10.0.1.11", net.payload("run1", "vxlan", "10.0.1.22")), None),  # check mismatch
    (_ipv4(4, "10.0.1.22", "10.0.1.11", b"\x45\x00real inner packet"), None),  # real IPIP traffic
    (_ipv4(6, "10.0.1.22", "10.0.1.11", b"x" * 40), None),
    (bytearray(b"\x60" + b"\x00" * 40), None),  # IPv6
    (bytearray(b"\x45\x00"), None),  # truncated
    (_ipv4(17, "10.0.1.21", "10.0.1.11", _udp(4789, net.payload("run1", "ipip", "10.0.1.21", kind=b"ack"))),
     ("ack", "10.0.1.21", "ipip")),  # an acknowledgement travels back on UDP 4789 for either check
    (_ipv4(17, "10.0.1.21", "10.0.1.11", _udp(4789, net.payload("run1", "bgp", "10.0.1.21", kind=b"ack"))), None),
])
def test_parse_packet(packet, expected):
    assert net.parse_packet(packet, "run1") == expected


def test_tcp_probes_on_loopback_refused_and_open():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    open_port = srv.getsockname()[1]
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    try:
        res = net.tcp_probes([("127.0.0.1", "lo", "a", open_port), ("127.0.0.1", "lo", "b", closed_port)], 1.0, 10)
    finally:
        srv.close()
    got = dict((c, (s, d)) for _dst, c, s, d in res)
    assert got["a"] == ("ok", "connected (port %d open)" % open_port)
    assert got["b"] == ("ok", "refused (port %d reached, nothing listening)" % closed_port)


def test_run_without_raw_sockets_is_bounded_and_says_why():
    # unprivileged or not: pass no listener sockets and peers that refuse (loopback, closed ports)
    nodes = {"a": "127.0.0.1", "b": "127.0.0.2"}
    start = time.time()
    res = net.run_probes("a", nodes, [], "run1", timeout=1.0, ephemeral_port=1, window=0.5, grace=0.2, socks=[])
    assert time.time() - start < 3.0
    assert res["node"] == "a" and res["ip"] == "127.0.0.1"
    tcp = dict((c, s) for d, c, s, _detail in res["results"] if c in ("kubelet", "bgp", "ephemeral"))
    assert tcp == {"kubelet": "ok", "bgp": "ok", "ephemeral": "ok"}  # refused = the path is open
    assert res["received"] == []


def test_plan_expects_the_packets_peers_send():
    nodes = {"cp1": "10.0.1.11", "w1": "10.0.1.21", "w2": "10.0.1.22"}
    tcp, pkt, expected = net.plan("w1", nodes, ["cp1"])
    assert ("10.0.1.11", "cp1", "apiserver", 6443) in tcp
    assert sorted(pkt) == [("cp1", "vxlan"), ("w2", "ipip"), ("w2", "vxlan")]
    assert expected == {("10.0.1.11", "vxlan"), ("10.0.1.11", "ipip"), ("10.0.1.22", "vxlan")}
