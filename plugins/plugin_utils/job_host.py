# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One process per playbook run that runs the controller's background modules, each in a forked child.

    python job_host.py HOST_DIR OWNER_PID

Why: validate.yml starts four modules in the background on the controller (the DNS cluster reads, the
DNS probe pods, sg_audit, image_arch). Started one interpreter each (job_runner.py), three of them
import the ``kubernetes`` client and all four ``ansible.module_utils.basic``, about 0.25 s of CPU each,
at the moment play 1 plans on the same (2-core benchmark) machine. The host imports each module once
and forks every job from itself, so a job that shares its imports with an earlier one starts with them
loaded.

How: plugins/plugin_utils/local_async.py (the action) makes HOST_DIR (``mkdir``: one host per ansible-playbook
process, interpreter and module path, in the 0700 async directory), writes one request file per job
(``<jid>.req``: job file, time limit, arguments file, module) and starts this host when it made the
directory. The host polls HOST_DIR every ``POLL`` s. For a request it imports the module (so its imports
stay loaded for the next jobs) and forks a runner, which forks the module's own process (it calls the
module's ``main()`` with the arguments file, what ``python -m`` runs; ``runpy`` for a module without one)
and writes the job file with job_runner.py's helpers: the module's JSON result, or a failure when the module printed none or outlived its
time limit (its process group is killed).

