"""validate_record's prebuild (plugins/plugin_utils/prebuild.py): ansible-core's module cache holds the
node task's module before any task ran it, and a name that is no module never fails the task."""

import os

from tests.support.ansible import localhost_inventory, run_playbook


def cached(tmp_path, prebuild, wait_s):
    local_temp = str(tmp_path / "local")
    result = run_playbook("prebuild.yml", localhost_inventory(), extra_vars={"prebuild": prebuild, "local_temp": local_temp, "wait_s": wait_s},
                          env={"ANSIBLE_LOCAL_TEMP": local_temp}, timeout=120)
    assert result.returncode == 0, result.output[-3000:]
    found = result.results_of("Look for the built module in the module cache (bounded)")["localhost"]
    return [os.path.basename(f["path"]) for f in found["files"] if not f["path"].endswith(("-part", ".lock"))]


def test_prebuild_puts_node_probe_in_the_module_cache(tmp_path):
    names = cached(tmp_path, ["kubeadm_ec2.cluster.node_probe"], wait_s=20)
    assert [n.split("-")[0] for n in names] == ["ansible_collections.kubeadm_ec2.cluster.plugins.modules.node_probe"], names


def test_without_prebuild_nothing_is_built_and_a_bad_name_does_not_fail(tmp_path):
    assert cached(tmp_path, [], wait_s=2) == []
    assert cached(tmp_path, ["kubeadm_ec2.cluster.no_such_module"], wait_s=2) == []
