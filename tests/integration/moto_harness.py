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
import subprocess
import sys
import time
import urllib.parse
import urllib.request

from tests.support.ansible import ROOT, PlaybookResult, localhost_inventory
from tests.support.ansible import run_playbook as _run_playbook
from tests.support.lifecycle import Substrate, free_port

REPO_ROOT = ROOT  # the tests import it from here

DEFAULT_REGION = "us-east-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


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


class MotoServer(Substrate):
    """A ``moto_server`` subprocess on 127.0.0.1 (a tests/support/lifecycle.py substrate: private work
    directory for its log and recordings, bounded start, always stopped); use as a context manager."""

    prefix = "moto-harness-"
    stop_timeout = 10.0

    def __init__(self, region: str = DEFAULT_REGION, port: int | None = None, startup_timeout: float = 30.0):
        super().__init__()
        self.region = region
        self.host = "127.0.0.1"
        self.port = port
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self.log_path: str | None = None

    # lifecycle -------------------------------------------------------------
    @property
    def endpoint_url(self) -> str:
        return "http://%s:%d" % (self.host, self.port)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint_url + "/moto-api/data.json", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def _start(self) -> None:
        self.log_path = self.path("moto_server.log")
        env = dict(os.environ)
        env.update(FAKE_CREDENTIALS)
        env["AWS_DEFAULT_REGION"] = self.region
        env["MOTO_RECORDER_FILEPATH"] = self.path("recording.jsonl")
        env.pop("MOTO_ENABLE_RECORDING", None)
        for attempt in range(3):  # a free port can be taken between free_port() and the bind
            if self.port is None or attempt:
                self.port = free_port(self.host)
            self.proc = self.spawn(_moto_server_command() + ["-H", self.host, "-p", str(self.port)],
                                   "moto_server.log", env=env, group=True)
            try:
                self.wait_until(self._answers, self.startup_timeout, "moto_server on %s" % self.endpoint_url,
                                self.proc, "moto_server.log", interval=0.2)
                return
            except RuntimeError:
                self.kill(self.proc)
                self.proc = None
                if attempt == 2:
                    raise

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


def run_playbook(playbook: str, moto: "MotoServer | None" = None, extra_vars: dict | None = None,
                 inventory: str | None = None, check: bool = False, args: list | None = None,
                 env: dict | None = None, timeout: float = 900) -> PlaybookResult:
    """Run ``ansible-playbook`` (tests/support/ansible.py, JSON callback) from the repo root.

    With ``moto`` the run gets fake credentials and ``kubeadm_ec2_endpoint_url``/``kubeadm_ec2_region``
    extra vars pointing at the server. ``inventory`` defaults to a localhost-only inventory that uses
    this interpreter (which has boto3).
    """
    run_env = {}
    if moto is not None:  # the fake credentials; no profile or endpoint of the caller's environment
        run_env = dict.fromkeys(("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2"))
        run_env.update(moto.env(base={}))
    run_env.update(env or {})
    all_vars = dict(moto.extra_vars()) if moto is not None else {}
    all_vars.update(extra_vars or {})
    return _run_playbook(playbook, inventory=localhost_inventory() if inventory is None else inventory,
                         extra_vars=all_vars, check=check, args=args or (), env=run_env, timeout=timeout)


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
