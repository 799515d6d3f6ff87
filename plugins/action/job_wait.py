# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait, bounded, for a background (async) job and return its result without failing the play."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import time

from ansible.plugins.action import ActionBase

ARGS = dict(
    job=dict(type="dict"),
    jid=dict(type="str"),
    timeout=dict(type="float", default=60.0),
    interval=dict(type="float", default=0.1),
    cleanup=dict(type="bool", default=True),
)


def read_job_file(path):
    """(finished, data) of a local async job file; (False, None) while it is running or not written yet."""
    try:
        with open(path) as fh:
            data = json.loads(fh.read())
    except (IOError, OSError, ValueError):
        return False, None
    if "started" in data and not data.get("finished"):
        return False, data
    return True, data


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def _local(self):
        return getattr(self._connection, "transport", "") == "local" and not self._play_context.become

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        _spec, args = self.validate_argument_spec(argument_spec=ARGS)
        job = args["job"]
        if job is not None and not job.get("ansible_job_id"):
            # the task ran in the foreground (async 0) or was skipped: its result, as a finished job
            out = dict(job)
            failed = bool(out.pop("failed", False))
            for key in ("changed", "invocation", "_ansible_no_log"):
                out.pop(key, None)
            result.update(out)
            result.update(changed=False, finished=not out.get("skipped"), job_failed=failed)
            return result
        jid = args["jid"] or (job or {}).get("ansible_job_id")
        if not jid:
            result.update(failed=True, msg="job_wait: give jid or job")
            return result
        deadline = time.time() + args["timeout"]
        async_dir = self.get_shell_option("async_dir", default="~/.ansible_async")
        finished, data = False, None
        if self._local():
            # the job runs on the controller: read its file directly (no module round trip per poll)
            path = os.path.join(os.path.expanduser(async_dir), jid)
            while True:
                finished, data = read_job_file(path)
                if finished or time.time() >= deadline:
                    break
                time.sleep(args["interval"])
            if finished and args["cleanup"]:
                try:
                    os.unlink(path)
                except OSError:
                    pass
        else:
            remote_dir = self._remote_expand_user(async_dir)
            while True:
                data = self._execute_module(module_name="ansible.legacy.async_status", task_vars=task_vars,
                                            module_args={"jid": jid, "_async_dir": remote_dir})
                finished = bool(data.get("finished"))
                if finished or time.time() >= deadline:
                    break
                time.sleep(max(args["interval"], 0.5))
        job = dict(data or {}) if finished else {}
        for key in ("started", "finished", "results_file", "_ansible_parsed", "changed", "failed",
                    "invocation", "_ansible_no_log"):
            job.pop(key, None)
        job_failed = bool(finished and ((data or {}).get("failed") or (data or {}).get("rc", 0) not in (0, None)))
        result.update(job)  # the job's own result, without its failure flag (job_failed)
        result.update(changed=False, ansible_job_id=jid, finished=finished, job_failed=job_failed)
        if not finished:
            result["msg"] = "job %s did not finish within %gs" % (jid, args["timeout"])
        return result
