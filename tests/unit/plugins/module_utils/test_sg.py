"""Pure logic of sg_audit: rule matching, the audit table and the exact remediation text."""

import copy

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import sg as s

SG = "sg-1"
ADMIN = "203.0.113.0/24"
SEED = [
    {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": ADMIN}]},
    {"IpProtocol": "tcp", "FromPort": 6443, "ToPort": 6443, "IpRanges": [{"CidrIp": ADMIN}]},
    {"IpProtocol": "tcp", "FromPort": 30000, "ToPort": 32767, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
    {"IpProtocol": "udp", "FromPort": 4789, "ToPort": 4789, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
]
SELF = {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": SG, "UserId": "123"}]}
EGRESS_ALL = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]


def _instances(n=3, sdc=True, subnets=None):
    return [{"InstanceId": "i-%d" % i, "PrivateIpAddress": "10.42.1.%d" % (10 + i), "SourceDestCheck": sdc,
             "SubnetId": (subnets or ["subnet-a"] * n)[i], "SecurityGroups": [{"GroupId": SG}]} for i in range(n)]


def _groups(ingress, egress=None):
    return {SG: {"GroupId": SG, "GroupName": "demo-nodes", "IpPermissions": ingress,
                 "IpPermissionsEgress": EGRESS_ALL if egress is None else egress}}


@pytest.mark.parametrize("perm,proto,port,expected", [
    ({"IpProtocol": "-1"}, "4", None, True),
    ({"IpProtocol": "tcp", "FromPort": 30000, "ToPort": 32767}, "tcp", 30080, True),
    ({"IpProtocol": "tcp", "FromPort": 30000, "ToPort": 32767}, "tcp", 10250, False),
    ({"IpProtocol": "tcp", "FromPort": 30000, "ToPort": 32767}, "udp", 30080, False),
    ({"IpProtocol": "6", "FromPort": 179, "ToPort": 179}, "tcp", 179, True),
    ({"IpProtocol": "4", "FromPort": -1, "ToPort": -1}, "4", None, True),
    ({"IpProtocol": "ipip"}, "4", None, True),
    ({"IpProtocol": "udp", "FromPort": 4789, "ToPort": 4789}, "-1", None, False),
    ({"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535}, "-1", None, False),
])
def test_perm_covers(perm, proto, port, expected):
    assert s.perm_covers(perm, proto, port) is expected


@pytest.mark.parametrize("ingress,egress,sdc,encap,errors,warnings", [
    (SEED, None, True, "IPIP", ["SG_NO_SELF_REF", "ENCAP_BLOCKED", "ENCAP_BLOCKED"], []),
    (SEED + [SELF], None, True, "IPIP", [], []),
    (SEED, None, True, "VXLAN", ["SG_NO_SELF_REF"], []),
    (SEED + [SELF], None, True, "None", ["SRC_DST_CHECK"] * 3, []),
    (SEED + [SELF], None, False, "None", [], []),
    (SEED + [SELF], None, True, "VXLANCrossSubnet", ["SRC_DST_CHECK"] * 3, []),
    (SEED + [SELF], [], True, "IPIP", ["EGRESS_443"], []),
    (SEED + [SELF], [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
     True, "IPIP", [], []),
    (SEED + [SELF], [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "PrefixListIds": [{"PrefixListId": "pl-1"}]}],
     True, "IPIP", [], []),
    (SEED + [SELF, {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
     None, True, "IPIP", [], ["SG_OPEN_WORLD"]),
    (SEED + [SELF, {"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}], None, True, "IPIP", [],
     ["SG_OPEN_WORLD", "SG_OPEN_WORLD"]),
    # all traffic from the VPC CIDR works as well as a self-referencing rule
    (SEED + [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "10.42.0.0/16"}]}], None, True, "IPIP", [], []),
    # explicit per-protocol rules: encapsulation fine, all traffic still missing
    (SEED + [{"IpProtocol": "4", "UserIdGroupPairs": [{"GroupId": SG}]},
             {"IpProtocol": "tcp", "FromPort": 179, "ToPort": 179, "UserIdGroupPairs": [{"GroupId": SG}]}],
     None, True, "IPIP", ["SG_NO_SELF_REF"], []),
])
def test_audit_table(ingress, egress, sdc, encap, errors, warnings):
    findings = s.audit(_instances(sdc=sdc), _groups(ingress, egress), encap)
    assert [f["id"] for f in findings if f["severity"] == "error"] == errors
    assert [f["id"] for f in findings if f["severity"] == "warning"] == warnings


def test_seed_exact_hints():
    findings = s.audit(_instances(), _groups(SEED), "IPIP")
    assert findings[0]["observed"] == (
        "all traffic between nodes is not allowed for 6 of 6 node pair(s) (i-0->i-1, i-0->i-2, i-1->i-0, i-1->i-2, "
        "i-2->i-0, i-2->i-1); security group(s) without a self-referencing rule: sg-1")
    assert findings[0]["remediation"] == (
        "aws ec2 authorize-security-group-ingress --group-id sg-1 --ip-permissions "
        "'IpProtocol=-1,UserIdGroupPairs=[{GroupId=sg-1}]' ; or set ec2_network_sg_self_reference: true for role "
        "ec2_network and re-run it")
    assert findings[1]["observed"].startswith(
        "Calico encapsulation IPIP needs ip protocol 4 (IP-in-IP) between nodes; the security groups block it for 6 node pair(s)")
    assert findings[1]["remediation"] == (
        "allow ip protocol 4 (IP-in-IP) between the nodes: aws ec2 authorize-security-group-ingress --group-id sg-1 "
        "--ip-permissions 'IpProtocol=4,UserIdGroupPairs=[{GroupId=sg-1}]' ; or add the self-referencing rule "
        "(aws ec2 authorize-security-group-ingress --group-id sg-1 --ip-permissions "
        "'IpProtocol=-1,UserIdGroupPairs=[{GroupId=sg-1}]') / set ec2_network_sg_self_reference: true for role "
        "ec2_network; or switch the Calico IPPool to an encapsulation the security group allows")
    assert findings[2]["remediation"].startswith(
        "allow tcp/179 (BGP) between the nodes: aws ec2 authorize-security-group-ingress --group-id sg-1 "
        "--ip-permissions 'IpProtocol=tcp,FromPort=179,ToPort=179,UserIdGroupPairs=[{GroupId=sg-1}]'")
    assert findings[2]["why"] == ("Calico BGP peering (BIRD) for IPIP and unencapsulated pools: pods on different "
                                  "nodes cannot talk while same-node traffic works")


def test_src_dst_and_egress_and_world_exact_hints():
    f = s.audit(_instances(n=2), _groups(SEED + [SELF]), "None")[0]
    assert f["observed"] == ("source/destination check is on for i-0 while Calico encapsulation None routes pod "
                             "traffic unencapsulated between all nodes")
    assert f["remediation"] == ("aws ec2 modify-instance-attribute --instance-id i-0 --no-source-dest-check ; or use "
                                "an encapsulating Calico mode (calico_encapsulation: IPIP or VXLAN)")
    f = s.audit(_instances(n=2), _groups(SEED + [SELF], []), "IPIP")[0]
    assert f["observed"] == "egress tcp 443 to 0.0.0.0/0 is closed for i-0, i-1 (security groups sg-1)"
    assert f["remediation"] == ("aws ec2 authorize-security-group-egress --group-id sg-1 --ip-permissions "
                                "'IpProtocol=tcp,FromPort=443,ToPort=443,IpRanges=[{CidrIp=0.0.0.0/0}]' ; or keep "
                                "0.0.0.0/0 in ec2_network_egress_cidrs of role ec2_network")
    world = {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    fs = s.audit(_instances(n=2), _groups(SEED + [SELF, world]), "IPIP")
    assert [x["observed"] for x in fs] == [
        "sg-1 (demo-nodes) allows tcp/0-65535 from 0.0.0.0/0, which exposes SSH (tcp/22) to the internet",
        "sg-1 (demo-nodes) allows tcp/0-65535 from 0.0.0.0/0, which exposes the Kubernetes API (tcp/6443) to the internet"]
    assert fs[0]["remediation"] == (
        "aws ec2 revoke-security-group-ingress --group-id sg-1 --ip-permissions "
        "'IpProtocol=tcp,FromPort=0,ToPort=65535,IpRanges=[{CidrIp=0.0.0.0/0}]' ; then allow only your admin network: "
        "set ec2_network_admin_cidr for role ec2_network (for example 203.0.113.0/24) and re-run it")


def test_cross_subnet_only_checks_encap_across_subnets():
    inst = _instances(n=2, sdc=False, subnets=["subnet-a", "subnet-b"])
    allow_bgp_only = SEED + [SELF]
    allow_bgp_only = [p for p in allow_bgp_only if p is not SELF] + [
        {"IpProtocol": "tcp", "FromPort": 179, "ToPort": 179, "UserIdGroupPairs": [{"GroupId": SG}]}]
    ids = [f["id"] for f in s.audit(inst, _groups(allow_bgp_only), "IPIPCrossSubnet")]
    assert ids == ["SG_NO_SELF_REF", "ENCAP_BLOCKED"]
    same = _instances(n=2, sdc=False)
    ids = [f["id"] for f in s.audit(same, _groups(allow_bgp_only), "IPIPCrossSubnet")]
    assert ids == ["SG_NO_SELF_REF"]


def test_node_sg_is_the_common_group():
    inst = _instances(n=2)
    inst[0]["SecurityGroups"] = [{"GroupId": "sg-ssh"}, {"GroupId": SG}]
    groups = _groups(SEED + [SELF])
    groups["sg-ssh"] = {"GroupId": "sg-ssh", "IpPermissions": [], "IpPermissionsEgress": []}
    assert s.node_sg_id(inst) == SG
    assert s.audit(inst, groups, "IPIP") == []


@pytest.mark.parametrize("pools,expected", [
    ([], (None, "no enabled Calico IPPool found")),
    ([{"metadata": {"name": "default-ipv4-ippool"}, "spec": {"ipipMode": "Always", "vxlanMode": "Never"}}],
     ("IPIP", "default-ipv4-ippool=IPIP")),
    ([{"metadata": {"name": "p"}, "spec": {"vxlanMode": "CrossSubnet"}}], ("VXLANCrossSubnet", "p=VXLANCrossSubnet")),
    ([{"metadata": {"name": "old"}, "spec": {"ipipMode": "Always", "disabled": True}},
      {"metadata": {"name": "new"}, "spec": {"vxlanMode": "Always"}}], ("VXLAN", "new=VXLAN")),
    ([{"metadata": {"name": "p"}, "spec": {"ipipMode": "Never", "vxlanMode": "Never"}}], ("None", "p=None")),
    ([{"metadata": {"name": "p"}, "spec": {"ipipMode": "CrossSubnet"}}], ("IPIPCrossSubnet", "p=IPIPCrossSubnet")),
])
def test_encapsulation_from_ippools(pools, expected):
    assert s.encapsulation_from_ippools(copy.deepcopy(pools)) == expected
