# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Security group audit of the cluster nodes: pure evaluation of EC2 data (DescribeInstances /
DescribeSecurityGroups shapes), returning findings with the exact remediation.

Checks:
  SG_NO_SELF_REF  all traffic between the nodes is not allowed (no self-referencing rule)
  ENCAP_BLOCKED   the protocols the Calico encapsulation needs (IP protocol 4 + tcp/179 for IPIP,
                  udp/4789 for VXLAN, tcp/179 without encapsulation) are not allowed between nodes
  SRC_DST_CHECK   source/destination check on while Calico routes pod traffic unencapsulated
                  (encapsulation None, or CrossSubnet between nodes of one subnet)
  EGRESS_443      egress tcp 443 closed (EC2 API, ECR, AWS endpoints)
  SG_OPEN_WORLD   SSH (22) or the Kubernetes API (6443) open to 0.0.0.0/0 or ::/0 (warning)
  ETCD_BLOCKED    etcd tcp/2379-2380 not allowed between the control planes (HA)
  API_LB_BLOCKED  tcp/6443 not allowed on a control plane from a subnet of the API load balancer
                  (its health checks come from its private addresses there)
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import calico
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import catalogue as cat
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import (
    WARNING,
    finding,
)

ENCAPSULATIONS = calico.ENCAPSULATIONS

# (protocol, port) needed between nodes, label, who needs it
ETCD_PORTS = ((2379, "etcd client"), (2380, "etcd peer"))
API_PORT = 6443

ENCAP_NEEDS = {
    "ipip": ("4", None, "ip protocol 4 (IP-in-IP)", "Calico IPIP (ipipMode Always/CrossSubnet)"),
    "bgp": ("tcp", 179, "tcp/179 (BGP)", "Calico BGP peering (BIRD) for IPIP and unencapsulated pools"),
    "vxlan": ("udp", 4789, "udp/4789 (VXLAN)", "Calico VXLAN (vxlanMode Always/CrossSubnet)"),
}
_PROTO_NAMES = {"6": "tcp", "17": "udp", "1": "icmp", "all": "-1", "ipip": "4", "ipencap": "4", "4": "4"}
WORLD = ("0.0.0.0/0", "::/0")
OPEN_WORLD_PORTS = ((22, "SSH"), (6443, "the Kubernetes API"))


def norm_proto(proto):
    p = str(proto if proto is not None else "-1").lower()
    return _PROTO_NAMES.get(p, p)


def perm_covers(perm, proto, port):
    """Whether an IpPermission covers protocol ``proto`` ("tcp", "udp", "4", "-1") and ``port``."""
    p = norm_proto(perm.get("IpProtocol"))
    if p == "-1":
        return True
    if proto == "-1" or p != proto:
        return False
    if proto in ("tcp", "udp"):
        lo, hi = perm.get("FromPort"), perm.get("ToPort")
        if lo in (None, -1) or port is None:
            return True
        return int(lo) <= int(port) <= int(hi if hi is not None else lo)
    return True


def _in_cidr(ip, cidr):
    try:
        return ipaddress.ip_address(u"%s" % ip) in ipaddress.ip_network(u"%s" % cidr, strict=False)
    except ValueError:
        return False


def perm_allows_from(perm, src):
    """Whether the sources of an ingress IpPermission include instance ``src`` (private IP or its SGs)."""
    for r in perm.get("IpRanges", []) or []:
        if src.get("PrivateIpAddress") and _in_cidr(src["PrivateIpAddress"], r.get("CidrIp", "")):
            return True
    src_groups = set(g["GroupId"] for g in src.get("SecurityGroups", []) or [])
    for pair in perm.get("UserIdGroupPairs", []) or []:
        if pair.get("GroupId") in src_groups:
            return True
    return False


