"""The probe pod's script (analysis/paths.py probe_script) run by a real busybox, as in the probe image:
connect to a loopback listener (ok), to a closed loopback port (refused), and a silent listener that
never answers (still ok: the handshake is what counts). Traffic stays on 127.0.0.1."""

import os
import shutil
import socket
import subprocess
import tempfile

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import paths

BUSYBOX = shutil.which("busybox")
pytestmark = pytest.mark.skipif(not BUSYBOX, reason="busybox not installed (scripts/sysdeps.sh installs it)")


@pytest.fixture()
def bin_dir():
    """A private PATH where every tool the script uses is busybox's applet, as in the busybox image."""
    tmp = tempfile.mkdtemp(prefix="kpathprobe-")
    os.chmod(tmp, 0o700)
    for applet in ("sh", "timeout", "nc", "sed", "grep", "head", "echo", "nslookup", "true", "false"):
        os.symlink(BUSYBOX, os.path.join(tmp, applet))
    yield tmp
    shutil.rmtree(tmp, ignore_errors=True)


def run(bin_dir, host, port, protocol="TCP"):
    msg = os.path.join(bin_dir, "termination-log")
    script = paths.probe_script(host, port, protocol, timeout=2, resolve=False, message=msg)
    proc = subprocess.run([os.path.join(bin_dir, "sh"), "-c", script], env={"PATH": bin_dir}, timeout=30,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    with open(msg) as fh:
        return proc.returncode, paths.parse_probe_message(fh.read())


def test_connect_ok_to_a_silent_listener(bin_dir):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    try:
        rc, res = run(bin_dir, "127.0.0.1", srv.getsockname()[1])
    finally:
        srv.close()
    assert res == {"dns": {"status": "skipped", "answer": ""}, "connect": {"status": "ok"}}
    assert rc == 0


def test_connect_refused_on_a_closed_port(bin_dir):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    rc, res = run(bin_dir, "127.0.0.1", port)
    assert res["connect"] == {"status": "refused"}
    assert rc != 0


def test_udp_is_only_sent(bin_dir):
    rc, res = run(bin_dir, "127.0.0.1", 9, "UDP")
    assert res["connect"] == {"status": "sent"} and rc == 0
