"""sg_audit through ansible-playbook against moto's EC2 server (started and stopped here).

Every scenario is its own "cluster" (3 instances tagged kubeadm_ec2/cluster=<name>) built from the
same SG descriptions as the network lab (tests/lab/netlab.py: SEED_SG / HEALTHY_SG), so both
substrates judge the same security group.
"""

import json
import os
import shutil
import sys

import pytest

from tests.fakes.k8s_api import FakeKubeAPI
from tests.integration.moto_harness import MotoServer
from tests.lab.netlab import HEALTHY_SG, SEED_SG, SELF
from tests.support.ansible import run_playbook
from tests.support.k8s import ippool
from tests.support.lifecycle import private_dir

boto3 = pytest.importorskip("boto3")

REGION = "us-east-1"


@pytest.fixture(scope="module")
def moto():
    with MotoServer(region=REGION) as server:
        yield server.endpoint_url


def _ec2(url):
    return boto3.client("ec2", endpoint_url=url, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def _to_ec2(perms, sg_id):
    """The lab's SG model (SELF = the group itself) as EC2 IpPermissions."""
    out = []
    for perm in perms:
        p = json.loads(json.dumps(perm))
        if p.get("UserIdGroupPairs"):
            p["UserIdGroupPairs"] = [{"GroupId": sg_id if g["GroupId"] == SELF else g["GroupId"]}
                                     for g in p["UserIdGroupPairs"]]
        if p["IpProtocol"] not in ("tcp", "udp", "-1") and "FromPort" not in p:
            p["FromPort"], p["ToPort"] = -1, -1
        out.append(p)
    return out


def make_cluster(ec2, name, ingress, src_dst_check=True, egress_open=True, nodes=3):
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="%s-nodes" % name, Description="nodes", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=_to_ec2(ingress, sg))
    if not egress_open:
        ec2.revoke_security_group_egress(GroupId=sg, IpPermissions=[
            {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        ec2.authorize_security_group_egress(GroupId=sg, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    res = ec2.run_instances(
        ImageId="ami-12c6146b", MinCount=nodes, MaxCount=nodes, SubnetId=subnet, SecurityGroupIds=[sg],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "kubeadm_ec2/cluster", "Value": name}]}])
    ids = sorted(i["InstanceId"] for i in res["Instances"])
    if not src_dst_check:
        for iid in ids:
            ec2.modify_instance_attribute(InstanceId=iid, SourceDestCheck={"Value": False})
    return {"sg": sg, "ids": ids}


def make_ha_cluster(ec2, elb, name, api_cidrs):
    """3 control planes over two subnets behind an API network load balancer in both; the control planes'
    API security group allows tcp 6443 from ``api_cidrs`` only (the node group has the self-referencing rule)."""
    vpc = ec2.create_vpc(CidrBlock="10.43.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=REGION + az)["Subnet"]
               for cidr, az in (("10.43.1.0/24", "a"), ("10.43.2.0/24", "b"))]
    sg = ec2.create_security_group(GroupName="%s-nodes" % name, Description="nodes", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=_to_ec2(HEALTHY_SG, sg))
    api_sg = ec2.create_security_group(GroupName="%s-api" % name, Description="api", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=api_sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 6443, "ToPort": 6443, "IpRanges": [{"CidrIp": c} for c in api_cidrs]}])
    tags = [{"Key": "kubeadm_ec2/cluster", "Value": name}, {"Key": "kubeadm_ec2/role", "Value": "control-plane"}]
    ids = []
    for i in range(3):
        res = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=subnets[i % 2]["SubnetId"],
                                SecurityGroupIds=[sg, api_sg],
                                TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
        ids.append(res["Instances"][0]["InstanceId"])
    elb.create_load_balancer(Name="%s-api" % name, Type="network", Scheme="internet-facing",
                             Subnets=[s["SubnetId"] for s in subnets])
    return {"sg": sg, "api_sg": api_sg, "ids": ids, "subnets": [s["SubnetId"] for s in subnets]}


# name -> (cluster, api CIDRs allowed, case options): HA clusters, the API load balancer in both subnets
HA_CLUSTERS = {"ha-blocked": ["10.43.1.0/24"], "ha-allowed": ["10.43.1.0/24", "10.43.2.0/24"]}
HA_CASES = {
    "ha-lb-blocked": ("ha-blocked", {"api_lb_name": "t-ha-blocked-api"}),
    "ha-lb-allowed": ("ha-allowed", {"api_lb_name": "t-ha-allowed-api"}),
    # the load balancer's subnets given instead of looked up
    "ha-lb-blocked-by-ids": ("ha-blocked", {"api_lb_subnet_ids": "SUBNETS"}),
    # no load balancer of that name: nothing checked, and said so
    "ha-lb-missing": ("ha-blocked", {"api_lb_name": "t-nope-api"}),
    # no load balancer option (a single control plane): the check does not run
    "ha-lb-unset": ("ha-blocked", {}),
}