def ingress_allows(dst, src, groups, proto, port=None):
    for g in dst.get("SecurityGroups", []) or []:
        sg = groups.get(g["GroupId"]) or {}
        for perm in sg.get("IpPermissions", []) or []:
            if perm_covers(perm, proto, port) and perm_allows_from(perm, src):
                return True
    return False


def has_self_reference(sg):
    for perm in sg.get("IpPermissions", []) or []:
        if norm_proto(perm.get("IpProtocol")) == "-1":
            if any(p.get("GroupId") == sg["GroupId"] for p in perm.get("UserIdGroupPairs", []) or []):
                return True
    return False


def node_sg_id(instances):
    """The security group every node is a member of (the node SG), else the first node's first SG."""
    sets = [[g["GroupId"] for g in i.get("SecurityGroups", []) or []] for i in instances]
    if not sets or not sets[0]:
        return cat.SG_PLACEHOLDER
    common = [g for g in sets[0] if all(g in s for s in sets[1:])]
    return (common or sets[0])[0]


def _name(inst):
    for t in inst.get("Tags", []) or []:
        if t.get("Key") == "Name" and t.get("Value"):
            return "%s (%s)" % (t["Value"], inst["InstanceId"])
    return inst["InstanceId"]


def _pairs(instances):
    return [(s, d) for s in instances for d in instances if s is not d]


def _pair_text(pairs, limit=6):
    text = ", ".join("%s->%s" % (s["InstanceId"], d["InstanceId"]) for s, d in pairs[:limit])
    if len(pairs) > limit:
        text += ", ... (%d more)" % (len(pairs) - limit)
    return text


