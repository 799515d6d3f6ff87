"""The image check's playbook runner: tests/integration/playbooks/image_arch_check.yml over cases,
through the one ansible-playbook runner (tests/support/ansible.py)."""

import json
import os
import shutil
import sys

from tests.support.ansible import run_playbook as _run
from tests.support.lifecycle import private_dir


def run_cases(cases, tmp_path=None, timeout=180):
    """Run playbooks/image_arch_check.yml over cases (dicts of module options, optional check_mode).

    Returns (rc, output, [registered result per case])."""
    return run_playbook("image_arch_check.yml", {"image_check_cases": cases}, timeout=timeout)


def run_playbook(name, extra_vars, tmp_path=None, inventory="localhost,", check=False, timeout=120):
    """ansible-playbook with the human output; returns (rc, output, what the playbook wrote to
    ``image_check_out`` or None)."""
    tmp = private_dir("imgarch-out-")
    try:
        out = os.path.join(tmp, "result.json")
        extra = dict(extra_vars, image_check_out=out, ansible_python_interpreter=sys.executable)
        res = _run(name, inventory=inventory, extra_vars=extra, check=check, callback="default", timeout=timeout)
        result = None
        if os.path.exists(out):
            with open(out) as fh:
                result = json.load(fh)
        return res.returncode, res.output, result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
