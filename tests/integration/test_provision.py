"""Provisioning (site.yml / playbooks/provision.yml) and teardown against moto's EC2 server.

The first run goes through site.yml --tags provision (once playbooks/install.yml and validate.yml exist;
before that through playbooks/provision.yml), the later ones through playbooks/provision.yml.

One moto_server for the module; the tests run in file order: provision an HA cluster (3 control
planes behind the API network load balancer, 2 workers, subnets in 2 zones), inspect it with boto3,
idempotence, check mode, SG rule removal/re-adding, inventory, scale-out, scale-in, teardown twice.
A second, single-control-plane cluster checks the endpoint without a load balancer.
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
        kubeadm_ec2_control_plane_count=3,
        ec2_nodes_ssh_public_key_file=str(keydir / "id.pub"),
        ec2_nodes_control_plane_instance_type="t3.medium",
        ec2_nodes_control_plane_arch="amd64",
        ec2_nodes_worker_instance_type="t4g.medium",
        ec2_nodes_worker_arch="arm64",
        ec2_network_sg_extra_rules=[
            {"proto": "udp", "ports": [4789], "cidr_ip": "10.42.0.0/16", "rule_desc": "Calico VXLAN (seed rule)"}
        ],
    )


INSTANCE_TASK = "Enforce the number of instances per node group and subnet (matched by cluster, role and subnet)"
API_RULES_TASK = "Allow the API port from the load balancer's subnets and, for an internet-facing one, from the nodes' public IPs"
ZONES = ["us-east-1a", "us-east-1b"]
SUBNET_CIDRS = ["10.42.1.0/24", "10.42.2.0/24"]


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
    groups = ec2.describe_security_groups(Filters=tagged([{"Name": "group-name", "Values": [CLUSTER + "-nodes"]}]))
    assert len(groups["SecurityGroups"]) == 1, groups
    return groups["SecurityGroups"][0]


def api_sg(ec2):
    groups = ec2.describe_security_groups(Filters=tagged([{"Name": "group-name", "Values": [CLUSTER + "-api"]}]))
    assert len(groups["SecurityGroups"]) == 1, groups
    return groups["SecurityGroups"][0]


def subnets_by_zone(ec2):
    return {s["AvailabilityZone"]: s for s in ec2.describe_subnets(Filters=tagged())["Subnets"]}


def facts_of(result, task):
    """ansible_facts set by the (last) run of a set_fact task."""
    found = [res.get("ansible_facts", {}) for name, _host, res in result.task_results() if name.endswith(task)]
    assert found, task
    return found[-1]


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
    other_tg = moto.client("elbv2").create_target_group(
        Name="someone-else-api", Protocol="TCP", Port=6443, VpcId=other, TargetType="instance",
        Tags=[{"Key": TAG, "Value": "someone-else"}])["TargetGroups"][0]["TargetGroupArn"]
    result = provision(moto, base_vars, via_site=True)
    assert result.returncode == 0 and result.failures() == 0, result
    return {"result": result, "bystander_vpc": other, "bystander_tg": other_tg}


def test_first_run_changes_something(first_run):
    result = first_run["result"]
    assert result.changed() > 0, result
    assert INSTANCE_TASK in result.changed_tasks()


def test_vpc_subnet_igw_routes(ec2, first_run):
    vpcs = ec2.describe_vpcs(Filters=tagged())["Vpcs"]
    assert [v["CidrBlock"] for v in vpcs] == ["10.42.0.0/16"]
    vpc_id = vpcs[0]["VpcId"]
    subnets = sorted(ec2.describe_subnets(Filters=tagged())["Subnets"], key=lambda s: s["CidrBlock"])
    # default: the region's first 2 zones, one subnet each
    assert [(s["VpcId"], s["CidrBlock"], s["AvailabilityZone"]) for s in subnets] == [
        (vpc_id, cidr, zone) for cidr, zone in zip(SUBNET_CIDRS, ZONES)]
    assert all(s["MapPublicIpOnLaunch"] is True for s in subnets)
    igws = ec2.describe_internet_gateways(Filters=tagged())["InternetGateways"]
    assert len(igws) == 1
    assert [a["VpcId"] for a in igws[0]["Attachments"]] == [vpc_id]
    tables = ec2.describe_route_tables(Filters=tagged())["RouteTables"]
    assert len(tables) == 1
    routes = {r.get("DestinationCidrBlock"): r.get("GatewayId") for r in tables[0]["Routes"]}
    assert routes["0.0.0.0/0"] == igws[0]["InternetGatewayId"]
    assert sorted(a["SubnetId"] for a in tables[0]["Associations"] if a.get("SubnetId")) == sorted(
        s["SubnetId"] for s in subnets)


def test_published_subnet_and_node_facts(ec2, first_run):
    facts = facts_of(first_run["result"], "Remember the subnets (ids, zones, CIDRs, in zone order) and the gateway id")
    by_zone = subnets_by_zone(ec2)
    assert facts["ec2_network_subnet_azs"] == ZONES
    assert facts["ec2_network_subnet_ids"] == [by_zone[z]["SubnetId"] for z in ZONES]
    assert facts["ec2_network_subnet_cidr_blocks"] == SUBNET_CIDRS
    nodes = facts_of(first_run["result"], "Remember the nodes, their roles and their subnets")
    instances = {i["InstanceId"]: i for i in cluster_instances(ec2)}
    assert sorted(nodes["ec2_nodes_instance_ids"]) == sorted(instances)
    assert nodes["ec2_nodes_instance_subnets"] == {i: inst["SubnetId"] for i, inst in instances.items()}
    assert nodes["ec2_nodes_instance_azs"] == {i: inst["Placement"]["AvailabilityZone"] for i, inst in instances.items()}
    assert sorted(nodes["ec2_nodes_control_plane_ids"]) == sorted(
        i for i, inst in instances.items() if tags_of(inst)["kubeadm_ec2/role"] == "control-plane")


def test_nodes_spread_round_robin_over_the_zones(ec2, first_run):
    """3 control planes over 2 zones: a, b, a; the workers go on from there: b, a."""
    zone_of = {s["SubnetId"]: z for z, s in subnets_by_zone(ec2).items()}
    spread = {}
    for inst in cluster_instances(ec2):
        role = tags_of(inst)["kubeadm_ec2/role"]
        spread.setdefault(role, {}).setdefault(zone_of[inst["SubnetId"]], 0)
        spread[role][zone_of[inst["SubnetId"]]] += 1
    assert spread == {"control-plane": {"us-east-1a": 2, "us-east-1b": 1}, "worker": {"us-east-1a": 1, "us-east-1b": 1}}


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
    assert roles == ["control-plane"] * 3 + ["worker"] * 2
    sg_id = node_sg(ec2)["GroupId"]
    api_sg_id = api_sg(ec2)["GroupId"]
    subnet_ids = [s["SubnetId"] for s in ec2.describe_subnets(Filters=tagged())["Subnets"]]
    for inst in instances:
        tags = tags_of(inst)
        assert tags[TAG] == CLUSTER
        assert tags["Name"] == "%s-%s" % (CLUSTER, tags["kubeadm_ec2/role"])
        assert inst["MetadataOptions"]["HttpTokens"] == "required"
        assert inst["MetadataOptions"]["HttpEndpoint"] == "enabled"
        assert inst["KeyName"] == CLUSTER + "-key"
        assert inst["SubnetId"] in subnet_ids
        # the control planes carry the API security group too
        expected_groups = [sg_id, api_sg_id] if tags["kubeadm_ec2/role"] == "control-plane" else [sg_id]
        assert sorted(g["GroupId"] for g in inst["SecurityGroups"]) == sorted(expected_groups)
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


def test_api_load_balancer(moto, ec2, first_run):
    """HA: an internet-facing NLB over both subnets, tcp 6443 to a target group of the control planes."""
    elb = moto.client("elbv2")
    lbs = elb.describe_load_balancers(Names=[CLUSTER + "-api"])["LoadBalancers"]
    assert len(lbs) == 1
    lb = lbs[0]
    assert (lb["Type"], lb["Scheme"]) == ("network", "internet-facing")
    assert sorted(z["SubnetId"] for z in lb["AvailabilityZones"]) == sorted(
        s["SubnetId"] for s in subnets_by_zone(ec2).values())
    tags = {t["Key"]: t["Value"] for t in elb.describe_tags(ResourceArns=[lb["LoadBalancerArn"]])["TagDescriptions"][0]["Tags"]}
    assert tags[TAG] == CLUSTER
    listeners = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    assert [(li["Protocol"], li["Port"]) for li in listeners] == [("TCP", 6443)]
    tg_arn = listeners[0]["DefaultActions"][0]["TargetGroupArn"]
    tg = elb.describe_target_groups(TargetGroupArns=[tg_arn])["TargetGroups"][0]
    assert (tg["TargetGroupName"], tg["Protocol"], tg["Port"], tg["TargetType"]) == (CLUSTER + "-api", "TCP", 6443, "instance")
    assert (tg["HealthCheckProtocol"], tg["HealthCheckPort"], tg["HealthCheckEnabled"]) == ("TCP", "6443", True)
    targets = elb.describe_target_health(TargetGroupArn=tg_arn)["TargetHealthDescriptions"]
    control_planes = [i["InstanceId"] for i in cluster_instances(ec2) if tags_of(i)["kubeadm_ec2/role"] == "control-plane"]
    assert sorted(t["Target"]["Id"] for t in targets) == sorted(control_planes)
    assert {t["Target"]["Port"] for t in targets} == {6443}


def test_api_reachable_only_from_admin_cidr_and_what_the_load_balancer_needs(ec2, first_run):
    """6443: admin_cidr (node SG); the NLB subnets (health checks) and the nodes' public IPs (API SG)."""
    perms = perms_for_port(node_sg(ec2), "tcp", 6443)
    assert [[r["CidrIp"] for r in p["IpRanges"]] for p in perms] == [[ADMIN_CIDR]]
    api = api_sg(ec2)
    sources = sorted(r["CidrIp"] for p in api["IpPermissions"] for r in p.get("IpRanges", []))
    public = sorted(i["PublicIpAddress"] + "/32" for i in cluster_instances(ec2))
    assert sources == sorted(SUBNET_CIDRS + public)
    for perm in api["IpPermissions"]:
        assert (perm["IpProtocol"], perm["FromPort"], perm["ToPort"]) == ("tcp", 6443, 6443), perm
        assert not perm.get("UserIdGroupPairs")


