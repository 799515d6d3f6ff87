"""node_prep: the containerd configuration rewrite and the fstab swap pattern."""

import re

import pytest

from tests.unit.roles._render import expr, role_vars, task_by_name

CONTAINERD_DEFAULT = """version = 2
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.6"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            ShimCgroup = ""
            SystemdCgroup = false
"""


def rendered_config(**overrides):
    task = task_by_name("node_prep", "containerd.yml", "Render node_prep containerd configuration")
    v = role_vars("node_prep", {}, overrides)
    v["node_prep_containerd_default"] = {"stdout": CONTAINERD_DEFAULT}
    return str(expr(task["ansible.builtin.set_fact"]["node_prep_containerd_config"], v)).strip("\n")


def test_systemd_cgroup_is_switched_on_keeping_the_indentation():
    out = rendered_config()
    assert "            SystemdCgroup = true" in out.splitlines()
    assert "SystemdCgroup = false" not in out
    assert "\x01" not in out
    assert '    sandbox_image = "registry.k8s.io/pause:3.6"' in out.splitlines()


def test_sandbox_image_override():
    out = rendered_config(node_prep_containerd_sandbox_image="registry.k8s.io/pause:3.10")
    assert '    sandbox_image = "registry.k8s.io/pause:3.10"' in out.splitlines()


@pytest.mark.parametrize("line, commented", [
    ("/swapfile none swap sw 0 0", True),
    ("UUID=abcd-1234 none swap sw,pri=5 0 0", True),
    ("/dev/xvdb   none   swap   defaults  0 0", True),
    ("# /swapfile none swap sw 0 0", False),
    ("/dev/vda / ext4 rw,errors=remount-ro 0 1", False),
])
def test_fstab_swap_pattern(line, commented):
    task = task_by_name("node_prep", "swap.yml", "Comment out swap entries in /etc/fstab")
    regexp = task["ansible.builtin.replace"]["regexp"]
    assert bool(re.search(regexp, line, re.M)) is commented
