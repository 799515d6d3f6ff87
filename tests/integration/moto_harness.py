"""Start and stop moto's EC2 emulator (``moto_server``) on a free 127.0.0.1 port.

Reusable by any test, benchmark or the demo::

    from tests.integration.moto_harness import MotoServer

    with MotoServer() as moto:              # starts moto_server, waits until it answers
        moto.endpoint_url                   # "http://127.0.0.1:<port>"
        moto.env()                          # env vars for ansible-playbook / boto3 (fake creds, region)
        moto.extra_vars()                   # {"kubeadm_ec2_endpoint_url": ..., "kubeadm_ec2_region": ...}
        moto.client("ec2")                  # a boto3 client pointed at the server
        moto.reset()                        # forget every resource (POST /moto-api/reset)
        with moto.recording() as rec:       # count the API calls made inside the block
            ...
        rec.actions                         # collections.Counter {"DescribeInstances": 12, ...}
        rec.total                           # int

    from tests.integration.moto_harness import run_playbook
    result = run_playbook("playbooks/provision.yml", moto, extra_vars={...}, check=False)
    result.returncode, result.changed(), result.changed_tasks(), result.failed_messages()

How the amazon.aws modules reach moto: every playbook of this collection passes
``endpoint_url: "{{ kubeadm_ec2_endpoint_url | default(omit, true) }}"`` and
``region: "{{ kubeadm_ec2_region }}"`` through ``module_defaults`` (``group/amazon.aws.aws``), so
pass ``-e kubeadm_ec2_endpoint_url=<endpoint>`` (see :meth:`MotoServer.extra_vars`).
``env(with_endpoint=True)`` also exports ``AWS_ENDPOINT_URL`` which botocore honours by itself:
use that for things that cannot take a variable (the ``amazon.aws.aws_ec2`` inventory plugin,
plain boto3 scripts).

Traffic stays on 127.0.0.1. The server process is always stopped on exit (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import base64
import collections
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

DEFAULT_REGION = "us-east-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _moto_server_command() -> list:
    exe = os.path.join(os.path.dirname(sys.executable), "moto_server")
    if os.path.exists(exe):
        return [exe]
    found = shutil.which("moto_server")
    if found:
        return [found]
    return [sys.executable, "-m", "moto.server"]


class Recording:
    """API calls recorded by moto between start and stop (moto's /moto-api/recorder/)."""

    def __init__(self) -> None:
        self.entries: list = []

    @property
    def actions(self) -> collections.Counter:
        counter: collections.Counter = collections.Counter()
        for entry in self.entries:
            counter[_action_of(entry)] += 1
        return counter

    @property
    def total(self) -> int:
        return len(self.entries)


def _action_of(entry: dict) -> str:
    body = entry.get("body") or ""
    if entry.get("body_encoded"):
        try:
            body = base64.b64decode(body).decode("utf-8", "replace")
        except ValueError:
            body = ""
    params = urllib.parse.parse_qs(body)
    if "Action" in params:
        return params["Action"][0]
    query = urllib.parse.parse_qs(urllib.parse.urlparse(entry.get("url", "")).query)
    if "Action" in query:
        return query["Action"][0]
    target = {k.lower(): v for k, v in (entry.get("headers") or {}).items()}.get("x-amz-target")
    if target:
        return target.rsplit(".", 1)[-1]
    return "%s %s" % (entry.get("method"), urllib.parse.urlparse(entry.get("url", "")).path)


class MotoServer:
    """A ``moto_server`` subprocess on 127.0.0.1; use as a context manager."""

    def __init__(self, region: str = DEFAULT_REGION, port: int | None = None, startup_timeout: float = 30.0):
        self.region = region
        self.host = "127.0.0.1"
        self.port = port
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self._tmpdir: str | None = None
        self.log_path: str | None = None

    # lifecycle -------------------------------------------------------------
    @property
    def endpoint_url(self) -> str:
        return "http://%s:%d" % (self.host, self.port)

    def start(self) -> "MotoServer":
        self._tmpdir = tempfile.mkdtemp(prefix="moto-harness-")
        self.log_path = os.path.join(self._tmpdir, "moto_server.log")
        env = dict(os.environ)
        env.update(FAKE_CREDENTIALS)
        env["AWS_DEFAULT_REGION"] = self.region
        env["MOTO_RECORDER_FILEPATH"] = os.path.join(self._tmpdir, "recording.jsonl")
        env.pop("MOTO_ENABLE_RECORDING", None)
        last_error = None
        for _attempt in range(3):
            if self.port is None or _attempt:
                self.port = free_port(self.host)
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    _moto_server_command() + ["-H", self.host, "-p", str(self.port)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            try:
                self._wait_ready()
                return self
            except RuntimeError as exc:
                last_error = exc
                self._kill()
        self._cleanup_tmp()
        raise RuntimeError("moto_server did not start: %s" % last_error)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("moto_server exited with %s; log: %s" % (self.proc.returncode, self._log_tail()))
            try:
                with urllib.request.urlopen(self.endpoint_url + "/moto-api/data.json", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("moto_server not answering on %s; log: %s" % (self.endpoint_url, self._log_tail()))

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, "r", encoding="utf-8", errors="replace") as handle:
                return handle.read()[-2000:]
        except OSError:
            return ""

    def _kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def _cleanup_tmp(self) -> None:
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def stop(self) -> None:
        self._kill()
        self._cleanup_tmp()

    def __enter__(self) -> "MotoServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # helpers ---------------------------------------------------------------
    def env(self, with_endpoint: bool = False, base: dict | None = None) -> dict:
        """Environment for ansible-playbook / boto3: fake credentials, region; optionally AWS_ENDPOINT_URL."""
        env = dict(os.environ if base is None else base)
        for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2"):
            env.pop(key, None)
        env.update(FAKE_CREDENTIALS)
        env["AWS_DEFAULT_REGION"] = self.region
        env["AWS_REGION"] = self.region
        if with_endpoint:
            env["AWS_ENDPOINT_URL"] = self.endpoint_url
        return env

    def extra_vars(self) -> dict:
        """Extra vars that point this collection's playbooks at the server."""
        return {"kubeadm_ec2_endpoint_url": self.endpoint_url, "kubeadm_ec2_region": self.region}

    def client(self, service: str = "ec2"):
        import boto3  # imported lazily: the harness itself needs only the stdlib

        return boto3.client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        )

    def _post(self, path: str, data: bytes = b"") -> bytes:
        req = urllib.request.Request(self.endpoint_url + path, data=data, method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.read()

    def reset(self) -> None:
        """Drop every resource in every region (moto's /moto-api/reset)."""
        self._post("/moto-api/reset")

    @contextlib.contextmanager
    def recording(self):
        """Record the API requests made inside the block; yields a :class:`Recording` filled on exit."""
        rec = Recording()
        self._post("/moto-api/recorder/reset-recording")
        self._post("/moto-api/recorder/start-recording")
        try:
            yield rec
        finally:
            self._post("/moto-api/recorder/stop-recording")
            req = urllib.request.Request(self.endpoint_url + "/moto-api/recorder/download-recording")
            with urllib.request.urlopen(req, timeout=10) as resp:
                text = resp.read().decode("utf-8", "replace")
            rec.entries = [json.loads(line) for line in text.splitlines() if line.strip()]


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class PlaybookResult:
    """Outcome of :func:`run_playbook` (JSON callback output parsed)."""

    def __init__(self, returncode: int, stdout: str, stderr: str, seconds: float):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.seconds = seconds
        try:
            self.data = json.loads(stdout[stdout.index("{"):]) if "{" in stdout else {}
        except ValueError:
            self.data = {}

    @property
    def stats(self) -> dict:
        """Per-host recap, e.g. {"localhost": {"ok": 38, "changed": 0, "failures": 0, ...}}."""
        return self.data.get("stats", {})

    def changed(self, host: str = "localhost") -> int:
        return int(self.stats.get(host, {}).get("changed", -1))

    def failures(self, host: str = "localhost") -> int:
        return int(self.stats.get(host, {}).get("failures", 0)) + int(self.stats.get(host, {}).get("unreachable", 0))

    def task_results(self):
        """Yield (task name, host, result dict) for every task result."""
        for play in self.data.get("plays", []):
            for task in play.get("tasks", []):
                for host, res in task.get("hosts", {}).items():
                    yield task["task"]["name"], host, res

    def changed_tasks(self, strip_role: bool = True) -> list:
        """Names of tasks that reported a change ("role : " prefix stripped unless strip_role=False)."""
        names = [name for name, _host, res in self.task_results() if res.get("changed")]
        return [n.split(" : ", 1)[-1] for n in names] if strip_role else names

    def failed_messages(self) -> list:
        """Messages of failed tasks (loop items included), whitespace collapsed."""
        out = []
        for _name, _host, res in self.task_results():
            if not res.get("failed"):
                continue
            msgs = [res.get("msg", "")]
            msgs += [item.get("msg", "") for item in res.get("results", []) if item.get("failed")]
            out += [" ".join(str(m).split()) for m in msgs if m]
        return out

    def __repr__(self) -> str:
        return "PlaybookResult(rc=%s, stats=%s, failed=%s, seconds=%.1f)" % (
            self.returncode, self.stats, self.failed_messages(), self.seconds)


def run_playbook(playbook: str, moto: "MotoServer | None" = None, extra_vars: dict | None = None,
                 inventory: str | None = None, check: bool = False, args: list | None = None,
                 env: dict | None = None, timeout: float = 900) -> PlaybookResult:
    """Run ``ansible-playbook`` from the repo root with the JSON callback.

    With ``moto`` the run gets fake credentials and ``kubeadm_ec2_endpoint_url``/``kubeadm_ec2_region``
    extra vars pointing at the server. ``inventory`` defaults to a localhost-only inventory that uses
    this interpreter (which has boto3).
    """
    bindir = os.path.dirname(sys.executable)
    run_env = moto.env() if moto is not None else dict(os.environ)
    run_env.update({
        "ANSIBLE_CONFIG": os.path.join(REPO_ROOT, "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "PATH": bindir + os.pathsep + run_env.get("PATH", ""),
    })
    if env:
        run_env.update(env)
    tmp = None
    if inventory is None:
        tmp = tempfile.NamedTemporaryFile("w", suffix=".ini", prefix="localhost-", delete=False)
        tmp.write("localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
        tmp.close()
        inventory = tmp.name
    all_vars = dict(moto.extra_vars()) if moto is not None else {}
    all_vars.update(extra_vars or {})
    cmd = [os.path.join(bindir, "ansible-playbook"), "-i", inventory, playbook, "-e", json.dumps(all_vars)]
    if check:
        cmd.append("--check")
    cmd += list(args or [])
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=run_env, capture_output=True, text=True, timeout=timeout, check=False)
    finally:
        if tmp is not None:
            os.unlink(tmp.name)
    return PlaybookResult(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)


@contextlib.contextmanager
def moto_server(region: str = DEFAULT_REGION):
    """Functional form: ``with moto_server() as moto: ...`` (same object as MotoServer)."""
    with MotoServer(region=region) as server:
        yield server


if __name__ == "__main__":  # manual use: python -m tests.integration.moto_harness
    with MotoServer() as _moto:
        print("moto_server at %s (Ctrl-C to stop)" % _moto.endpoint_url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
