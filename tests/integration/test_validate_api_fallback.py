"""Role validate_api on the lab: when the controller cannot reach the API, the Kubernetes reads move to the
first control plane if it has the admin kubeconfig (validate_api_admin_conf), and stay on the controller,
with API_UNREACHABLE, if it has none. Both through the one run of validate.yml."""

import pytest

from tests.lab.netlab import HEALTHY_SG
from tests.lab.validatelab import ValidateLab

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def vlab():
    with ValidateLab(3, sg=HEALTHY_SG, with_ec2=False, with_registry=False) as lab:
        yield lab


def run(vlab, tmp_path, admin_conf):
    missing = str(tmp_path / "no-kubeconfig")
    rc, report, wall, out = vlab.validate(extra_vars={
        "validate_checks": ["dns"], "validate_dns_kubeconfig": missing, "validate_api_admin_conf": admin_conf,
        # the lab runs as root over the local connection: no sudo on the first control plane
        "validate_api_become": False, "validate_dns_probe_timeout": 10})
    # the callback wraps long messages: compare with the whitespace folded
    return rc, report, wall, " ".join(out.split())


def test_reads_move_to_the_first_control_plane_with_admin_conf(vlab, tmp_path):
    admin_conf = vlab.api.write_kubeconfig(str(tmp_path / "admin.conf"))
    rc, report, _wall, out = run(vlab, tmp_path, admin_conf)
    assert report is not None, out[-3000:]
    assert "the Kubernetes reads run on node1 with %s" % admin_conf in out, out[-3000:]
    # the reads ran on node1 (delegated, through ansible-core's async) and the report waited for them there
    assert "ok: [localhost -> node1] => (item=dns_pods)" in out, out[-3000:]
    assert "API_UNREACHABLE" not in [f["id"] for f in report["checks"]["dns"]["findings"]]


def test_without_admin_conf_the_checks_report_the_api_unreachable(vlab, tmp_path):
    rc, report, _wall, out = run(vlab, tmp_path, str(tmp_path / "none.conf"))
    assert rc != 0 and report is not None, out[-3000:]
    assert "not found on node1: the checks that need the API report API_UNREACHABLE" in out, out[-3000:]
    assert [f["id"] for f in report["checks"]["dns"]["findings"]] == ["API_UNREACHABLE"]
