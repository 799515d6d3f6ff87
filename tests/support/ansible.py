"""The one ansible-playbook runner of the tests.

``run_playbook(playbook, ...)`` runs from the repo root with the repo's ansible.cfg and this venv's
ansible-playbook; extra vars go through a JSON file in a private directory (not the command line).
With ``callback="json"`` (the default) the ansible.posix.json callback output is parsed into
``PlaybookResult.data``; ``callback="default"`` keeps the human output in ``result.output``.
"""

import json
import os
import shutil
import subprocess
import sys
import time

from tests.support.lifecycle import private_dir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOKS = os.path.join(ROOT, "tests", "integration", "playbooks")
BIN = os.path.dirname(sys.executable)
CALLBACKS = {"json": "ansible.posix.json", "default": "default"}


def localhost_inventory(python=None):
    """An inventory (dict) of localhost with a local connection and this interpreter."""
    return {"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                            "ansible_python_interpreter": python or sys.executable}}}}


def ansible_env(base=None, callback="json", **extra):
    """Environment for ansible-playbook: repo ansible.cfg, no colour, this venv first on PATH."""
    env = dict(os.environ if base is None else base)
    env.update({
        "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": CALLBACKS.get(callback, callback),
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "PATH": BIN + os.pathsep + env.get("PATH", ""),
    })
    env.update({k: str(v) for k, v in extra.items()})
    return env


class PlaybookResult:
    """Outcome of :func:`run_playbook`."""

    def __init__(self, returncode, stdout, stderr, seconds, json_output):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.seconds = seconds
        self.data = {}
        if json_output and "{" in stdout:
            try:
                self.data = json.loads(stdout[stdout.index("{"):])
            except ValueError:
                self.data = {}

    @property
    def output(self):
        return self.stdout + self.stderr

    @property
    def stats(self):
        """Per-host recap, e.g. {"localhost": {"ok": 38, "changed": 0, "failures": 0, ...}}."""
        return self.data.get("stats", {})

    def changed(self, host="localhost"):
        return int(self.stats.get(host, {}).get("changed", -1))

    def failures(self, host="localhost"):
        return int(self.stats.get(host, {}).get("failures", 0)) + int(self.stats.get(host, {}).get("unreachable", 0))

    def task_results(self):
        """Yield (task name, host, result dict) for every task result."""
        for play in self.data.get("plays", []):
            for task in play.get("tasks", []):
                for host, res in (task.get("hosts") or {}).items():
                    yield task["task"]["name"], host, res

    def results_of(self, task_name):
        """{host: result} of the task named ``task_name`` (with or without its "role : " prefix)."""
        out = {}
        for name, host, res in self.task_results():
            if name == task_name or name.endswith(" : " + task_name):
                out[host] = res
        return out

    def changed_tasks(self, strip_role=True):
        """Names of tasks that reported a change ("role : " prefix stripped unless strip_role=False)."""
        names = [name for name, _host, res in self.task_results() if res.get("changed")]
        return [n.split(" : ", 1)[-1] for n in names] if strip_role else names

    def failed_messages(self):
        """Messages of failed tasks (loop items included), whitespace collapsed."""
        out = []
        for _name, _host, res in self.task_results():
            if not res.get("failed"):
                continue
            msgs = [res.get("msg", "")]
            msgs += [item.get("msg", "") for item in res.get("results", []) if item.get("failed")]
            out += [" ".join(str(m).split()) for m in msgs if m]
        return out

    def __repr__(self):
        return "PlaybookResult(rc=%s, stats=%s, failed=%s, seconds=%.1f)" % (
            self.returncode, self.stats, self.failed_messages(), self.seconds)


def _playbook_path(playbook):
    if os.path.isabs(playbook) or os.path.exists(os.path.join(ROOT, playbook)):
        return os.path.join(ROOT, playbook)
    return os.path.join(PLAYBOOKS, playbook)


def run_playbook(playbook, inventory="localhost,", extra_vars=None, check=False, args=(), env=None,
                 callback="json", timeout=600):
    """Run ansible-playbook; ``playbook`` is a path (absolute or from the repo root) or a name in
    tests/integration/playbooks; ``inventory`` a path, a host list ("localhost,") or a dict; ``env``
    is added to (and wins over) the environment ``ansible_env`` builds, a None value unsets one."""
    tmp = private_dir("kec2-play-")
    try:
        if isinstance(inventory, dict):
            path = os.path.join(tmp, "inventory.json")
            with open(path, "w") as fh:
                json.dump(inventory, fh)
            inventory = path
        varfile = os.path.join(tmp, "extra-vars.json")
        with open(varfile, "w") as fh:
            json.dump(extra_vars or {}, fh)
        cmd = [os.path.join(BIN, "ansible-playbook"), "-i", inventory, "-e", "@" + varfile, _playbook_path(playbook)]
        if check:
            cmd.append("--check")
        cmd += list(args)
        run_env = ansible_env(callback=callback, ANSIBLE_LOCAL_TEMP=os.path.join(tmp, "ansible-local"))
        for key, val in (env or {}).items():  # None unsets a variable
            if val is None:
                run_env.pop(key, None)
            else:
                run_env[key] = val
        start = time.monotonic()
        proc = subprocess.run(cmd, cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=timeout,
                              check=False)
        return PlaybookResult(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start,
                              callback == "json")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
