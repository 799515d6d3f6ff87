# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action of validate's background checks: a module started with ``async`` on the controller runs
straight from the installed collection, with no AnsiballZ payload and no async_wrapper.

ansible-core starts an async task by building the module's AnsiballZ payload (once per module and
run), copying it and the async_wrapper payload into a temporary directory and running the wrapper,
which forks the module off: about 0.8 s of the controller's time per task on the 2-core benchmark
machine, spent before the next task may start. When the task runs on the controller itself (local
connection, no become, an interpreter path, no ``environment``), this action instead writes the
module's arguments into a private directory and hands the job to the run's job host
(plugins/plugin_utils/job_host.py, started by ``job_host_start`` or the first such task of the
ansible-playbook process), which forks the module from a process that already holds the imports of
the earlier jobs (and of the modules ``job_host_start`` named) and writes
the usual async job file (``async_status`` and ``kubeadm_ec2.cluster.job_wait`` read it). When no host
can take the job, plugins/plugin_utils/job_runner.py runs it detached (``python -m <the module>``,
the same job file). Any other task, and every task without ``async``, is left to ansible-core's own
``normal`` action, which this one extends.

In validate.yml (``validate_background``) the action also hands the started job to the report: it
merges ``{job, timeout, delegate, become}`` into the fact ``validate_plan.jobs[JOB_NAME]``, so a start
is one task. A module option ``stop`` (a reason the check cannot run, known before it starts) starts
nothing: the task fails with it, or in validate.yml hands it to the report as the check's result.

The module import path comes from the collection paths ansible-core uses, so its imports resolve as
they do for any collection code on the controller.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import subprocess
import tempfile
import uuid

import ansible
from ansible.plugins.action.normal import ActionModule as NormalAction
from ansible.utils.collection_loader import AnsibleCollectionConfig
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.utils.vars import merge_hash

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.checks import merge_plan, stop_result
from ansible_collections.kubeadm_ec2.cluster.plugins.plugin_utils import job_host
from ansible_collections.kubeadm_ec2.cluster.plugins.plugin_utils.job_runner import write_job

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "job_runner.py")
HOST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "job_host.py")
HOST_PREFIX = ".kubeadm-ec2-host-"


def import_name(path):
    """(python path root, module import name) of a collection module file, or None."""
    parts = os.path.abspath(path).split(os.sep)
    if "ansible_collections" not in parts or not path.endswith(".py"):
        return None
    i = len(parts) - 1 - parts[::-1].index("ansible_collections")
    return os.sep.join(parts[:i]) or os.sep, ".".join(parts[i:])[:-3]


class LocalAsyncAction(NormalAction):
    # the name of this module's job in validate_plan.jobs (None: the job is not handed to validate's report)
    JOB_NAME = None

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        if self._task.args.get("stop"):
            # the check cannot run (its module's option ``stop``): nothing starts, the reason is the result
            return self._hand_job(dict(stop_result(self._task.args["stop"]), changed=False), task_vars, stopped=True)
        spawn = self._spawnable(task_vars) if self._task.async_val else None
        if not spawn:
            result = super(LocalAsyncAction, self).run(tmp, task_vars)
        else:
            # the checks every action makes (check mode, async support), then the direct start
            result = super(NormalAction, self).run(tmp, task_vars)
            result = merge_hash(result, self._spawn(task_vars, *spawn))
        return self._hand_job(result, task_vars)

    def _hand_job(self, result, task_vars, stopped=False):
        """In validate.yml (validate_background), hand the started job to the report: the fact
        validate_plan.jobs[JOB_NAME] = {job, timeout, delegate, become}, what the report's wait needs."""
        if not (self.JOB_NAME and self._task.async_val and boolean(task_vars.get("validate_background"), strict=False)):
            return result
        return hand_job(result, task_vars.get("validate_plan"), self.JOB_NAME, self._task.async_val,
                        self._task.delegate_to, self._play_context.become, stopped=stopped)

    def _direct_interpreter(self, task_vars):
        """The interpreter that runs this task's modules on the controller without ansible-core's payload (local
        connection, no become, no ``environment``, an absolute interpreter path), else None."""
        environment = [e for e in self._task.environment or [] if e]
        if getattr(self._connection, "transport", "") != "local" or self._play_context.become or environment:
            return None
        host_vars = task_vars
        if self._task.delegate_to:
            host_vars = (task_vars.get("ansible_delegated_vars") or {}).get(self._task.delegate_to) or {}
        interpreter = self._templar.template(host_vars.get("ansible_python_interpreter"))
        if not isinstance(interpreter, str) or not os.path.isabs(interpreter):
            return None  # interpreter discovery: leave it to ansible-core
        return interpreter

    def _import_name(self, name):
        """(python path root, import name) of module ``name`` when it is collection code, else None."""
        found = self._shared_loader_obj.module_loader.find_plugin_with_context(
            name, collection_list=self._task.collections)
        return import_name(found.plugin_resolved_path) if found.resolved else None

    def _spawnable(self, task_vars):
        """(interpreter, python path root, module import name) when this task may run directly, else None."""
        interpreter = self._direct_interpreter(task_vars)
        where = self._import_name(self._task.action) if interpreter else None
        if not where:
            return None
        return (interpreter,) + where

    def _async_dir(self):
        async_dir = os.path.expanduser(self.get_shell_option("async_dir", default="~/.ansible_async"))
        os.makedirs(async_dir, mode=0o700, exist_ok=True)
        return async_dir

    def _spawn(self, task_vars, interpreter, root, module):
        module_args = self._task.args.copy()
        self._update_module_args(self._task.action, module_args, task_vars)
        module_args["_ansible_tmpdir"] = None  # the module makes (and removes) its own
        async_dir = self._async_dir()
        jid = "j%s.%d" % (uuid.uuid4().hex[:12], os.getpid())
        job_file = os.path.join(async_dir, jid)
        private = tempfile.mkdtemp(prefix="kubeadm-ec2-job-")  # 0700
        args_file = os.path.join(private, "args.json")
        fd = os.open(args_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"ANSIBLE_MODULE_ARGS": module_args}, fh)
        env = module_env(root)
        # the job file exists before this task returns: a wait that starts at once finds it, and a runner
        # that never starts leaves a job that does not finish (the wait's bound ends it)
        write_job(job_file, {"started": 1, "finished": 0, "ansible_job_id": jid})
        start_job(async_dir, env, interpreter, jid, job_file, self._task.async_val, args_file, module)
        return {"started": 1, "finished": 0, "ansible_job_id": jid, "results_file": job_file, "changed": False}


