"""The node task's own DNS client (probes/dns.py): the query it sends, the answers it reads, and each
status against a small DNS server on loopback (UDP, and TCP after a truncated answer)."""

import socket
import struct
import threading

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes import dns as wire


def _question(query):
    """(id, name, qtype) of a query message."""
    qid = struct.unpack("!H", query[:2])[0]
    pos, labels = 12, []
    while query[pos]:
        labels.append(query[pos + 1:pos + 1 + query[pos]].decode())
        pos += 1 + query[pos]
    qtype = struct.unpack("!H", query[pos + 1:pos + 3])[0]
    return qid, ".".join(labels), qtype, query[12:pos + 5]


def _answer(query, rcode=0, addresses=(), cname=None, tc=False, qid=None):
    """A response to ``query``: answers compressed against the question name (pointer 0xc00c)."""
    rid, _name, _qtype, question = _question(query)
    records = b""
    owner = b"\xc0\x0c"
    if cname:
        target = wire.encode_name(cname)
        records += owner + struct.pack("!HHIH", wire.TYPE_CNAME, wire.CLASS_IN, 30, len(target)) + target
        owner = target
    for addr in addresses:
        records += owner + struct.pack("!HHIH", wire.TYPE_A, wire.CLASS_IN, 30, 4) + socket.inet_aton(addr)
    flags = wire.FLAG_QR | wire.FLAG_RD | 0x0080 | rcode | (wire.FLAG_TC if tc else 0)
    count = len(addresses) + (1 if cname else 0)
    return struct.pack("!HHHHHH", rid if qid is None else qid, flags, 1, count, 0, 0) + question + records


class Server:
    """A DNS server on 127.0.0.1 answering with ``udp(query)`` (None: no answer) and ``tcp(query)``."""

    def __init__(self, udp, tcp=None):
        self.udp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp_sock.bind(("127.0.0.1", 0))
        self.port = self.udp_sock.getsockname()[1]
        self.tcp_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp_sock.bind(("127.0.0.1", self.port))
        self.tcp_sock.listen(4)
        self.udp, self.tcp, self.queries = udp, tcp, []
        for target in (self._serve_udp, self._serve_tcp):
            threading.Thread(target=target, daemon=True).start()

    def _serve_udp(self):
        while True:
            try:
                data, peer = self.udp_sock.recvfrom(4096)
            except OSError:
                return
            self.queries.append(("udp", data))
            for out in self.udp(data) or []:
                try:
                    self.udp_sock.sendto(out, peer)
                except OSError:  # closed by the test meanwhile
                    return

    def _serve_tcp(self):
        while True:
            try:
                conn, _peer = self.tcp_sock.accept()
            except OSError:
                return
            with conn:
                length = struct.unpack("!H", conn.recv(2))[0]
                data = conn.recv(length)
                self.queries.append(("tcp", data))
                out = self.tcp(data)
                conn.sendall(struct.pack("!H", len(out)) + out)

    def close(self):
        self.udp_sock.close()
        self.tcp_sock.close()


def test_the_query_is_one_a_question_with_recursion_desired():
    msg = wire.make_query("kubernetes.default.svc.cluster.local", 0x1234)
    qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", msg[:12])
    assert (qid, flags, qd, an, ns, ar) == (0x1234, wire.FLAG_RD, 1, 0, 0, 0)
    assert _question(msg)[1:3] == ("kubernetes.default.svc.cluster.local", wire.TYPE_A)
    # the name is absolute whether or not it ends in a dot; a bad name is refused before sending
    assert wire.make_query("example.com.", 1) == wire.make_query("example.com", 1)
    for bad in ("a..b", "x" * 64 + ".com"):
        try:
            wire.make_query(bad, 1)
        except wire.DNSWireError:
            continue
        raise AssertionError("accepted %r" % bad)


def test_answers_are_the_a_records_behind_compressed_names_and_cnames():
    query = wire.make_query("www.example.test", 7)
    qid, flags, rcode, answers = wire.parse_response(
        _answer(query, addresses=["10.0.0.5", "10.0.0.6"], cname="edge.example.test"))
    assert (qid, rcode, answers) == (7, 0, ["10.0.0.5", "10.0.0.6"])
    assert flags & wire.FLAG_QR
    # a message cut short is an error, not an empty answer
    try:
        wire.parse_response(_answer(query, addresses=["10.0.0.5"])[:-2])
    except wire.DNSWireError:
        pass
    else:
        raise AssertionError("a truncated record was accepted")


def test_each_status_against_a_server_on_loopback():
    def udp(query):
        name = _question(query)[1]
        if name == "silent.test":
            return None
        if name == "big.test":
            return [_answer(query, tc=True)]
        if name == "other-id.test":  # a stray answer first (wrong id), then the real one
            return [_answer(query, addresses=["10.9.9.9"], qid=(_question(query)[0] + 1) & 0xFFFF),
                    _answer(query, addresses=["10.0.0.7"])]
        return [{"ok.test": _answer(query, addresses=["10.0.0.1"]),
                 "empty.test": _answer(query),
                 "missing.test": _answer(query, rcode=3),
                 "broken.test": _answer(query, rcode=2)}[name]]

    server = Server(udp, tcp=lambda q: _answer(q, addresses=["10.0.0.%d" % i for i in range(1, 40)]))
    try:
        def ask(name, timeout=1.0):
            return wire.dns_query("127.0.0.1", name, timeout, port=server.port)

        assert ask("ok.test") == ("ok", ["10.0.0.1"], "")
        assert ask("empty.test") == ("nodata", [], "")
        assert ask("missing.test") == ("nxdomain", [], "")
        assert ask("broken.test") == ("servfail", [], "")
        assert ask("other-id.test") == ("ok", ["10.0.0.7"], "")
        status, answers, _err = ask("big.test")
        assert status == "ok" and len(answers) == 39
        assert [kind for kind, q in server.queries if _question(q)[1] == "big.test"] == ["udp", "tcp"]
        status, answers, err = ask("silent.test", timeout=0.3)
        assert (status, answers) == ("timeout", []) and "0.3s" in err
    finally:
        server.close()
    # nothing listens any more: no answer within the bound
    assert wire.dns_query("127.0.0.1", "ok.test", 0.3, port=server.port)[0] == "timeout"