OPEN_SSH = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]

# name -> (ingress, src_dst_check, egress_open, calico_encapsulation)
SCENARIOS = {
    "seed": (SEED_SG, True, True, "IPIP"),
    "healthy": (HEALTHY_SG, True, True, "IPIP"),
    "seed-vxlan": (SEED_SG, True, True, "VXLAN"),
    "nonencap-srcdst-on": (HEALTHY_SG, True, True, "None"),
    "nonencap-srcdst-off": (HEALTHY_SG, False, True, "None"),
    "egress-closed": (HEALTHY_SG, True, False, "IPIP"),
    "ssh-world": (HEALTHY_SG + OPEN_SSH, True, True, "IPIP"),
    # parameter says IPIP, the cluster's IPPool says VXLAN (read through the kubernetes client)
    "seed-ippool-vxlan": (SEED_SG, True, True, "IPIP"),
}
IPPOOL = ippool(ipip="Never", vxlan="Always")


@pytest.fixture(scope="module")
def audited(moto):
    ec2 = _ec2(moto)
    clusters = dict((name, make_cluster(ec2, "t-" + name, ing, sdc, egr)) for name, (ing, sdc, egr, _e) in SCENARIOS.items())
    cases = [{"name": name, "filters": {"tag:kubeadm_ec2/cluster": "t-" + name}, "calico_encapsulation": enc}
             for name, (_i, _s, _g, enc) in SCENARIOS.items()]
    elb = boto3.client("elbv2", endpoint_url=moto, region_name=REGION, aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    for name, cidrs in HA_CLUSTERS.items():
        clusters[name] = make_ha_cluster(ec2, elb, "t-" + name, cidrs)
    for name, (cluster, opts) in HA_CASES.items():
        case = {"name": name, "filters": {"tag:kubeadm_ec2/cluster": "t-" + cluster}, "calico_encapsulation": "IPIP"}
        case.update(dict((k, clusters[cluster]["subnets"] if v == "SUBNETS" else v) for k, v in opts.items()))
        cases.append(case)
    tmp = private_dir("ksgaudit-")
    try:
        with FakeKubeAPI() as api:
            api.cluster.add(IPPOOL, plural="ippools")
            [case for case in cases if case["name"] == "seed-ippool-vxlan"][0]["kubeconfig"] = api.write_kubeconfig()
            result_file = os.path.join(tmp, "result.json")
            evars = {"kubeadm_ec2_endpoint_url": moto, "kubeadm_ec2_region": REGION, "sg_audit_cases": cases,
                     "sg_audit_result_file": result_file, "validate_network_cluster_name": "t-healthy",
                     "ansible_python_interpreter": sys.executable}
            creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}
            proc = run_playbook("sg_audit.yml", extra_vars=evars, env=creds, callback="default", timeout=300)
            assert os.path.exists(result_file), proc.output
            with open(result_file) as fh:
                results = json.load(fh)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"rc": proc.returncode, "out": proc.output, "results": results, "clusters": clusters}


def _ids(res, severity="error"):
    return sorted(f["id"] for f in res["findings"] if f["severity"] == severity)


def test_role_tasks_pass_on_healthy_cluster(audited):
    assert audited["rc"] == 0, audited["out"]
    out = audited["out"]
    assert "TASK [validate_network : Audit the node security groups and instances]" in out
    assert "ok: [localhost]" in out.split("TASK [validate_network : Audit the node security groups and instances]")[1]


def test_seed_sg_no_self_ref_and_ipip_blocked(audited):
    res = audited["results"]["seed"]
    sg = audited["clusters"]["seed"]["sg"]
    assert res["failed"]
    assert _ids(res) == ["ENCAP_BLOCKED", "ENCAP_BLOCKED", "SG_NO_SELF_REF"]
    self_ref = [f for f in res["findings"] if f["id"] == "SG_NO_SELF_REF"][0]
    assert self_ref["remediation"] == (
        "aws ec2 authorize-security-group-ingress --group-id %s --ip-permissions "
        "'IpProtocol=-1,UserIdGroupPairs=[{GroupId=%s}]' ; or set ec2_network_sg_self_reference: true for role "
        "ec2_network and re-run it" % (sg, sg))
    assert self_ref["observed"].startswith("all traffic between nodes is not allowed for 6 of 6 node pair(s)")
    needs = sorted(f["details"]["need"] for f in res["findings"] if f["id"] == "ENCAP_BLOCKED")
    assert needs == ["bgp", "ipip"]
    ipip = [f for f in res["findings"] if f["id"] == "ENCAP_BLOCKED" and f["details"]["need"] == "ipip"][0]
    assert "'IpProtocol=4,UserIdGroupPairs=[{GroupId=%s}]'" % sg in ipip["remediation"]


def test_healthy_sg_passes(audited):
    res = audited["results"]["healthy"]
    assert not res.get("failed"), res["msg"]
    assert res["findings"] == []
    assert res["calico_encapsulation_source"] == "parameter"


