"""Multi-AZ and HA rules of the pure checks: which node pairs need encapsulation under the CrossSubnet
modes (reachability, sg_audit), etcd between control planes and 6443 from the API load balancer's subnets."""

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import calico
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import reachability as r
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import sg as s
from tests.unit.plugins.module_utils.test_reachability import CPS, NODES, _listen_report, _probe_report

# cp1 and w2 share subnet a, w1 is alone in subnet b: cp1<->w1 and w1<->w2 cross subnets.
SUBNETS = {"cp1": "subnet-a", "w1": "subnet-b", "w2": "subnet-a"}
CROSSING = {("cp1", "w1"), ("w1", "cp1"), ("w1", "w2"), ("w2", "w1")}


def _analyse(blocked, encap, subnets):
    probes = dict((n, _probe_report(n, blocked)) for n in NODES)
    listens = dict((n, _listen_report(n, blocked)) for n in NODES)
    findings, _summary, _matrix = r.analyse(NODES, CPS, probes, listens, calico_encapsulation=encap, sg_id="sg-1",
                                            subnets=subnets)
    return findings


def _error_pairs(findings):
    return set((f["details"]["src"], f["details"]["dst"]) for f in findings if f["severity"] == "error")


@pytest.mark.parametrize("mode,subnets,expected", [
    # across subnets only
    ("VXLANCrossSubnet", SUBNETS, CROSSING),
    # without subnet data every pair may cross: the conservative answer
    ("VXLANCrossSubnet", None, set((a, b) for a in NODES for b in NODES if a != b)),
    # plain VXLAN encapsulates between every pair
    ("VXLAN", SUBNETS, set((a, b) for a in NODES for b in NODES if a != b)),
    # every node in one subnet: nothing is encapsulated, a blocked VXLAN port is harmless
    ("VXLANCrossSubnet", {"cp1": "x", "w1": "x", "w2": "x"}, set()),
])
def test_blocked_vxlan_is_an_error_only_where_the_mode_encapsulates(mode, subnets, expected):
    findings = _analyse(("vxlan",), mode, subnets)
    assert _error_pairs(findings) == expected
    warnings = [f for f in findings if f["severity"] == "warning"]
    if len(expected) < 6:
        # the same-subnet pairs show up once, as "not needed"
        assert len(warnings) == 1
        assert "not needed by Calico encapsulation %s" % mode in warnings[0]["observed"]
    else:
        assert warnings == []


def test_ipip_cross_subnet_still_needs_bgp_inside_a_subnet():
    assert _error_pairs(_analyse(("bgp",), "IPIPCrossSubnet", SUBNETS)) == set(
        (a, b) for a in NODES for b in NODES if a != b)
    ipip = _analyse(("ipip",), "IPIPCrossSubnet", SUBNETS)
    # IP-in-IP is probed one way per pair; only the probed crossing pairs can fail
    assert _error_pairs(ipip) and _error_pairs(ipip) <= CROSSING


@pytest.mark.parametrize("mode,same,expected", [
    ("VXLANCrossSubnet", True, ()),
    ("VXLANCrossSubnet", False, ("vxlan",)),
    ("IPIPCrossSubnet", True, ("bgp",)),
    ("IPIPCrossSubnet", False, ("ipip", "bgp")),
    ("IPIP", True, ("ipip", "bgp")),
    ("None", True, ("bgp",)),
])
def test_pair_needs(mode, same, expected):
    assert calico.pair_needs(mode, same) == expected


@pytest.mark.parametrize("subnets,src,dst,expected", [
    (SUBNETS, "cp1", "w2", True),
    (SUBNETS, "cp1", "w1", False),
    ({"cp1": "a"}, "cp1", "w1", False),
    ({}, "cp1", "w1", False),
    (None, "cp1", "w1", False),
])
def test_same_subnet(subnets, src, dst, expected):
    assert r.same_subnet(subnets, src, dst) is expected


