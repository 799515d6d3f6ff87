"""A killed test or bench run (SIGTERM) stops the substrates it started (tests/support/lifecycle.py)."""

import os
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

# a substrate running `sleep`, inside `with`, in a process that imports tests.conftest as the bench scripts do
HOLDER = """
import sys, time
sys.path.insert(0, %r)
import tests.conftest  # noqa
from tests.support.lifecycle import Substrate

class Sleeper(Substrate):
    prefix = "kec2-sigterm-"

    def _start(self):
        self.proc = self.spawn(["sleep", "600"], "sleep.log")

with Sleeper() as s:
    print(s.workdir, s.proc.pid, flush=True)
    time.sleep(600)
"""


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purpose
    with open("/proc/%d/stat" % pid) as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] != "Z"


def _run_and_term(code, expect_gone=True):
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workdir, pid = proc.stdout.readline().split()
    assert os.path.isdir(workdir) and _alive(int(pid))
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)
    deadline = time.monotonic() + 5
    while expect_gone and _alive(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc, workdir, int(pid)


def test_sigterm_stops_what_the_run_started():
    proc, workdir, pid = _run_and_term(HOLDER % ROOT)
    assert proc.returncode != 0
    assert not os.path.exists(workdir)
    assert not _alive(pid)


def test_without_the_handler_a_killed_run_leaves_its_substrate_behind():
    """The same holder with SIGTERM's default action: the process ends on the spot and nothing is stopped
    (what the handler is for)."""
    code = (HOLDER % ROOT).replace("import tests.conftest  # noqa",
                                   "import tests.conftest  # noqa\nimport signal; signal.signal(signal.SIGTERM, signal.SIG_DFL)")
    proc, workdir, pid = _run_and_term(code, expect_gone=False)
    try:
        assert proc.returncode == -signal.SIGTERM
        assert os.path.isdir(workdir) and _alive(pid)
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(workdir, ignore_errors=True)