def test_seed_sg_with_vxlan_only_misses_self_ref(audited):
    res = audited["results"]["seed-vxlan"]
    assert _ids(res) == ["SG_NO_SELF_REF"]


def test_src_dst_check_both_ways(audited):
    on = audited["results"]["nonencap-srcdst-on"]
    assert _ids(on) == ["SRC_DST_CHECK"] * 3
    iid = audited["clusters"]["nonencap-srcdst-on"]["ids"][0]
    f = [x for x in on["findings"] if x["where"] == iid][0]
    assert f["remediation"].startswith("aws ec2 modify-instance-attribute --instance-id %s --no-source-dest-check" % iid)
    off = audited["results"]["nonencap-srcdst-off"]
    assert off["findings"] == [] and not off.get("failed")


def test_egress_443_closed(audited):
    res = audited["results"]["egress-closed"]
    sg = audited["clusters"]["egress-closed"]["sg"]
    assert _ids(res) == ["EGRESS_443"]
    assert res["findings"][0]["remediation"].startswith(
        "aws ec2 authorize-security-group-egress --group-id %s --ip-permissions "
        "'IpProtocol=tcp,FromPort=443,ToPort=443,IpRanges=[{CidrIp=0.0.0.0/0}]'" % sg)


def test_ssh_open_to_world_is_a_warning(audited):
    res = audited["results"]["ssh-world"]
    sg = audited["clusters"]["ssh-world"]["sg"]
    assert not res.get("failed")
    assert _ids(res) == [] and _ids(res, "warning") == ["SG_OPEN_WORLD"]
    assert res["findings"][0]["remediation"].startswith(
        "aws ec2 revoke-security-group-ingress --group-id %s --ip-permissions "
        "'IpProtocol=tcp,FromPort=22,ToPort=22,IpRanges=[{CidrIp=0.0.0.0/0}]'" % sg)
    assert "(1 warning(s))" in res["msg"]


def test_encapsulation_read_from_cluster_ippools(audited):
    res = audited["results"]["seed-ippool-vxlan"]
    assert res["calico_encapsulation"] == "VXLAN"
    assert res["calico_encapsulation_source"] == "cluster IPPools: default-ipv4-ippool=VXLAN"
    # the seed SG allows udp/4789: only the missing self-reference remains (IPIP from the parameter would add two)
    assert _ids(res) == ["SG_NO_SELF_REF"]


def test_api_lb_subnets_looked_up_by_name_both_ways(audited):
    """HA: the audit reads the API load balancer's subnets; 6443 refused from one of them is API_LB_BLOCKED."""
    blocked = audited["results"]["ha-lb-blocked"]
    cluster = audited["clusters"]["ha-blocked"]
    subnet_b = cluster["subnets"][1]
    assert _ids(blocked) == ["API_LB_BLOCKED"], blocked["msg"]
    f = blocked["findings"][0]
    assert f["where"] == subnet_b and f["details"]["cidr"] == "10.43.2.0/24"
    assert sorted(f["details"]["instances"]) == sorted(cluster["ids"])
    assert f["remediation"].startswith(
        "aws ec2 authorize-security-group-ingress --group-id %s --ip-permissions "
        "'IpProtocol=tcp,FromPort=6443,ToPort=6443,IpRanges=[{CidrIp=10.43.2.0/24}]'" % cluster["api_sg"])
    # sorted by subnet id (random in moto), not by creation
    assert blocked["api_lb"] == {"name": "t-ha-blocked-api", "found": True, "subnets": sorted([
        {"SubnetId": cluster["subnets"][0], "CidrBlock": "10.43.1.0/24"},
        {"SubnetId": subnet_b, "CidrBlock": "10.43.2.0/24"}], key=lambda sn: sn["SubnetId"])}
    allowed = audited["results"]["ha-lb-allowed"]
    assert allowed["findings"] == [] and not allowed.get("failed"), allowed["msg"]
    assert "tcp 6443 allowed from the API load balancer's subnets %s" % ", ".join(
        sorted(audited["clusters"]["ha-allowed"]["subnets"])) in allowed["msg"]


def test_api_lb_subnets_given_by_id(audited):
    res = audited["results"]["ha-lb-blocked-by-ids"]
    assert _ids(res) == ["API_LB_BLOCKED"]
    assert res["api_lb"]["name"] == "" and len(res["api_lb"]["subnets"]) == 2


def test_api_lb_missing_or_unset_checks_nothing(audited):
    missing = audited["results"]["ha-lb-missing"]
    assert missing["findings"] == [] and missing["api_lb"] == {"name": "t-nope-api", "found": False, "subnets": []}
    assert ("api_lb_name: no load balancer named t-nope-api: tcp 6443 from its subnets (API_LB_BLOCKED) was not "
            "checked") in missing["msg"]
    unset = audited["results"]["ha-lb-unset"]
    assert unset["findings"] == [] and unset["api_lb"] == {}
