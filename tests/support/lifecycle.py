"""One start/stop/cleanup pattern for every substrate a test runs (registry, token server, API fake,
containerd, moto, labs).

A substrate is a context manager: ``start()`` makes a private work directory (``mkdtemp``, mode 0700,
never a predictable name under /tmp), starts what it runs and waits, bounded, until it answers;
``stop()`` stops every process and server it started and removes the directory, also when ``start()``
failed half-way. Subclasses implement ``_start()`` (and ``_stop()`` for extra cleanup) with the helpers
below::

    class Thing(Substrate):
        prefix = "thing-"

        def _start(self):
            self.port = free_port()
            proc = self.spawn(["thing", "--port", str(self.port)], "thing.log")
            self.wait_until(lambda: port_open(self.port), 20, "thing on port %d" % self.port, proc, "thing.log")
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer


def free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(port, host="127.0.0.1", timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt("SIGTERM")


def stop_on_sigterm():
    """Make SIGTERM (a CI time limit, ``kill``) raise KeyboardInterrupt in the main thread instead of ending
    the process on the spot: the substrates' ``with`` blocks and pytest's fixture finalizers then stop
    what they started (network namespaces, dnsmasq, moto, registries). A handler already set is kept."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


def private_dir(prefix="kec2-"):
    """A fresh directory only its owner can enter (mkdtemp makes it 0700 with a random name)."""
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, 0o700)
    return path


class Substrate:
    """Base of the test substrates: private work directory, processes, HTTP servers, bounded waits."""

    prefix = "substrate-"
    stop_timeout = 5.0

    def __init__(self):
        self.workdir = None
        self._procs = []
        self._servers = []

    # ------------------------------------------------------------------ to override

    def _start(self):
        """Start what the substrate runs; the work directory exists."""

    def _stop(self):
        """Extra cleanup before the processes and servers are stopped."""

    # ------------------------------------------------------------------ lifecycle

    def start(self):
        self.workdir = private_dir(self.prefix)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        try:
            self._stop()
        finally:
            for httpd in reversed(self._servers):
                httpd.shutdown()
                httpd.server_close()
            self._servers = []
            for proc in reversed(self._procs):
                self.kill(proc)
            self._procs = []
            if self.workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
                self.workdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------ helpers

    def path(self, *parts):
        return os.path.join(self.workdir, *parts)

    def spawn(self, cmd, log_name, env=None, group=False, **kwargs):
        """Start a process whose output goes to ``log_name`` in the work directory; stopped by stop().
        With ``group`` it leads its own process group, and stopping it signals the whole group (for
        servers that fork workers)."""
        with open(self.path(log_name), "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=group, **kwargs)
        proc.kec2_group = group
        self._procs.append(proc)
        return proc

    @staticmethod
    def _signal(proc, sig):
        try:
            if getattr(proc, "kec2_group", False):
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        except ProcessLookupError:
            pass

    def kill(self, proc):
        """Terminate one process this substrate started (SIGTERM, then SIGKILL after stop_timeout)."""
        if proc.poll() is None:
            self._signal(proc, signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait(self.stop_timeout)
        if proc in self._procs:
            self._procs.remove(proc)

    def log_tail(self, log_name, size=2000):
        try:
            with open(self.path(log_name), errors="replace") as fh:
                return fh.read()[-size:]
        except (OSError, TypeError):
            return ""

    def wait_until(self, predicate, timeout, what, proc=None, log_name=None, interval=0.05):
        """Poll ``predicate`` until it is true; RuntimeError naming ``what`` (with the log tail) when
        ``timeout`` seconds pass or ``proc`` exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                break
            if predicate():
                return
            time.sleep(interval)
        state = "exited with %s" % proc.returncode if proc is not None and proc.poll() is not None else \
            "not ready after %.0f s" % timeout
        raise RuntimeError("%s %s\n%s" % (what, state, self.log_tail(log_name) if log_name else ""))

    def serve_http(self, handler, host="127.0.0.1", port=0, **attrs):
        """Serve ``handler`` (a BaseHTTPRequestHandler class) from a thread; ``attrs`` become attributes
        of the server the handler reaches as ``self.server``. Shut down by stop()."""
        httpd = ThreadingHTTPServer((host, port), handler)
        httpd.daemon_threads = True
        for key, val in attrs.items():
            setattr(httpd, key, val)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        self._servers.append(httpd)
        return httpd


class SilentServer:
    """Accepts TCP connections on loopback and never sends a byte."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self.stopped:
            try:
                conn, _addr = self.sock.accept()
                self.conns.append(conn)
            except socket.timeout:
                continue
            except OSError:
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped = True
        self.thread.join(2)
        for conn in self.conns:
            conn.close()
        self.sock.close()