def test_published_api_endpoint(moto, first_run):
    lb = moto.client("elbv2").describe_load_balancers(Names=[CLUSTER + "-api"])["LoadBalancers"][0]
    facts = facts_of(first_run["result"], "Work out the API endpoint")
    assert facts == {
        "ec2_nodes_api_endpoint_kind": "nlb",
        "ec2_nodes_api_endpoint": lb["DNSName"],
        "ec2_nodes_api_server_url": "https://%s:6443" % lb["DNSName"],
        "ec2_nodes_control_plane_endpoint": "%s:6443" % lb["DNSName"],
        "ec2_nodes_api_cert_sans": [lb["DNSName"]],
    }


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
    assert INSTANCE_TASK in changed
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
    assert len(inv["control_plane"]["hosts"]) == 3
    assert len(inv["workers"]["hosts"]) == 2
    hostvars = inv["_meta"]["hostvars"]
    for host in inv["control_plane"]["hosts"]:
        assert hostvars[host]["kubeadm_ec2_arch"] == "amd64"
    for host in inv["workers"]["hosts"]:
        assert hostvars[host]["kubeadm_ec2_arch"] == "arm64"
    for host in inv["control_plane"]["hosts"] + inv["workers"]["hosts"]:
        assert hostvars[host]["kubeadm_ec2_cluster_name"] == CLUSTER
        assert hostvars[host]["private_ip_address"].rsplit(".", 1)[0] + ".0/24" in SUBNET_CIDRS


