"""Provisioning (site.yml / playbooks/provision.yml) and teardown against moto's EC2 server.

The first run goes through site.yml --tags provision (once playbooks/install.yml and validate.yml exist;
before that through playbooks/provision.yml), the later ones through playbooks/provision.yml.

One moto_server for the module; the tests run in file order: provision, inspect with boto3,
idempotence, check mode, SG rule removal/re-adding, inventory, teardown twice.
"""

import os
import subprocess
import json

import pytest

from tests.integration.moto_harness import REPO_ROOT, MotoServer, run_playbook

CLUSTER = "itest"
ADMIN_CIDR = "203.0.113.7/32"
OTHER_CIDR = "198.51.100.0/24"
TAG = "kubeadm_ec2/cluster"

# moto ships these public AMIs: al2022 for x86_64 (2 images) and arm64 (1 image).
MOTO_AMI_VARS = {
    "ec2_nodes_ami_owners": ["137112412989"],
    "ec2_nodes_ami_name_pattern": "al2022-ami-2022.0.*-kernel-5.15-*",
}


def _playbook():
    """site.yml when the other parts exist (run with --tags provision), else provision.yml directly."""
    if all(os.path.exists(os.path.join(REPO_ROOT, p)) for p in ("playbooks/install.yml", "playbooks/validate.yml")):
        return "site.yml", ["--tags", "provision"]
    return "playbooks/provision.yml", []


@pytest.fixture(scope="module")
def moto():
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def ec2(moto):
    return moto.client("ec2")


