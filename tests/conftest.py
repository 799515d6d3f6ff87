"""Shared pytest setup: make the collection importable as ansible_collections.kubeadm_ec2.cluster."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".collections")
LINK = os.path.join(COLLECTIONS, "ansible_collections", "kubeadm_ec2", "cluster")

if not os.path.exists(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink("../../..", LINK)
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)

# ansible-core's collection loader (as ansible-playbook installs it), so that in-process templating
# (tests/unit/roles/_render.py) finds the collection's filters by FQCN and imports resolve the same way.
from ansible.plugins.loader import init_plugin_loader  # noqa: E402
from ansible.utils.collection_loader import AnsibleCollectionConfig  # noqa: E402

if not AnsibleCollectionConfig.collection_finder:
    init_plugin_loader([COLLECTIONS])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# a killed run (SIGTERM) still stops its labs and servers: pytest's runs and the bench scripts, which import this
from tests.support.lifecycle import stop_on_sigterm  # noqa: E402

stop_on_sigterm()


def pytest_configure(config):
    """tmp_path lives in a private directory with a random name (pytest's default is the predictable
    /tmp/pytest-of-USER); removed at the end of the session. An explicit --basetemp wins."""
    if not config.option.basetemp:
        import tempfile

        config.option.basetemp = tempfile.mkdtemp(prefix="kec2-pytest-")
        config._kec2_basetemp = config.option.basetemp


def pytest_unconfigure(config):
    path = getattr(config, "_kec2_basetemp", None)
    if path:
        import shutil

        shutil.rmtree(path, ignore_errors=True)
