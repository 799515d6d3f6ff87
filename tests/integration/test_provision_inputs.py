"""Bad inputs stop playbooks/provision.yml early with a message naming the variable to fix.

Every case runs the real playbook against one moto_server (the runs go in parallel, each with its own
cluster name); afterwards moto must hold no VPC and no instance: nothing was created before the stop.
A valid configuration in check mode against the same empty account succeeds and creates nothing either.
"""

import concurrent.futures
import subprocess

import pytest

from tests.integration.moto_harness import MotoServer, run_playbook

MOTO_AMI_VARS = {
    "ec2_nodes_ami_owners": ["137112412989"],
    "ec2_nodes_ami_name_pattern": "al2022-ami-2022.0.*-kernel-5.15-*",
}
ARM64_AMI = "ami-0e9271c829888680e"  # moto's al2022 arm64 image

# case id -> (overrides (None = drop the variable), expected message fragment)
CASES = {
    "missing_admin_cidr": (
        {"kubeadm_ec2_admin_cidr": None},
        "Stop: ec2_network_admin_cidr is not set. Set kubeadm_ec2_admin_cidr (or ec2_network_admin_cidr)",
    ),
    "bad_admin_cidr": (
        {"kubeadm_ec2_admin_cidr": "203.0.113.300/32"},
        "Stop: ec2_network_admin_cidr (kubeadm_ec2_admin_cidr) = '203.0.113.300/32' is not a valid IPv4 CIDR",
    ),
    "bad_vpc_cidr": (
        {"ec2_network_vpc_cidr": "10.42.0.0/40"},
        "Stop: ec2_network_vpc_cidr = '10.42.0.0/40' is not a valid IPv4 CIDR",
    ),
    "bad_subnet_cidr": (
        {"ec2_network_subnets": [{"cidr": "10.42.1/24"}]},
        "Stop: ec2_network_subnets[].cidr = '10.42.1/24' is not a valid IPv4 CIDR",
    ),
    "bad_nodeport_cidr": (
        {"ec2_network_nodeport_cidrs": ["anywhere"]},
        "Stop: ec2_network_nodeport_cidrs[] = 'anywhere' is not a valid IPv4 CIDR",
    ),
    "empty_egress": (
        {"ec2_network_egress_cidrs": []},
        "Stop: ec2_network_egress_cidrs is empty; the nodes need egress (at least tcp 443",
    ),
    "worker_count_zero": (
        {"ec2_nodes_worker_count": 0},
        "Stop: ec2_nodes_worker_count is 0; it must be at least 1",
    ),
    "control_plane_count_zero": (
        {"ec2_nodes_control_plane_count": 0},
        "Stop: ec2_nodes_control_plane_count is 0; it must be at least 1",
    ),
    "unknown_arch": (
        {"ec2_nodes_worker_arch": "sparc"},
        "value of ec2_nodes_worker_arch must be one of: amd64, arm64, got: sparc",
    ),
    "instance_type_arch_mismatch": (
        {"ec2_nodes_worker_instance_type": "t4g.medium", "ec2_nodes_worker_arch": "amd64"},
        "Stop: ec2_nodes_worker_instance_type t4g.medium is arm64, but ec2_nodes_worker_arch is amd64. "
        "Set ec2_nodes_worker_arch to arm64 or pick a amd64 instance type",
    ),
    "pinned_ami_arch_mismatch": (
        {"ec2_nodes_control_plane_ami_id": ARM64_AMI},
        "Stop: pinned AMI %s (ec2_nodes_control_plane_ami_id) is arm64, but ec2_nodes_control_plane_arch is amd64"
        % ARM64_AMI,
    ),
    "unknown_instance_type": (
        {"ec2_nodes_control_plane_instance_type": "t9.colossal"},
        "unknown EC2 instance type",
    ),
    "missing_public_key": (
        {"ec2_nodes_ssh_public_key_file": "/nonexistent/id.pub"},
        "Stop: no SSH public key for the key pair",
    ),
}


# A valid configuration run in check mode against the empty account: succeeds, creates nothing.
CHECK_MODE_CASE = "check_mode_on_empty_account"


@pytest.fixture(scope="module")
def moto():
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def results(moto, tmp_path_factory):
    keydir = tmp_path_factory.mktemp("key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keydir / "id")], check=True)

    def one(case):
        overrides, _msg = CASES.get(case, ({}, None))
        extra = dict(
            MOTO_AMI_VARS,
            kubeadm_ec2_cluster_name="bad-" + case.replace("_", "-"),
            kubeadm_ec2_admin_cidr="203.0.113.7/32",
            ec2_nodes_ssh_public_key_file=str(keydir / "id.pub"),
        )
        for key, value in overrides.items():
            if value is None:
                extra.pop(key, None)
            else:
                extra[key] = value
        return run_playbook("playbooks/provision.yml", moto, extra_vars=extra, timeout=600,
                            check=case == CHECK_MODE_CASE)

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = {case: pool.submit(one, case) for case in list(CASES) + [CHECK_MODE_CASE]}
        return {case: fut.result() for case, fut in futures.items()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_stops_with_clear_message(results, case):
    result = results[case]
    expected = CASES[case][1]
    assert result.returncode != 0, result
    assert any(expected in msg for msg in result.failed_messages()), result.failed_messages()


def test_check_mode_on_empty_account_succeeds(results):
    result = results[CHECK_MODE_CASE]
    assert result.returncode == 0, result
    assert "Ensure the VPC" in result.changed_tasks()


def test_nothing_was_created(moto, results):
    ec2 = moto.client("ec2")
    tag_filter = [{"Name": "tag-key", "Values": ["kubeadm_ec2/cluster"]}]
    assert ec2.describe_vpcs(Filters=tag_filter)["Vpcs"] == []
    assert ec2.describe_security_groups(Filters=tag_filter)["SecurityGroups"] == []
    assert ec2.describe_key_pairs()["KeyPairs"] == []
    reservations = ec2.describe_instances()["Reservations"]
    assert [i["InstanceId"] for r in reservations for i in r["Instances"]] == []