def test_scale_out_creates_only_the_new_worker(moto, ec2, base_vars, first_run):
    before = {i["InstanceId"]: (i["SubnetId"], i["LaunchTime"]) for i in cluster_instances(ec2)}
    result = provision(moto, base_vars, ec2_nodes_worker_count=3)
    assert result.returncode == 0, result
    # the new worker's public IP joins the API rules; nothing else changes
    assert result.changed_tasks() == [INSTANCE_TASK, API_RULES_TASK]
    after = {i["InstanceId"]: (i["SubnetId"], i["LaunchTime"]) for i in cluster_instances(ec2)}
    assert {k: v for k, v in after.items() if k in before} == before
    new = [i for i in cluster_instances(ec2) if i["InstanceId"] not in before]
    assert len(new) == 1
    assert tags_of(new[0])["kubeadm_ec2/role"] == "worker"
    # worker #3 continues the round robin: zone b
    assert new[0]["SubnetId"] == subnets_by_zone(ec2)["us-east-1b"]["SubnetId"]
    first_run["scaled_out"] = new[0]["InstanceId"]


def test_scale_in_terminates_the_newest_worker_by_tag(moto, ec2, base_vars, first_run):
    """playbooks/scale_in.yml (drain off: no cluster here) removes the worker the lower count leaves out."""
    before = sorted(i["InstanceId"] for i in cluster_instances(ec2))
    result = run_playbook("playbooks/scale_in.yml", moto, extra_vars=dict(
        base_vars, ec2_nodes_worker_count=2, kubeadm_ec2_scale_in_drain=False))
    assert result.returncode == 0, result
    assert result.changed_tasks() == ["Terminate the workers by tag and wait until they are gone"]
    after = sorted(i["InstanceId"] for i in cluster_instances(ec2))
    assert after == sorted(set(before) - {first_run["scaled_out"]})
    # provision with the same count launches nothing again; only the API rules drop the removed node
    result = provision(moto, base_vars)
    assert result.returncode == 0, result
    assert result.changed_tasks() == [API_RULES_TASK]
    assert sorted(i["InstanceId"] for i in cluster_instances(ec2)) == after
    # a scale-in to the current count removes nothing
    result = run_playbook("playbooks/scale_in.yml", moto, extra_vars=dict(base_vars, kubeadm_ec2_scale_in_drain=False))
    assert result.returncode == 0, result
    assert result.changed() == 0, result.changed_tasks()