def audit(instances, groups, calico_encapsulation="IPIP", api_lb_subnets=None):
    """Return the findings for the node ``instances`` (DescribeInstances shape) and ``groups`` (GroupId -> SG).

    ``api_lb_subnets``: the API load balancer's subnets (DescribeSubnets shape: SubnetId, CidrBlock), HA only.
    """
    findings = []
    sg_id = node_sg_id(instances)
    pairs = _pairs(instances)
    # 1. all traffic between nodes (the self-referencing rule)
    no_all = [(s, d) for s, d in pairs if not ingress_allows(d, s, groups, "-1")]
    if no_all:
        without = sorted(g for g in set(x["GroupId"] for i in instances for x in i.get("SecurityGroups", []) or [])
                         if g in groups and not has_self_reference(groups[g]))
        findings.append(finding(
            "SG_NO_SELF_REF",
            "all traffic between nodes is not allowed for %d of %d node pair(s) (%s); security group(s) without a "
            "self-referencing rule: %s" % (len(no_all), len(pairs), _pair_text(no_all), ", ".join(without) or "none"),
            "only allow-listed ports pass between nodes: NodePort works, but ClusterIP and DNS traffic crossing nodes "
            "(and kubelet 10250, pod-to-pod on any port) times out",
            "%s ; or set %s for role ec2_network and re-run it" % (cat.self_ref_cli(sg_id), cat.ROLE_VAR_SELF_REF),
            where=sg_id, cli=cat.self_ref_cli(sg_id), security_group_id=sg_id, groups_without_self_reference=without,
            pairs=["%s->%s" % (s["InstanceId"], d["InstanceId"]) for s, d in no_all]))
    # 2. encapsulation
    cross_subnet = calico.is_cross_subnet(calico_encapsulation)
    for need in calico.needs(calico_encapsulation):
        proto, port, text, who = ENCAP_NEEDS[need]
        relevant = [(s, d) for s, d in pairs
                    if need in calico.pair_needs(calico_encapsulation, s.get("SubnetId") == d.get("SubnetId"))]
        blocked = [(s, d) for s, d in relevant if not ingress_allows(d, s, groups, proto, port)]
        if blocked:
            findings.append(finding(
                "ENCAP_BLOCKED",
                "Calico encapsulation %s needs %s between nodes; the security groups block it for %d node pair(s) (%s)"
                % (calico_encapsulation, text, len(blocked), _pair_text(blocked)),
                "%s: pods on different nodes cannot talk while same-node traffic works" % who,
                cat.encap_fix([text], [cat.sg_permission(proto, port, sg_id)], sg_id),
                where=sg_id, cli=cat.authorize_ingress_cli(sg_id, [cat.sg_permission(proto, port, sg_id)]),
                security_group_id=sg_id, protocol=proto, port=port, need=need,
                calico_encapsulation=calico_encapsulation,
                pairs=["%s->%s" % (s["InstanceId"], d["InstanceId"]) for s, d in blocked]))
    # 3. source/destination check
    for inst in instances:
        if not inst.get("SourceDestCheck", True):
            continue
        if calico_encapsulation == "None":
            reason = "Calico encapsulation None routes pod traffic unencapsulated between all nodes"
        elif cross_subnet and any(o is not inst and o.get("SubnetId") == inst.get("SubnetId") for o in instances):
            reason = ("Calico encapsulation %s routes pod traffic unencapsulated between nodes of subnet %s"
                      % (calico_encapsulation, inst.get("SubnetId")))
        else:
            continue
        findings.append(finding(
            "SRC_DST_CHECK",
            "source/destination check is on for %s while %s" % (_name(inst), reason),
            "EC2 drops packets whose source or destination is not the instance's own IP, i.e. pod traffic from and to "
            "other nodes: cross-node pod traffic is dropped",
            "%s ; or use an encapsulating Calico mode (calico_encapsulation: IPIP or VXLAN)"
            % cat.src_dst_check_cli(inst["InstanceId"]),
            where=inst["InstanceId"], cli=cat.src_dst_check_cli(inst["InstanceId"]), instance_id=inst["InstanceId"]))
    # 4. egress tcp 443
    by_groups = {}
    for inst in instances:
        key = tuple(g["GroupId"] for g in inst.get("SecurityGroups", []) or [])
        by_groups.setdefault(key, []).append(inst)
    for key, insts in sorted(by_groups.items()):
        if not _egress_443_open(key, groups):
            first = key[0] if key else sg_id
            findings.append(finding(
                "EGRESS_443",
                "egress tcp 443 to 0.0.0.0/0 is closed for %s (security groups %s)"
                % (", ".join(i["InstanceId"] for i in insts), ", ".join(key) or "none"),
                "kubelet, the AWS cloud provider, image pulls from ECR/registries and package installs cannot reach "
                "HTTPS endpoints such as the EC2 API: their calls time out",
                "%s ; or keep 0.0.0.0/0 in ec2_network_egress_cidrs of role ec2_network" % cat.egress_443_cli(first),
                where=first, security_group_id=first, instances=[i["InstanceId"] for i in insts],
                cli=cat.egress_443_cli(first)))
    # 5. SSH / API open to the world (warning)
    seen = set()
    for key in sorted(by_groups):
        for gid in key:
            sg = groups.get(gid)
            if not sg or gid in seen:
                continue
            seen.add(gid)
            findings.extend(_open_world(sg))
    # 6. HA: etcd between the control planes, the API from the load balancer's subnets
    findings.extend(ha_findings(instances, groups, api_lb_subnets, sg_id))
    return findings


def _tag(inst, key):
    return next((t.get("Value") or "" for t in inst.get("Tags") or [] if t.get("Key") == key), "")


def evidence(instances, groups, calico_encapsulation="IPIP"):
    """The sg_audit evidence the diagnosis reads: the groups as EC2 holds them and the nodes' membership."""
    return {
        "groups": [groups[g] for g in sorted(groups)],
        "instances": [{"id": i["InstanceId"], "name": _tag(i, "Name"),
                       "private_ip": i.get("PrivateIpAddress", ""), "subnet_id": i.get("SubnetId", ""),
                       "security_groups": [g["GroupId"] for g in i.get("SecurityGroups") or []],
                       "source_dest_check": i.get("SourceDestCheck", True), "arch": i.get("Architecture", "")}
                      for i in instances],
        "node_sg_id": node_sg_id(instances),
        "encapsulation": calico_encapsulation,
    }


