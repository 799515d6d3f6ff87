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
    "even_control_plane_count": (
        {"kubeadm_ec2_control_plane_count": 2},
        "Stop: ec2_nodes_control_plane_count (kubeadm_ec2_control_plane_count) is 2; it must be odd (1, 3, 5)",
    ),
    "even_control_plane_count_role_var": (
        {"ec2_nodes_control_plane_count": 4},
        "Stop: ec2_nodes_control_plane_count (kubeadm_ec2_control_plane_count) is 4; it must be odd",
    ),
    "more_zones_than_the_region_has": (
        # moto's us-west-1 has two zones, like the real one
        {"kubeadm_ec2_region": "us-west-1", "ec2_network_az_count": 3},
        "Stop: ec2_network_az_count is 3 but region us-west-1 has only 2 available zone(s) (us-west-1a, us-west-1b)",
    ),
    "az_count_out_of_range": (
        {"ec2_network_az_count": 4},
        "Stop: ec2_network_az_count is 4; it must be 1, 2 or 3",
    ),
    "unknown_zone": (
        {"ec2_network_azs": ["us-east-1a", "mars-1a"]},
        "Stop: ec2_network_azs contains 'mars-1a', which is not an available zone of region us-east-1",
    ),
    "subnet_cidr_outside_vpc": (
        {"ec2_network_subnet_cidrs": ["10.42.1.0/24", "10.43.2.0/24"]},
        "Stop: ec2_network_subnet_cidrs[] = '10.43.2.0/24' lies outside the VPC (ec2_network_vpc_cidr = '10.42.0.0/16')",
    ),
    "explicit_subnet_outside_vpc": (
        {"ec2_network_subnets": [{"cidr": "10.42.1.0/24"}, {"cidr": "192.168.1.0/24"}]},
        "Stop: ec2_network_subnets[].cidr = '192.168.1.0/24' lies outside the VPC",
    ),
    "subnet_wider_than_vpc": (
        {"ec2_network_subnets": [{"cidr": "10.0.0.0/8"}]},
        "Stop: ec2_network_subnets[].cidr = '10.0.0.0/8' lies outside the VPC",
    ),
    "admin_cidr_whole_internet": (
        {"kubeadm_ec2_admin_cidr": "0.0.0.0/0"},
        "Stop: ec2_network_admin_cidr (kubeadm_ec2_admin_cidr) is 0.0.0.0/0, which opens SSH 22 and the Kubernetes "
        "API 6443 to the whole internet",
    ),
    "load_balancer_name_too_long": (
        {"kubeadm_ec2_cluster_name": "a-cluster-name-of-thirty-chars", "kubeadm_ec2_control_plane_count": 3},
        "Stop: ec2_nodes_api_lb_name 'a-cluster-name-of-thirty-chars-api' (from kubeadm_ec2_cluster_name) is not a "
        "valid load balancer / target group name",
    ),
}


# Valid configurations run in check mode against the empty account: they succeed and create nothing.
CHECK_CASES = {
    "check_mode_on_empty_account": {},
    "ha_check_mode_on_empty_account": {"kubeadm_ec2_control_plane_count": 3, "ec2_network_az_count": 3,
                                       "kubeadm_ec2_cluster_name": "ha-check"},
    "admin_cidr_whole_internet_with_opt_in": {
        "kubeadm_ec2_admin_cidr": "0.0.0.0/0",
        "kubeadm_ec2_admin_cidr_allow_world": True,
    },
}


@pytest.fixture(scope="module")
def moto():
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def results(moto, tmp_path_factory):
    keydir = tmp_path_factory.mktemp("key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keydir / "id")], check=True)

    def one(case):
        overrides = CASES[case][0] if case in CASES else CHECK_CASES[case]
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
                            check=case in CHECK_CASES)

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = {case: pool.submit(one, case) for case in list(CASES) + list(CHECK_CASES)}
        return {case: fut.result() for case, fut in futures.items()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_stops_with_clear_message(results, case):
    result = results[case]
    expected = CASES[case][1]
    assert result.returncode != 0, result
    assert any(expected in msg for msg in result.failed_messages()), result.failed_messages()


@pytest.mark.parametrize("case", sorted(CHECK_CASES))
def test_check_mode_on_empty_account_succeeds(results, case):
    result = results[case]
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
    assert moto.client("elbv2").describe_load_balancers()["LoadBalancers"] == []
    assert moto.client("elbv2").describe_target_groups()["TargetGroups"] == []
