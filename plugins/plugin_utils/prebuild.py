# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build modules into ansible-core's module cache ahead of the task that runs them.

ansible-playbook builds a module's payload (the module and every module_util it imports, found by
compiling them) once per run, under a lock in its local temp directory, the first time a task runs
the module; every other worker waits for that lock. For the node task of validate.yml that is about
0.2 s on the critical path of every node, in every run. ``prebuild`` builds it in a forked child while
play 1 goes on, so play 2's workers find it built. It never fails the task: a child that cannot
build leaves the work to the first worker, as without it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os


def prebuild(action, names, task_vars):
    """Fork a child that builds ``names`` (module names) into the module cache; returns its pid or 0.

    The child writes nothing to the worker's result queue or terminal (its stdio goes to /dev/null and
    display has no queue) and ends with os._exit, so it shares nothing with the worker it came from."""
    names = [n for n in names or [] if n]
    if not names:
        return 0
    try:
        pid = os.fork()
    except OSError:
        return 0
    if pid:
        return pid
    try:  # the child
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        from ansible.utils.display import Display

        Display()._final_q = None
        for name in names:
            try:
                action._configure_module(name, {}, task_vars)
            except Exception:  # pylint: disable=broad-except  # the worker builds it then
                pass
    finally:
        os._exit(0)