def _egress_443_open(group_ids, groups):
    for gid in group_ids:
        for perm in (groups.get(gid) or {}).get("IpPermissionsEgress", []) or []:
            if not perm_covers(perm, "tcp", 443):
                continue
            cidrs = [r.get("CidrIp") for r in perm.get("IpRanges", []) or []]
            if "0.0.0.0/0" in cidrs or perm.get("PrefixListIds"):
                return True
    return False


def _open_world(sg):
    out = []
    for perm in sg.get("IpPermissions", []) or []:
        ranges = [(r.get("CidrIp"), "IpRanges", "CidrIp") for r in perm.get("IpRanges", []) or []]
        ranges += [(r.get("CidrIpv6"), "Ipv6Ranges", "CidrIpv6") for r in perm.get("Ipv6Ranges", []) or []]
        for cidr, key, field in ranges:
            if cidr not in WORLD:
                continue
            for port, what in OPEN_WORLD_PORTS:
                if not perm_covers(perm, "tcp", port):
                    continue
                proto = norm_proto(perm.get("IpProtocol"))
                if proto in ("tcp", "udp") and perm.get("FromPort") not in (None, -1):
                    spec = "IpProtocol=%s,FromPort=%s,ToPort=%s" % (proto, perm["FromPort"], perm.get("ToPort", perm["FromPort"]))
                    shown = "tcp/%s" % perm["FromPort"] if perm["FromPort"] == perm.get("ToPort") else \
                        "tcp/%s-%s" % (perm["FromPort"], perm.get("ToPort"))
                else:
                    spec = "IpProtocol=%s" % proto
                    shown = "all traffic" if proto == "-1" else proto
                out.append(finding(
                    "SG_OPEN_WORLD",
                    "%s (%s) allows %s from %s, which exposes %s (tcp/%d) to the internet"
                    % (sg["GroupId"], sg.get("GroupName", ""), shown, cidr, what, port),
                    "anyone can reach %s: brute force, token or CVE exposure" % what,
                    "aws ec2 revoke-security-group-ingress --group-id %s --ip-permissions '%s,%s=[{%s=%s}]' ; then allow "
                    "only your admin network: set ec2_network_admin_cidr for role ec2_network (for example 203.0.113.0/24) "
                    "and re-run it" % (sg["GroupId"], spec, key, field, cidr),
                    severity=WARNING, where=sg["GroupId"], security_group_id=sg["GroupId"], port=port, cidr=cidr))
    return out


def encapsulation_from_ippools(pools):
    """Calico IPPool objects (crd.projectcalico.org/v1) -> (encapsulation, text). Enabled pools only."""
    modes, names = [], []
    for pool in pools or []:
        spec = pool.get("spec", {}) or {}
        if spec.get("disabled"):
            continue
        modes.append(calico.from_pool_modes(spec.get("ipipMode"), spec.get("vxlanMode")))
        names.append("%s=%s" % ((pool.get("metadata") or {}).get("name", "?"), modes[-1]))
    if not modes:
        return None, "no enabled Calico IPPool found"
    return modes[0], ", ".join(names)


def control_planes(instances):
    """The instances tagged kubeadm_ec2/role=control-plane."""
    return [i for i in instances
            if any(t.get("Key") == "kubeadm_ec2/role" and t.get("Value") == "control-plane" for t in i.get("Tags") or [])]


def _allows_cidr(dst, groups, proto, port, cidr):
    """Whether ``dst``'s groups allow ``proto``/``port`` from every address of ``cidr`` (one rule covering it)."""
    try:
        net = ipaddress.ip_network(u"%s" % cidr, strict=False)
    except ValueError:
        return False
    for g in dst.get("SecurityGroups", []) or []:
        for perm in (groups.get(g["GroupId"]) or {}).get("IpPermissions", []) or []:
            if not perm_covers(perm, proto, port):
                continue
            for r in perm.get("IpRanges", []) or []:
                try:
                    if net.subnet_of(ipaddress.ip_network(u"%s" % r.get("CidrIp", ""), strict=False)):
                        return True
                except (ValueError, TypeError):
                    continue
    return False


