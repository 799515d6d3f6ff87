"""The controller's job host (plugins/plugin_utils/job_host.py), run as the action runs it: a real process
that serves request files, forks each module and writes the job files job_wait reads; it kills a module
past its limit, ends with its owner, and an action that finds no usable host says so (and uses job_runner.py)."""

import json
import os
import subprocess
import sys
import time

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.plugin_utils import job_host
from ansible_collections.kubeadm_ec2.cluster.plugins.plugin_utils.local_async import (
    HOST, HOST_PREFIX, host_dir_of, preload_host, start_job, to_host)

MODULE = '''
import atexit, json, os, sys, time
STARTED = os.getpid()
with open(os.environ["HOSTMOD_IMPORTS"], "a") as _fh:  # who imported this module
    _fh.write("%d\\n" % STARTED)
def main():
    with open(sys.argv[1]) as fh:
        args = json.load(fh)["ANSIBLE_MODULE_ARGS"]
    if args.get("at_exit"):
        atexit.register(lambda: open(args["at_exit"], "w").write("ran"))
    if args.get("child"):
        child = os.fork()
        if child == 0:
            time.sleep(60)
            os._exit(0)
        with open(args["child"], "w") as fh:
            fh.write(str(child))
    time.sleep(args.get("sleep", 0))
    if args.get("silent"):
        sys.stderr.write("no result here")
        sys.exit(3)
    print(json.dumps({"changed": False, "echo": args.get("echo"), "cwd": os.getcwd(), "pid": os.getpid()}))
    sys.exit(0)
'''


def wait_for(what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out waiting")


def read_job(path):
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (IOError, OSError, ValueError):
        return None
    return data if data.get("finished") else None


@pytest.fixture
def lab(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "hostmod.py").write_text(MODULE)
    async_dir = tmp_path / "async"
    async_dir.mkdir(mode=0o700)
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "lib"), HOSTMOD_IMPORTS=str(tmp_path / "imports"))
    state = {"n": 0}

    def submit(**args):
        state["n"] += 1
        jid = "j%d.1" % state["n"]
        private = tmp_path / ("args%d" % state["n"])
        private.mkdir(mode=0o700)
        (private / "args.json").write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        job_file = str(async_dir / jid)
        limit = args.pop("limit", 10)
        assert to_host(str(async_dir), env, sys.executable, jid, job_file, limit, str(private / "args.json"),
                       "hostmod", owner=owner.pid)
        return job_file, str(private)

    def preload(modules):
        return preload_host(str(async_dir), env, sys.executable, modules, owner=owner.pid)

    yield {"submit": submit, "preload": preload, "async": async_dir, "owner": owner, "tmp": tmp_path}
    owner.kill()
    owner.wait()


def hosts(async_dir):
    return [n for n in os.listdir(str(async_dir)) if n.startswith(".kubeadm-ec2-host-")]


def test_one_host_runs_every_job_of_its_owner_and_ends_with_it(lab):
    first, private1 = lab["submit"](echo="a")
    second, private2 = lab["submit"](echo="b")
    one, two = wait_for(lambda: read_job(first)), wait_for(lambda: read_job(second))
    assert (one["echo"], two["echo"]) == ("a", "b") and one["ansible_job_id"] == "j1.1"
    assert one["cwd"] == private1 and not os.path.exists(private1) and not os.path.exists(private2)
    # one host for both jobs, and each job ran in a process of its own
    assert len(hosts(lab["async"])) == 1 and one["pid"] != two["pid"]
    with open(os.path.join(str(lab["async"]), hosts(lab["async"])[0], job_host.PID_FILE)) as fh:
        host_pid = int(fh.read())
    assert job_host.alive(host_pid)
    lab["owner"].kill()
    lab["owner"].wait()
    wait_for(lambda: not job_host.alive(host_pid) or None)
    assert hosts(lab["async"]) == []


def test_a_preload_imports_the_module_in_the_host_before_its_job_comes(lab):
    # job_host_start's request: the host starts and imports at once; the job that comes later runs in the
    # same host from what it loaded (the module's top level runs once, in the host). A name that imports
    # nothing is passed over.
    imports = lab["tmp"] / "imports"
    assert lab["preload"](["no_such_module_here", "hostmod"])
    wait_for(imports.exists)
    (name,) = hosts(lab["async"])
    with open(os.path.join(str(lab["async"]), name, job_host.PID_FILE)) as fh:
        host_pid = fh.read().strip()
    assert imports.read_text().split() == [host_pid]
    job_file, _private = lab["submit"](echo="a")
    res = wait_for(lambda: read_job(job_file))
    assert res["echo"] == "a" and str(res["pid"]) != host_pid
    assert hosts(lab["async"]) == [name] and imports.read_text().split() == [host_pid]


