# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start the run's job host now and have it import the modules of the background jobs still to come."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action.normal import ActionModule as NormalAction

from ansible_collections.kubeadm_ec2.cluster.plugins.plugin_utils.local_async import LocalAsyncAction, module_env, preload_host

ARGS = dict(modules=dict(type="list", elements="str", required=True))


class ActionModule(LocalAsyncAction):
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(NormalAction, self).run(tmp, task_vars)  # pylint: disable=bad-super-call
        _spec, args = self.validate_argument_spec(argument_spec=ARGS)
        result.update(changed=False, preloaded=[])
        roots = {}
        for name in args["modules"]:
            where = self._import_name(name)
            if not where:
                msg = "job_host_start: modules: %r is not a module of an installed collection" % name
                result.update(failed=True, msg=msg + " (only collection modules run in the job host)")
                return result
            roots.setdefault(where[0], []).append(where[1])
        interpreter = self._direct_interpreter(task_vars)
        if not interpreter:
            result["msg"] = ("the background jobs of this task's host do not run in a job host (it needs a local "
                             "connection, no become, no environment and an absolute ansible_python_interpreter): "
                             "nothing to start")
            return result
        async_dir = self._async_dir()
        for root, names in roots.items():
            if preload_host(async_dir, module_env(root), interpreter, names):
                result["preloaded"].extend(names)
        return result