def ha_findings(instances, groups, api_lb_subnets=None, sg_id=None):
    """ETCD_BLOCKED between control planes; API_LB_BLOCKED for a load balancer subnet a control plane refuses."""
    findings = []
    sg_id = sg_id or node_sg_id(instances)
    cps = control_planes(instances)
    blocked = {}
    for port, what in ETCD_PORTS:
        for src, dst in _pairs(cps):
            if not ingress_allows(dst, src, groups, "tcp", port):
                blocked.setdefault((src["InstanceId"], dst["InstanceId"]), []).append("tcp/%d (%s)" % (port, what))
    if blocked:
        pairs = sorted(blocked)
        ports = sorted(set(p for v in blocked.values() for p in v))
        findings.append(finding(
            "ETCD_BLOCKED",
            "%s not allowed between control planes for %d of %d pair(s) (%s)"
            % (", ".join(ports), len(pairs), len(cps) * (len(cps) - 1),
               ", ".join("%s->%s" % p for p in pairs[:6]) + (", ..." if len(pairs) > 6 else "")),
            "etcd members on the control planes cannot reach each other: kubeadm join --control-plane fails at the "
            "etcd step, and a cluster that loses the majority of its members stops accepting writes",
            "aws ec2 authorize-security-group-ingress --group-id %s --ip-permissions "
            "'IpProtocol=tcp,FromPort=2379,ToPort=2380,UserIdGroupPairs=[{GroupId=%s}]' ; or add the self-referencing "
            "rule (set ec2_network_sg_self_reference: true for role ec2_network and re-run it)" % (sg_id, sg_id),
            where=sg_id, security_group_id=sg_id, pairs=["%s->%s" % p for p in pairs], ports=[2379, 2380],
            cli=cat.authorize_ingress_cli(sg_id, ["IpProtocol=tcp,FromPort=2379,ToPort=2380,"
                                                  "UserIdGroupPairs=[{GroupId=%s}]" % sg_id])))
    for subnet in api_lb_subnets or []:
        cidr = subnet.get("CidrBlock", "")
        refusing = [c for c in cps if not _allows_cidr(c, groups, "tcp", API_PORT, cidr)]
        if not refusing:
            continue
        target_sg = next((g["GroupId"] for g in refusing[0].get("SecurityGroups", []) or [] if g["GroupId"] != sg_id),
                         sg_id)
        findings.append(finding(
            "API_LB_BLOCKED",
            "tcp/%d from %s (%s), a subnet of the API load balancer, is not allowed on control plane(s) %s"
            % (API_PORT, subnet.get("SubnetId", "?"), cidr, ", ".join(_name(c) for c in refusing)),
            "the load balancer's health checks come from its private addresses in that subnet: the target group "
            "marks these control planes unhealthy and the API endpoint stops sending them traffic",
            "aws ec2 authorize-security-group-ingress --group-id %s --ip-permissions "
            "'IpProtocol=tcp,FromPort=%d,ToPort=%d,IpRanges=[{CidrIp=%s}]' ; or re-run playbooks/provision.yml "
            "(role ec2_nodes sets these rules in the API security group)" % (target_sg, API_PORT, API_PORT, cidr),
            cli=cat.authorize_ingress_cli(target_sg, ["IpProtocol=tcp,FromPort=%d,ToPort=%d,IpRanges=[{CidrIp=%s}]"
                                                      % (API_PORT, API_PORT, cidr)]),
            where=subnet.get("SubnetId", cidr), subnet_id=subnet.get("SubnetId", ""), cidr=cidr,
            instances=[c["InstanceId"] for c in refusing]))
    return findings