def test_a_module_exits_as_a_process_of_its_own_would(lab):
    # its exit handlers run (AnsibleModule removes its temporary directory in one), its result stays
    marker = str(lab["tmp"] / "at_exit")
    job_file, _private = lab["submit"](echo="x", at_exit=marker)
    assert wait_for(lambda: read_job(job_file))["echo"] == "x"
    assert open(marker).read() == "ran"


def test_a_module_past_its_limit_is_killed_with_its_children(lab):
    child_file = str(lab["tmp"] / "child.pid")
    job_file, _private = lab["submit"](sleep=30, limit=0.5, child=child_file)
    started = time.monotonic()
    res = wait_for(lambda: read_job(job_file))
    assert time.monotonic() - started < 5
    assert res["failed"] is True and "did not finish within its time limit of 0.5s" in res["msg"]
    child = int(open(child_file).read())
    wait_for(lambda: not job_host.alive(child))


def test_a_module_without_a_result_is_a_failure_with_its_output(lab):
    job_file, _private = lab["submit"](silent=True)
    res = wait_for(lambda: read_job(job_file))
    assert res["failed"] is True and res["rc"] == 3 and "no result here" in res["module_stderr"]


def test_a_host_that_is_gone_is_not_used(tmp_path):
    async_dir = tmp_path / "async"
    async_dir.mkdir(mode=0o700)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "hostmod.py").write_text(MODULE + "\nif __name__ == '__main__':\n    main()\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "lib"), HOSTMOD_IMPORTS=str(tmp_path / "imports"))
    host_dir = host_dir_of(str(async_dir), 4242, sys.executable, env)
    os.mkdir(host_dir, 0o700)
    with open(os.path.join(host_dir, job_host.PID_FILE), "w") as fh:
        fh.write(str(dead.pid))
    # its host died: the action runs the job another way (job_runner.py), and hands it nothing
    assert job_host.host_usable(host_dir) is False
    assert to_host(str(async_dir), env, sys.executable, "j1.1", str(async_dir / "j1.1"), 5, "/nowhere/args.json",
                   "hostmod", owner=4242) is False
    assert [n for n in os.listdir(host_dir) if n.endswith(job_host.REQUEST)] == []
    # ... and the job still runs, through job_runner.py
    private = tmp_path / "args"
    private.mkdir(mode=0o700)
    (private / "args.json").write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"echo": "fallback"}}))
    start_job(str(async_dir), env, sys.executable, "j3.1", str(async_dir / "j3.1"),
              5, str(private / "args.json"), "hostmod", owner=4242)
    res = wait_for(lambda: read_job(str(async_dir / "j3.1")))
    assert res["echo"] == "fallback" and not private.exists()
    assert sorted(os.listdir(host_dir)) == [job_host.PID_FILE] and hosts(async_dir) == [os.path.basename(host_dir)]
    # a directory made just now without a pid file: its host is starting
    os.unlink(os.path.join(host_dir, job_host.PID_FILE))
    assert job_host.host_usable(host_dir) is True
    # a host that closed (its directory renamed away) takes no request
    with pytest.raises(OSError):
        job_host.request(str(tmp_path / "gone"), "j2.1", "x", 1, "y", "hostmod")


def test_what_a_killed_host_left_is_swept_and_nothing_else(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = os.getpid()
    for name, pid in (("%s%d-aaa" % (HOST_PREFIX, dead.pid), dead.pid),     # owner and host gone: swept
                      ("%s%d-bbb" % (HOST_PREFIX, dead.pid), None),         # never started, owner gone: swept
                      ("%s%d-ccc" % (HOST_PREFIX, dead.pid), live),         # owner gone, host still ends its jobs
                      ("%s%d-ddd" % (HOST_PREFIX, live), dead.pid)):        # owner alive
        (tmp_path / name).mkdir()
        if pid:
            (tmp_path / name / job_host.PID_FILE).write_text(str(pid))
    (tmp_path / "j1.2").write_text("{}")                                   # a job file: not a host's
    swept = job_host.sweep(str(tmp_path), HOST_PREFIX)
    assert sorted(swept) == ["%s%d-aaa" % (HOST_PREFIX, dead.pid), "%s%d-bbb" % (HOST_PREFIX, dead.pid)]
    assert sorted(os.listdir(str(tmp_path))) == sorted(["%s%d-ccc" % (HOST_PREFIX, dead.pid),
                                                        "%s%d-ddd" % (HOST_PREFIX, live), "j1.2"])


def test_usage():
    proc = subprocess.run([sys.executable, HOST, "only-one"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False)
    assert proc.returncode == 2 and "job_host.py HOST_DIR OWNER_PID" in proc.stderr