def test_teardown_removes_every_tagged_resource(moto, ec2, first_run):
    root_volumes = [
        m["Ebs"]["VolumeId"] for i in cluster_instances(ec2) for m in i["BlockDeviceMappings"]
    ]
    assert len(root_volumes) == 5
    elb = moto.client("elbv2")
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
    assert [lb["LoadBalancerName"] for lb in elb.describe_load_balancers()["LoadBalancers"]] == []
    # only the bystander's target group is left
    assert [tg["TargetGroupArn"] for tg in elb.describe_target_groups()["TargetGroups"]] == [first_run["bystander_tg"]]
    # the other cluster's VPC is still there
    assert [v["VpcId"] for v in ec2.describe_vpcs(VpcIds=[first_run["bystander_vpc"]])["Vpcs"]] == [
        first_run["bystander_vpc"]
    ]


def test_second_teardown_is_a_noop(moto, first_run):
    result = run_playbook("playbooks/teardown.yml", moto, extra_vars={"kubeadm_ec2_cluster_name": CLUSTER})
    assert result.returncode == 0, result
    assert result.changed() == 0, result.changed_tasks()


def test_single_control_plane_endpoint(moto, base_vars):
    """One control plane: no load balancer; the endpoint is its public IP, or its private IP when chosen."""
    solo = dict(base_vars, kubeadm_ec2_cluster_name="solo", kubeadm_ec2_control_plane_count=1,
                ec2_nodes_worker_count=1, ec2_network_az_count=1, ec2_network_sg_extra_rules=[])
    result = run_playbook("playbooks/provision.yml", moto, extra_vars=solo)
    assert result.returncode == 0, result
    ec2 = moto.client("ec2")
    filters = [{"Name": "tag:" + TAG, "Values": ["solo"]}]
    subnets = ec2.describe_subnets(Filters=filters)["Subnets"]
    assert [(s["CidrBlock"], s["AvailabilityZone"]) for s in subnets] == [("10.42.1.0/24", "us-east-1a")]
    cps = [i for r in ec2.describe_instances(Filters=filters + [
        {"Name": "tag:kubeadm_ec2/role", "Values": ["control-plane"]},
        {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"] for i in r["Instances"]]
    assert len(cps) == 1
    cp = cps[0]
    assert len(cp["SecurityGroups"]) == 1
    assert "Ensure the API network load balancer (every node subnet, the API port to the target group)" not in [
        name.split(" : ", 1)[-1] for name, _h, res in result.task_results() if not res.get("skipped")]
    assert [lb for lb in moto.client("elbv2").describe_load_balancers()["LoadBalancers"] if lb["LoadBalancerName"] == "solo-api"] == []
    assert facts_of(result, "Work out the API endpoint") == {
        "ec2_nodes_api_endpoint_kind": "public_ip",
        "ec2_nodes_api_endpoint": cp["PublicIpAddress"],
        "ec2_nodes_api_server_url": "https://%s:6443" % cp["PublicIpAddress"],
        "ec2_nodes_control_plane_endpoint": "%s:6443" % cp["PrivateIpAddress"],
        "ec2_nodes_api_cert_sans": [cp["PublicIpAddress"], cp["PrivateIpAddress"]],
    }
    # the read-only entry point, on its own, with the private endpoint chosen
    result = run_playbook("tests/integration/playbooks/api_endpoint.yml", moto, extra_vars=dict(
        solo, kubeadm_ec2_api_private_endpoint=True))
    assert result.returncode == 0, result
    assert result.changed() == 0
    facts = facts_of(result, "Work out the API endpoint")
    assert (facts["ec2_nodes_api_endpoint_kind"], facts["ec2_nodes_api_endpoint"]) == ("private_ip", cp["PrivateIpAddress"])
    result = run_playbook("playbooks/teardown.yml", moto, extra_vars={"kubeadm_ec2_cluster_name": "solo"})
    assert result.returncode == 0, result
    assert ec2.describe_vpcs(Filters=filters)["Vpcs"] == []
