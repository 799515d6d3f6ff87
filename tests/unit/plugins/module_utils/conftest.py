"""Every root cause any unit test builds must carry ONE fix command and ONE verify command."""

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import catalogue as cat
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import diagnosis as dg


@pytest.fixture(autouse=True)
def _causes_have_one_command(monkeypatch):
    real = dg._cause

    def checked(cid, title, confidence, refs, evidence, cli, role_var, verify):
        assert cat.is_one_command(cli), "cause %s: fix.cli is not one command: %r" % (cid, cli)
        assert cat.is_one_command(verify), "cause %s: verify is not one command: %r" % (cid, verify)
        return real(cid, title, confidence, refs, evidence, cli, role_var, verify)

    monkeypatch.setattr(dg, "_cause", checked)
