# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run one module in the background on the controller and leave its result in an async job file.

    python job_runner.py JOB_FILE TIME_LIMIT ARGS_FILE -- PYTHON -m MODULE ARGS_FILE

Started by plugins/plugin_utils/local_async.py, detached from the worker that started it, after that
action wrote the job file of a running job (``{"started": 1, "finished": 0, ...}``, as ansible-core's
async_wrapper does, so ``async_status`` and ``kubeadm_ec2.cluster.job_wait`` read it). When the module
exits, the runner replaces that file with the module's JSON result. A module that outlives TIME_LIMIT
is killed with its process group and the job ends as a failure that says so. The private directory holding ARGS_FILE is removed once the
module has exited. Standard library only: this file is run, and the action imports write_job.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import signal
import subprocess
import sys


def write_job(path, data):
    """Replace the job file at once (a reader never sees half a file)."""
    tmp = "%s.tmp" % path
    with open(tmp, "w") as fh:
        json.dump(data, fh)
    os.rename(tmp, path)


def result_of(rc, out, err):
    """The module's result from its output: the first line that parses as a JSON object."""
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                return data
    return {"failed": True, "rc": rc, "msg": "the module printed no JSON result (rc=%s)" % rc,
            "module_stdout": out[-2000:], "module_stderr": err[-2000:]}


def killed(pid, time_limit):
    """Kill a module that outlived its time limit, with its process group; the job result that says so."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    return {"failed": True, "msg": "the module did not finish within its time limit of %ss and was "
                                   "killed" % time_limit, "child_pid": pid}


def not_started(exc):
    return {"failed": True, "msg": "the module could not start: %s" % exc}


def finish(job_file, result):
    """Replace the running job's file with its result."""
    result.update(ansible_job_id=os.path.basename(job_file), finished=1)
    write_job(job_file, result)


def run(job_file, time_limit, args_file, cmd):
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, universal_newlines=True)
        try:
            out, err = proc.communicate(timeout=time_limit)
            result = result_of(proc.returncode, out, err)
        except subprocess.TimeoutExpired:
            result = killed(proc.pid, time_limit)
            proc.communicate()
    except OSError as exc:
        result = not_started(exc)
    finally:
        shutil.rmtree(os.path.dirname(args_file), ignore_errors=True)
    finish(job_file, result)


def main(argv):
    if len(argv) < 5 or argv[3] != "--":
        sys.stderr.write(__doc__)
        return 2
    run(argv[0], float(argv[1]), argv[2], argv[4:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