def module_env(root):
    """The environment of a module run from the collection under ``root``: the collection paths ansible-core
    searches, but not its own internal one (put first on the path, that would shadow standard modules, ``_json``)."""
    inside = os.path.dirname(os.path.abspath(ansible.__file__)) + os.sep
    paths = [root] + [p for p in AnsibleCollectionConfig.collection_paths
                      if p != root and not os.path.abspath(p).startswith(inside)]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths + [os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))


def detach(cmd, env, cwd):
    subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     env=env, cwd=cwd, start_new_session=True, close_fds=True)


def host_dir_of(async_dir, owner, interpreter, env):
    """The directory of the job host of ``owner`` (an ansible-playbook process) for this interpreter and path."""
    key = hashlib.sha1(("%s\0%s" % (interpreter, env.get("PYTHONPATH", ""))).encode("utf-8")).hexdigest()[:12]
    return os.path.join(async_dir, "%s%d-%s" % (HOST_PREFIX, owner, key))


def to_host(async_dir, env, interpreter, jid, job_file, limit, args_file, module, owner=None):
    """Hand the job to this run's job host (job_host.py), starting the host when there is none yet; False
    when that cannot be done (the caller runs the job with job_runner.py). One host per ansible-playbook
    process (``owner``, the worker's parent), interpreter and module path."""
    return _to_host(async_dir, env, interpreter, owner,
                    lambda host_dir: job_host.request(host_dir, jid, job_file, limit, args_file, module))


def preload_host(async_dir, env, interpreter, modules, owner=None):
    """Have this run's job host (started now when there is none yet) import ``modules`` before their jobs
    come; False when no host can take the request (the jobs then start their own, as before)."""
    return _to_host(async_dir, env, interpreter, owner, lambda host_dir: job_host.preload(host_dir, modules))


def _to_host(async_dir, env, interpreter, owner, send):
    owner = owner or os.getppid()
    host_dir = host_dir_of(async_dir, owner, interpreter, env)
    try:
        try:
            os.mkdir(host_dir, 0o700)
            new = True
        except FileExistsError:
            new = False
            if not job_host.host_usable(host_dir):
                return False
        send(host_dir)
        if new:
            detach([interpreter, HOST, host_dir, str(owner)], env, host_dir)
            job_host.sweep(async_dir, HOST_PREFIX)  # what hosts that were killed left behind
    except OSError:
        return False
    return True


def start_job(async_dir, env, interpreter, jid, job_file, limit, args_file, module, owner=None):
    """Run the job through the run's job host, else detached through job_runner.py (``python -m``)."""
    if not to_host(async_dir, env, interpreter, jid, job_file, limit, args_file, module, owner=owner):
        detach([interpreter, RUNNER, job_file, str(limit), args_file, "--", interpreter, "-m", module, args_file],
               env, os.path.dirname(args_file))


def hand_job(result, plan, name, limit, delegate_to=None, become=False, stopped=False):
    """``result`` (a task's start of a background job) with the fact validate_plan: ``plan`` with
    jobs[name] = {job: the start, timeout: the job's limit + 5 s, delegate, become}, what the
    report's bounded wait needs. ``stopped``: the check could not run for a reason known before the start
    (its ``stop``), which the report gives as its result; the task says why, without a warning."""
    job = dict((k, v) for k, v in result.items() if k != "ansible_facts")
    entry = {"job": job, "timeout": int(limit) + 5, "delegate": delegate_to or "localhost", "become": bool(become)}
    out = dict(result)
    if result.get("failed"):
        # ansible-core keeps no fact of a failed task: a start that failed is handed over as a finished job
        # (the report shows it as the check's failure, with its message), and the task itself succeeds
        out = {"changed": False, "start_failed": True,
               "msg": "%s could not start: %s" % (name, result.get("msg") or "no message")}
        if not stopped:
            out["warnings"] = ["%s could not start; the report gives its failure as the check's result" % name]
    facts = dict(result.get("ansible_facts") or {})
    facts["validate_plan"] = merge_plan(plan, {"jobs": {name: entry}})
    out["ansible_facts"] = facts
    return out
