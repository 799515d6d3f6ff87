"""roles/cluster_defaults seen through real ansible-playbook runs (ansible-core 2.19): a meta dependency's
defaults are visible to the dependent role however it is used, the derived values follow their inputs, bad
input stops with the variable's name, and old names are still read (with a deprecation line)."""

import os

import pytest

from tests.integration.moto_harness import REPO_ROOT, run_playbook

PLAYBOOK = os.path.join(REPO_ROOT, "tests", "integration", "playbooks", "contract", "site.yml")
WAYS = ["roles", "import_role", "include_role", "include_role_tasks_from"]


def _seen(result):
    for name, _host, res in result.task_results():
        if name == "Show what was seen":
            return res["contract_probe_seen"]
    raise AssertionError(result)


def test_defaults_of_the_dependency_are_visible_every_way():
    result = run_playbook(PLAYBOOK)
    assert result.returncode == 0, result
    seen = _seen(result)
    assert sorted(seen) == sorted(WAYS)
    for how in WAYS:
        assert seen[how]["dns_ip"] == "10.96.0.10", how
        assert seen[how]["pod_cidr"] == "192.168.0.0/16", how
        assert seen[how]["group"] == "control_plane", how
        assert seen[how]["mode"] == "IPIP", how
        # the localhost-only inventory file lives in a temporary directory: the kubeconfig is anchored there
        assert seen[how]["kubeconfig"].endswith("/artifacts/kubeadm-ec2-admin.conf"), seen[how]
    # the contract's checks ran once per run (two plays, five roles that depend on it)
    asserts = [n for n, _h, r in result.task_results()
               if n.endswith("Check the cluster-wide contract (stops naming the variable to fix)") and not r.get("skipped")]
    assert len(asserts) == 1, asserts


def test_inputs_and_old_names_flow_through():
    result = run_playbook(PLAYBOOK, extra_vars={"kubeadm_ec2_service_cidr": "172.20.0.0/16",
                                                "kubeadm_pod_subnet": "10.244.0.0/16",
                                                "calico_encapsulation": "VXLANCrossSubnet"})
    assert result.returncode == 0, result
    for how, values in _seen(result).items():
        assert (values["dns_ip"], values["pod_cidr"], values["mode"]) == \
            ("172.20.0.10", "10.244.0.0/16", "VXLANCrossSubnet"), how
    deprecations = [w for n, _h, r in result.task_results()
                    if n.endswith("Check the cluster-wide contract (stops naming the variable to fix)")
                    for w in r.get("warnings") or []]
    assert deprecations and all("DEPRECATED" in m and "calico_encapsulation, kubeadm_pod_subnet" in m
                                for m in deprecations), deprecations


@pytest.mark.parametrize("extra, variable", [
    ({"kubeadm_ec2_pod_cidr": "10.96.0.0/16"}, "kubeadm_ec2_pod_cidr"),
    ({"kubeadm_ec2_calico_encapsulation": "vxlan"}, "kubeadm_ec2_calico_encapsulation"),
    ({"kubeadm_ec2_service_cidr": "10.96.0.0"}, "kubeadm_ec2_service_cidr"),
])
def test_bad_input_stops_early_naming_the_variable(extra, variable):
    result = run_playbook(PLAYBOOK, extra_vars=extra)
    assert result.returncode != 0
    messages = result.failed_messages()
    assert messages and variable in messages[0], messages
    assert "Show what was seen" not in [n for n, _h, _r in result.task_results()]