@pytest.fixture(scope="module")
def base_vars(tmp_path_factory):
    keydir = tmp_path_factory.mktemp("key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keydir / "id")], check=True)
    return dict(
        MOTO_AMI_VARS,
        kubeadm_ec2_cluster_name=CLUSTER,
        kubeadm_ec2_admin_cidr=ADMIN_CIDR,
        ec2_nodes_ssh_public_key_file=str(keydir / "id.pub"),
        ec2_nodes_control_plane_instance_type="t3.medium",
        ec2_nodes_control_plane_arch="amd64",
        ec2_nodes_worker_instance_type="t4g.medium",
        ec2_nodes_worker_arch="arm64",
        ec2_network_sg_extra_rules=[
            {"proto": "udp", "ports": [4789], "cidr_ip": "10.42.0.0/16", "rule_desc": "Calico VXLAN (seed rule)"}
        ],
    )


def provision(moto, base_vars, check=False, via_site=False, **overrides):
    playbook, args = _playbook() if via_site else ("playbooks/provision.yml", [])
    return run_playbook(playbook, moto, extra_vars=dict(base_vars, **overrides), check=check, args=args)


def tagged(filters_extra=None):
    return [{"Name": "tag:" + TAG, "Values": [CLUSTER]}] + list(filters_extra or [])


def cluster_instances(ec2, states=("pending", "running", "stopping", "stopped")):
    resp = ec2.describe_instances(Filters=tagged([{"Name": "instance-state-name", "Values": list(states)}]))
    return [i for r in resp["Reservations"] for i in r["Instances"]]


def tags_of(resource):
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def node_sg(ec2):
    groups = ec2.describe_security_groups(Filters=tagged())["SecurityGroups"]
    assert len(groups) == 1, groups
    return groups[0]


def has_self_reference(sg):
    return any(
        perm["IpProtocol"] == "-1" and any(p.get("GroupId") == sg["GroupId"] for p in perm.get("UserIdGroupPairs", []))
        for perm in sg["IpPermissions"]
    )


def perms_for_port(sg, proto, port):
    return [
        p for p in sg["IpPermissions"]
        if p["IpProtocol"] == proto and p.get("FromPort") == port
    ]


@pytest.fixture(scope="module")
def first_run(moto, base_vars):
    # A bystander VPC that is not ours: teardown must leave it alone.
    client = moto.client("ec2")
    other = client.create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    client.create_tags(Resources=[other], Tags=[{"Key": TAG, "Value": "someone-else"}])
    result = provision(moto, base_vars, via_site=True)
    assert result.returncode == 0 and result.failures() == 0, result
    return {"result": result, "bystander_vpc": other}


def test_first_run_changes_something(first_run):
    result = first_run["result"]
    assert result.changed() > 0, result
    assert "Enforce the number of instances per node group (matched by cluster and role tags)" in result.changed_tasks()


def test_vpc_subnet_igw_routes(ec2, first_run):
    vpcs = ec2.describe_vpcs(Filters=tagged())["Vpcs"]
    assert [v["CidrBlock"] for v in vpcs] == ["10.42.0.0/16"]
    vpc_id = vpcs[0]["VpcId"]
    subnets = ec2.describe_subnets(Filters=tagged())["Subnets"]
    assert [(s["VpcId"], s["CidrBlock"]) for s in subnets] == [(vpc_id, "10.42.1.0/24")]
    assert subnets[0]["MapPublicIpOnLaunch"] is True
    igws = ec2.describe_internet_gateways(Filters=tagged())["InternetGateways"]
    assert len(igws) == 1
    assert [a["VpcId"] for a in igws[0]["Attachments"]] == [vpc_id]
    tables = ec2.describe_route_tables(Filters=tagged())["RouteTables"]
    assert len(tables) == 1
    routes = {r.get("DestinationCidrBlock"): r.get("GatewayId") for r in tables[0]["Routes"]}
    assert routes["0.0.0.0/0"] == igws[0]["InternetGatewayId"]
    assert [a["SubnetId"] for a in tables[0]["Associations"] if a.get("SubnetId")] == [subnets[0]["SubnetId"]]


def test_security_group_rules(ec2, first_run):
    sg = node_sg(ec2)
    # self-referencing all-traffic rule: UserIdGroupPairs with its own GroupId
    assert has_self_reference(sg), sg["IpPermissions"]
    for port in (22, 6443):
        perms = perms_for_port(sg, "tcp", port)
        assert len(perms) == 1, perms
        assert perms[0]["ToPort"] == port
        assert [r["CidrIp"] for r in perms[0]["IpRanges"]] == [ADMIN_CIDR]
        assert not perms[0].get("UserIdGroupPairs")
    # nothing is open to the world, no NodePort rule by default
    for perm in sg["IpPermissions"]:
        assert "0.0.0.0/0" not in [r["CidrIp"] for r in perm.get("IpRanges", [])], perm
    assert not perms_for_port(sg, "tcp", 30000)
    # the seed-style extra rule
    vxlan = perms_for_port(sg, "udp", 4789)
    assert [r["CidrIp"] for r in vxlan[0]["IpRanges"]] == ["10.42.0.0/16"]
    # egress all (tcp 443 included)
    assert any(
        p["IpProtocol"] == "-1" and "0.0.0.0/0" in [r["CidrIp"] for r in p.get("IpRanges", [])]
        for p in sg["IpPermissionsEgress"]
    ), sg["IpPermissionsEgress"]


def test_instances(ec2, first_run):
    instances = cluster_instances(ec2)
    roles = sorted(tags_of(i)["kubeadm_ec2/role"] for i in instances)
    assert roles == ["control-plane", "worker", "worker"]
    sg_id = node_sg(ec2)["GroupId"]
    subnet_id = ec2.describe_subnets(Filters=tagged())["Subnets"][0]["SubnetId"]
    for inst in instances:
        tags = tags_of(inst)
        assert tags[TAG] == CLUSTER
        assert tags["Name"] == "%s-%s" % (CLUSTER, tags["kubeadm_ec2/role"])
        assert inst["MetadataOptions"]["HttpTokens"] == "required"
        assert inst["MetadataOptions"]["HttpEndpoint"] == "enabled"
        assert inst["KeyName"] == CLUSTER + "-key"
        assert inst["SubnetId"] == subnet_id
        assert [g["GroupId"] for g in inst["SecurityGroups"]] == [sg_id]
        attr = ec2.describe_instance_attribute(InstanceId=inst["InstanceId"], Attribute="sourceDestCheck")
        assert attr["SourceDestCheck"]["Value"] is False
        assert inst.get("SourceDestCheck") is False
        root = [m for m in inst["BlockDeviceMappings"] if m["DeviceName"] == inst["RootDeviceName"]]
        assert root, inst["BlockDeviceMappings"]
        vol = ec2.describe_volumes(VolumeIds=[root[0]["Ebs"]["VolumeId"]])["Volumes"][0]
        assert vol["Encrypted"] is True
        assert vol["VolumeType"] == "gp3"
        image = ec2.describe_images(ImageIds=[inst["ImageId"]])["Images"][0]
        if tags["kubeadm_ec2/role"] == "worker":
            assert inst["InstanceType"] == "t4g.medium"
            assert image["Architecture"] == "arm64"
        else:
            assert inst["InstanceType"] == "t3.medium"
            assert image["Architecture"] == "x86_64"


def test_key_pair_imported(ec2, first_run):
    keys = ec2.describe_key_pairs(Filters=tagged())["KeyPairs"]
    assert [k["KeyName"] for k in keys] == [CLUSTER + "-key"]


def test_second_run_changes_nothing(moto, ec2, base_vars, first_run):
    before = sorted(i["InstanceId"] for i in cluster_instances(ec2))
    result = provision(moto, base_vars)
    assert result.returncode == 0, result
    assert result.changed() == 0, result.changed_tasks()
    assert result.changed_tasks() == []
    assert sorted(i["InstanceId"] for i in cluster_instances(ec2)) == before
    assert len(ec2.describe_vpcs(Filters=tagged())["Vpcs"]) == 1


def test_check_mode_changes_nothing(moto, ec2, base_vars, first_run):
    """Check mode with pending changes (drop self-ref, one more worker) reports them but changes nothing."""
    before_ids = sorted(i["InstanceId"] for i in cluster_instances(ec2))
    before_sg = node_sg(ec2)
    result = provision(moto, base_vars, check=True, ec2_network_sg_self_reference=False, ec2_nodes_worker_count=3)
    assert result.returncode == 0, result
    changed = result.changed_tasks()
    assert "Ensure the node security group" in changed
    assert "Enforce the number of instances per node group (matched by cluster and role tags)" in changed
    assert sorted(i["InstanceId"] for i in cluster_instances(ec2)) == before_ids
    after_sg = node_sg(ec2)
    assert has_self_reference(after_sg)
    assert after_sg["IpPermissions"] == before_sg["IpPermissions"]


def test_self_reference_can_be_removed_and_added_back(moto, ec2, base_vars, first_run):
    """ec2_network_sg_self_reference=false removes the rule (the seeds' broken SG); true adds it back."""
    instances_before = sorted(i["InstanceId"] for i in cluster_instances(ec2))
    result = provision(moto, base_vars, ec2_network_sg_self_reference=False, ec2_network_nodeport_cidrs=[OTHER_CIDR])
    assert result.returncode == 0, result
    assert result.changed_tasks() == ["Ensure the node security group"]
    sg = node_sg(ec2)
    assert not has_self_reference(sg), sg["IpPermissions"]
    nodeports = perms_for_port(sg, "tcp", 30000)
    assert len(nodeports) == 1 and nodeports[0]["ToPort"] == 32767
    assert [r["CidrIp"] for r in nodeports[0]["IpRanges"]] == [OTHER_CIDR]
    assert perms_for_port(sg, "tcp", 22)  # the rest stays

    result = provision(moto, base_vars)
    assert result.returncode == 0, result
    assert result.changed_tasks() == ["Ensure the node security group"]
    sg = node_sg(ec2)
    assert has_self_reference(sg)
    assert not perms_for_port(sg, "tcp", 30000)
    assert sorted(i["InstanceId"] for i in cluster_instances(ec2)) == instances_before


def test_aws_inventory_groups(moto, first_run):
    """inventories/aws (amazon.aws.aws_ec2) groups the nodes as the inventory contract says."""
    env = moto.env(with_endpoint=True)
    env.update({"KUBEADM_EC2_CLUSTER_NAME": CLUSTER, "KUBEADM_EC2_REGION": moto.region,
                "ANSIBLE_CONFIG": os.path.join(REPO_ROOT, "ansible.cfg")})
    bindir = os.path.dirname(__import__("sys").executable)
    proc = subprocess.run(
        [os.path.join(bindir, "ansible-inventory"), "-i", "inventories/aws", "--list"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    inv = json.loads(proc.stdout, object_hook=lambda d: d.get("__ansible_unsafe", d) if len(d) == 1 else d)
    assert sorted(inv["k8s_cluster"]["children"]) == ["control_plane", "workers"]
    assert len(inv["control_plane"]["hosts"]) == 1
    assert len(inv["workers"]["hosts"]) == 2
    hostvars = inv["_meta"]["hostvars"]
    for host in inv["control_plane"]["hosts"]:
        assert hostvars[host]["kubeadm_ec2_arch"] == "amd64"
    for host in inv["workers"]["hosts"]:
        assert hostvars[host]["kubeadm_ec2_arch"] == "arm64"
    for host in inv["control_plane"]["hosts"] + inv["workers"]["hosts"]:
        assert hostvars[host]["kubeadm_ec2_cluster_name"] == CLUSTER
        assert hostvars[host]["private_ip_address"].startswith("10.42.1.")


def test_teardown_removes_every_tagged_resource(moto, ec2, first_run):
    root_volumes = [
        m["Ebs"]["VolumeId"] for i in cluster_instances(ec2) for m in i["BlockDeviceMappings"]
    ]
    assert len(root_volumes) == 3
    result = run_playbook("playbooks/teardown.yml", moto, extra_vars={"kubeadm_ec2_cluster_name": CLUSTER})
    assert result.returncode == 0, result
    assert result.changed() > 0
    assert cluster_instances(ec2) == []
    assert ec2.describe_vpcs(Filters=tagged())["Vpcs"] == []
    assert ec2.describe_subnets(Filters=tagged())["Subnets"] == []
    assert ec2.describe_internet_gateways(Filters=tagged())["InternetGateways"] == []
    assert ec2.describe_route_tables(Filters=tagged())["RouteTables"] == []
    assert ec2.describe_security_groups(Filters=tagged())["SecurityGroups"] == []
    assert ec2.describe_key_pairs(Filters=tagged())["KeyPairs"] == []
    assert ec2.describe_volumes(Filters=tagged())["Volumes"] == []
    assert ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": root_volumes}])["Volumes"] == []
    # the other cluster's VPC is still there
    assert [v["VpcId"] for v in ec2.describe_vpcs(VpcIds=[first_run["bystander_vpc"]])["Vpcs"]] == [
        first_run["bystander_vpc"]
    ]


def test_second_teardown_is_a_noop(moto, first_run):
    result = run_playbook("playbooks/teardown.yml", moto, extra_vars={"kubeadm_ec2_cluster_name": CLUSTER})
    assert result.returncode == 0, result
    assert result.changed() == 0, result.changed_tasks()
