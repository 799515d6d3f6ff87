"""k8s_api_probe's probe() against servers on loopback: one that answers, one that refuses, one that stays silent."""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.action import k8s_api_probe as p

KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: %s
users:
- name: u
  user:
    token: t0ken
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
"""


def kubeconfig(tmp_path, server):
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG % server)
    return str(path)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(401 if self.headers.get("Authorization") != "Bearer t0ken" else 200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_an_answer_of_any_status_is_reachable(tmp_path):
    srv = HTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.handle_request, daemon=True).start()
    try:
        res = p.probe(kubeconfig(tmp_path, "http://127.0.0.1:%d" % srv.server_address[1]), timeout=3)
    finally:
        srv.server_close()
    assert res["reachable"] is True
    assert res["reason"] == "HTTP 200 from http://127.0.0.1:%d" % srv.server_address[1]


def test_refused_is_unreachable_and_says_so(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    res = p.probe(kubeconfig(tmp_path, "http://127.0.0.1:%d" % port), timeout=2)
    assert res["reachable"] is False
    assert res["reason"].startswith("cannot connect to 127.0.0.1:%d: " % port)


def test_silent_server_is_bounded_and_named(tmp_path):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)  # the kernel accepts the connection; nobody ever answers
    port = srv.getsockname()[1]
    start = time.time()
    try:
        res = p.probe(kubeconfig(tmp_path, "http://127.0.0.1:%d" % port), timeout=1.0)
    finally:
        srv.close()
    assert time.time() - start < 2.5
    assert res["reachable"] is False
    assert res["reason"] == "127.0.0.1:%d accepted the connection but sent no answer within 1s" % port


@pytest.mark.parametrize("text,expected", [
    ("{}", "has no context None"),
    ("current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: {}}]\n",
     "cluster 'c' has no server"),
])
def test_bad_kubeconfig_names_the_problem(tmp_path, text, expected):
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    with pytest.raises(ValueError, match=expected):
        p.load(str(path))


def test_an_answering_api_plans_the_reads_on_the_controller():
    # the keys role validate_api's fallback records too (validate_plan.k8s), with the reads left as they are
    k8s = p.controller_reads("https://10.0.0.10:6443", "Kubernetes API https://10.0.0.10:6443 answers the controller")
    assert k8s == {"delegate": "localhost", "kubeconfig": None, "become": False, "usable": True,
                   "server": "https://10.0.0.10:6443", "line": "Kubernetes API https://10.0.0.10:6443 answers the controller",
                   "failure": {}}