# --- sg_audit: HA --------------------------------------------------------------------------------
NODE_SG, API_SG = "sg-nodes", "sg-api"
ADMIN = {"IpProtocol": "tcp", "FromPort": 6443, "ToPort": 6443, "IpRanges": [{"CidrIp": "203.0.113.7/32"}]}
SELF = {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": NODE_SG}]}
EGRESS = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
LB_SUBNETS = [{"SubnetId": "subnet-a", "CidrBlock": "10.42.1.0/24"}, {"SubnetId": "subnet-b", "CidrBlock": "10.42.2.0/24"}]


def _api_rule(*cidrs):
    return {"IpProtocol": "tcp", "FromPort": 6443, "ToPort": 6443, "IpRanges": [{"CidrIp": c} for c in cidrs]}


def _cluster(node_rules, api_rules, cps=3, workers=1):
    instances = []
    for i in range(cps + workers):
        role = "control-plane" if i < cps else "worker"
        groups = [NODE_SG, API_SG] if role == "control-plane" else [NODE_SG]
        instances.append({"InstanceId": "i-%d" % i, "PrivateIpAddress": "10.42.%d.%d" % (1 + i % 2, 10 + i),
                          "SubnetId": "subnet-%s" % "ab"[i % 2], "SourceDestCheck": False,
                          "SecurityGroups": [{"GroupId": g} for g in groups],
                          "Tags": [{"Key": "kubeadm_ec2/role", "Value": role}, {"Key": "Name", "Value": "c-" + role}]})
    groups = {NODE_SG: {"GroupId": NODE_SG, "IpPermissions": node_rules, "IpPermissionsEgress": EGRESS},
              API_SG: {"GroupId": API_SG, "IpPermissions": api_rules, "IpPermissionsEgress": EGRESS}}
    return instances, groups


def test_healthy_ha_cluster_has_no_findings():
    instances, groups = _cluster([SELF, ADMIN], [_api_rule("10.42.1.0/24", "10.42.2.0/24")])
    assert s.audit(instances, groups, "VXLANCrossSubnet", api_lb_subnets=LB_SUBNETS) == []
    # a wider rule (the VPC) covers the subnets too
    instances, groups = _cluster([SELF, ADMIN], [_api_rule("10.42.0.0/16")])
    assert s.audit(instances, groups, "VXLANCrossSubnet", api_lb_subnets=LB_SUBNETS) == []


def test_api_lb_subnet_missing_exact_finding():
    instances, groups = _cluster([SELF, ADMIN], [_api_rule("10.42.1.0/24")])
    findings = s.audit(instances, groups, "VXLANCrossSubnet", api_lb_subnets=LB_SUBNETS)
    assert [f["id"] for f in findings] == ["API_LB_BLOCKED"]
    f = findings[0]
    assert f["observed"] == ("tcp/6443 from subnet-b (10.42.2.0/24), a subnet of the API load balancer, is not allowed "
                             "on control plane(s) c-control-plane (i-0), c-control-plane (i-1), c-control-plane (i-2)")
    assert f["remediation"] == (
        "aws ec2 authorize-security-group-ingress --group-id sg-api --ip-permissions "
        "'IpProtocol=tcp,FromPort=6443,ToPort=6443,IpRanges=[{CidrIp=10.42.2.0/24}]' ; or re-run "
        "playbooks/provision.yml (role ec2_nodes sets these rules in the API security group)")
    # a rule covering only part of the subnet does not count
    instances, groups = _cluster([SELF, ADMIN], [_api_rule("10.42.1.0/24", "10.42.2.0/25")])
    assert [f["id"] for f in s.audit(instances, groups, "IPIP", api_lb_subnets=LB_SUBNETS)] == ["API_LB_BLOCKED"]
    # admin_cidr alone (the single control-plane layout) does not let health checks in
    instances, groups = _cluster([SELF, ADMIN], [])
    assert [f["id"] for f in s.audit(instances, groups, "IPIP", api_lb_subnets=LB_SUBNETS)] == ["API_LB_BLOCKED"] * 2


def test_etcd_between_control_planes():
    allow_list = [ADMIN, {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 2378, "UserIdGroupPairs": [{"GroupId": NODE_SG}]},
                  {"IpProtocol": "tcp", "FromPort": 2381, "ToPort": 65535, "UserIdGroupPairs": [{"GroupId": NODE_SG}]},
                  {"IpProtocol": "udp", "FromPort": 4789, "ToPort": 4789, "UserIdGroupPairs": [{"GroupId": NODE_SG}]}]
    instances, groups = _cluster(allow_list, [_api_rule("10.42.0.0/16")])
    findings = [f for f in s.audit(instances, groups, "VXLAN", api_lb_subnets=LB_SUBNETS) if f["id"] == "ETCD_BLOCKED"]
    assert len(findings) == 1
    assert findings[0]["observed"] == (
        "tcp/2379 (etcd client), tcp/2380 (etcd peer) not allowed between control planes for 6 of 6 pair(s) "
        "(i-0->i-1, i-0->i-2, i-1->i-0, i-1->i-2, i-2->i-0, i-2->i-1)")
    assert findings[0]["remediation"].startswith(
        "aws ec2 authorize-security-group-ingress --group-id sg-nodes --ip-permissions "
        "'IpProtocol=tcp,FromPort=2379,ToPort=2380,UserIdGroupPairs=[{GroupId=sg-nodes}]'")
    # the workers do not run etcd: opening 2379-2380 between the nodes is enough
    allow_list.append({"IpProtocol": "tcp", "FromPort": 2379, "ToPort": 2380, "UserIdGroupPairs": [{"GroupId": NODE_SG}]})
    instances, groups = _cluster(allow_list, [_api_rule("10.42.0.0/16")])
    assert [f for f in s.audit(instances, groups, "VXLAN", api_lb_subnets=LB_SUBNETS) if f["id"] == "ETCD_BLOCKED"] == []


def test_single_control_plane_has_no_etcd_pairs():
    instances, groups = _cluster([ADMIN], [], cps=1, workers=2)
    assert [f for f in s.audit(instances, groups, "VXLAN") if f["id"] in ("ETCD_BLOCKED", "API_LB_BLOCKED")] == []


def test_cross_subnet_mode_source_dest_check_only_within_a_subnet():
    instances, groups = _cluster([SELF, ADMIN], [_api_rule("10.42.0.0/16")], cps=1, workers=1)
    for inst in instances:
        inst["SourceDestCheck"] = True
    # two nodes in two subnets: every pair is encapsulated, the check does not matter
    assert s.audit(instances, groups, "VXLANCrossSubnet") == []
    instances[1]["SubnetId"] = instances[0]["SubnetId"]
    assert [f["id"] for f in s.audit(instances, groups, "VXLANCrossSubnet")] == ["SRC_DST_CHECK"] * 2