A preload request (``preload(host_dir, modules)``, a ``.req`` file that sorts before every job's) names
modules to import and starts nothing: validate.yml sends one at the start of play 1 (the action of
``kubeadm_ec2.cluster.job_host_start``), so the host holds the imports of the run's background jobs by the
time play 1 starts them. Without it, the first job paid for them, and every job that came while the host
imported waited.

The host ends when no job runs and its owner (the ansible-playbook process) is gone or no request came for
``IDLE`` s. It first renames HOST_DIR away, so that a later action finds no host and starts a new one (or
falls back to job_runner.py), and serves any request that reached the old directory before the rename.
A host that was killed leaves its directory; the action that starts the next host removes such directories
(``sweep``: their owner and their host are gone). Standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import atexit
import importlib
import json
import os
import runpy
import select
import shutil
import sys
import time
import traceback

try:
    from job_runner import finish, killed, not_started, result_of  # run as a script: this directory is on sys.path
except ImportError:  # imported from the collection (the action, the tests)
    from ansible_collections.kubeadm_ec2.cluster.plugins.plugin_utils.job_runner import (
        finish, killed, not_started, result_of)

POLL = 0.02
IDLE = 30.0
PID_FILE = "pid"
REQUEST = ".req"
PRELOAD = "0preload-"  # sorts before the job ids (j<hex>.<pid>): the host imports first, then forks


def alive(pid):
    """Whether process ``pid`` runs (a zombie, which exited but was not reaped yet, does not)."""
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return False
    try:
        with open("/proc/%d/stat" % int(pid)) as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (IOError, OSError, IndexError):
        return True  # no /proc: kill() said it exists


def _put(host_dir, name, req):
    """Write request ``req`` as ``name`` + REQUEST in ``host_dir`` atomically: the host never reads half a
    request. Raises OSError when the directory is gone (the host closed)."""
    tmp = os.path.join(host_dir, ".%s.tmp" % name)
    with open(tmp, "w") as fh:
        json.dump(req, fh)
    os.rename(tmp, os.path.join(host_dir, name + REQUEST))


def request(host_dir, jid, job_file, time_limit, args_file, module):
    """Hand one job to the host of ``host_dir``. Raises OSError when the directory is gone (the host
    closed): the caller runs the job another way."""
    _put(host_dir, jid, {"job_file": job_file, "time_limit": float(time_limit), "args_file": args_file,
                         "module": module})


def preload(host_dir, modules):
    """Ask the host of ``host_dir`` to import ``modules`` (names) now, before the jobs that need them come.
    Raises OSError when the directory is gone (the host closed)."""
    _put(host_dir, "%s%d" % (PRELOAD, os.getpid()), {"preload": list(modules)})


def _import(name):
    try:
        importlib.import_module(name)
    except Exception:  # pylint: disable=broad-except
        pass  # a job of that module reports what is wrong; a preload has no one to tell


def sweep(async_dir, prefix):
    """Remove the directories ``prefix<owner>-*`` of hosts that were killed (their owner and host are both gone)
    and of hosts that never started; a host that ends removes its own."""
    try:
        names = [n for n in os.listdir(async_dir) if n.startswith(prefix)]
    except OSError:
        return []
    swept = []
    for name in names:
        path = os.path.join(async_dir, name)
        owner = name[len(prefix):].split("-", 1)[0]
        pid = host_pid(path)
        if (alive(owner) if owner.isdigit() else True) or (pid is not None and alive(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        swept.append(name)
    return swept


def host_pid(host_dir):
    """The pid the host of ``host_dir`` wrote, or None (not started yet, or the directory is gone)."""
    try:
        with open(os.path.join(host_dir, PID_FILE)) as fh:
            return fh.read().strip()
    except (IOError, OSError):
        return None


def host_usable(host_dir, started_within=5.0):
    """Whether ``host_dir`` has a live host, or one that is starting (no pid file yet, made just now)."""
    pid = host_pid(host_dir)
    if pid is not None:
        return alive(pid)
    try:
        return time.time() - os.stat(host_dir).st_mtime < started_within
    except OSError:
        return False


def _run_module(module, args_file, out_w, err_w):
    """In the module's own process: what ``python -m module args_file`` does, then exit with its code."""
    code = 1
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.chdir(os.path.dirname(args_file))
        sys.argv = [module, args_file]
        try:
            loaded = sys.modules.get(module)
            if callable(getattr(loaded, "main", None)):
                loaded.main()  # what the module runs as __main__ (the host imported it, never ran it)
            else:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # pylint: disable=broad-except
            traceback.print_exc()
    finally:
        # what the interpreter runs when a module's process exits (AnsibleModule removes its tmpdir there)
        try:
            atexit._run_exitfuncs()  # pylint: disable=protected-access
        except Exception:  # pylint: disable=broad-except
            pass
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # pylint: disable=broad-except
                pass
        os._exit(code)  # pylint: disable=protected-access


def _read_until(fds, deadline):
    """(bytes read per fd, True when both reached EOF before ``deadline``)."""
    data = dict((fd, []) for fd in fds)
    open_fds = list(fds)
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False
        ready, _w, _x = select.select(open_fds, [], [], left)
        for fd in ready:
            chunk = os.read(fd, 65536)
            if chunk:
                data[fd].append(chunk)
            else:
                open_fds.remove(fd)
    return data, True


def run_job(req):
    """In a runner process: run the request's module in a child and write its job file."""
    job_file, limit, args_file = req["job_file"], float(req["time_limit"]), req["args_file"]
    result = None
    try:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(out_r)
            os.close(err_r)
            _run_module(req["module"], args_file, out_w, err_w)
        os.close(out_w)
        os.close(err_w)
        data, done = _read_until([out_r, err_r], time.monotonic() + limit)
        if not done:
            result = killed(pid, limit)
        _pid, status = os.waitpid(pid, 0)
        if result is None:
            rc = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
            result = result_of(rc, b"".join(data[out_r]).decode("utf-8", "replace"),
                               b"".join(data[err_r]).decode("utf-8", "replace"))
    except OSError as exc:
        result = not_started(exc)
    finally:
        shutil.rmtree(os.path.dirname(args_file), ignore_errors=True)
    finish(job_file, result)


class Host(object):
    def __init__(self, host_dir, owner, idle=IDLE):
        self.dir, self.owner, self.idle = host_dir, int(owner), idle
        self.children = set()
        self.last = time.monotonic()

    def _reap(self):
        for pid in list(self.children):
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
            except OSError:
                done = pid
            if done:
                self.children.discard(pid)

    def _serve(self, path):
        try:
            with open(path) as fh:
                req = json.load(fh)
            os.unlink(path)
        except (IOError, OSError, ValueError):
            return
        if "preload" in req:
            for name in req["preload"]:
                _import(name)
            return
        # the module's imports stay loaded in the host for the next job that shares them
        _import(req["module"])
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                run_job(req)
            except BaseException:  # pylint: disable=broad-except
                code = 1
            os._exit(code)  # pylint: disable=protected-access
        self.children.add(pid)
        self.last = time.monotonic()

    def _requests(self, where):
        try:
            names = sorted(n for n in os.listdir(where) if n.endswith(REQUEST))
        except OSError:
            return []
        return [os.path.join(where, n) for n in names]

    def run(self):
        with open(os.path.join(self.dir, ".pid.tmp"), "w") as fh:
            fh.write(str(os.getpid()))
        os.rename(os.path.join(self.dir, ".pid.tmp"), os.path.join(self.dir, PID_FILE))
        where = self.dir
        closed = False
        while True:
            for path in self._requests(where):
                self._serve(path)
            self._reap()
            if not self.children and not closed and (
                    not alive(self.owner) or time.monotonic() - self.last > self.idle):
                # new actions find no host from here on; a request that came before the rename is served
                where = "%s.closed.%d" % (self.dir, os.getpid())
                os.rename(self.dir, where)
                closed = True
                continue
            if closed and not self.children:
                break
            time.sleep(POLL)
        shutil.rmtree(where, ignore_errors=True)


def main(argv):
    if len(argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    os.umask(0o077)
    Host(argv[0], argv[1]).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
