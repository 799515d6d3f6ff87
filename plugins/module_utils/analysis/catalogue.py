# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one catalogue of finding ids and root-cause ids, with their titles and the fixes they share.

Every check builds its findings with ``findings.finding()``, which accepts only the ids listed
here. ``diagnosis.diagnose()`` builds root causes from the same entries. Remediation text that
more than one place needs (the self-reference CLI, the role variables, the CoreDNS loop fix, ...)
is written once, below, and imported by the checks and the diagnosis.

Each entry: ``title`` (what a cause is called in a report), ``kind`` (``observation``: a finding
that only records what was seen and is explained by some other cause; ``cause``: a finding that
is a root cause by itself unless a wider cause explains it; ``diagnosis``: a cause id that only
the diagnosis produces), ``role_var`` (the role variable that fixes it, or "") and ``verify``
(the command that shows it is fixed).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

SG_PLACEHOLDER = "<node-sg-id>"
SUBNET_PLACEHOLDER = "<subnet-id>"
VPC_RESOLVER = "169.254.169.253"
ROLE_VAR_SELF_REF = "ec2_network_sg_self_reference: true"
ROLE_VAR_EGRESS = "ec2_network_egress_cidrs: ['0.0.0.0/0']"
ROLE_VAR_ADMIN_CIDR = "ec2_network_admin_cidr: <your admin network, e.g. 203.0.113.0/24>"
ROLE_VAR_ENCAP = "calico_encapsulation: IPIP"
ROLE_VAR_FORWARD = "coredns_forward_target: %s" % VPC_RESOLVER
ROLE_VAR_RESOLV_CONF = "kubeadm_kubelet_resolv_conf: auto"
VALIDATE = "ansible-playbook -i <inventory> kubeadm_ec2.cluster.validate"

OBSERVATION = "observation"
CAUSE = "cause"
DIAGNOSIS = "diagnosis"

ENTRIES = {
    # sg_audit: what EC2 holds
    "SG_NO_SELF_REF": dict(kind=CAUSE, title="The node security group has no self-referencing rule",
                           role_var=ROLE_VAR_SELF_REF),
    "ENCAP_BLOCKED": dict(kind=CAUSE, title="The security group blocks the protocol the Calico encapsulation needs",
                          role_var=ROLE_VAR_SELF_REF),
    "SRC_DST_CHECK": dict(kind=CAUSE, title="EC2 source/destination check drops unencapsulated pod traffic",
                          role_var=ROLE_VAR_ENCAP),
    "EGRESS_443": dict(kind=CAUSE, title="The security group closes egress tcp/443", role_var=ROLE_VAR_EGRESS),
    "SG_OPEN_WORLD": dict(kind=CAUSE, title="SSH or the Kubernetes API is open to the internet",
                          role_var=ROLE_VAR_ADMIN_CIDR),
    # sg_audit, HA control plane: etcd between the control planes; 6443 from the API load balancer's subnets
    "ETCD_BLOCKED": dict(kind=CAUSE, title="The security groups block etcd between the control planes",
                         role_var=ROLE_VAR_SELF_REF),
    "API_LB_BLOCKED": dict(kind=CAUSE, title="The control planes refuse the API load balancer's health checks",
                           role_var=""),
    # node_reachability: what the probes saw
    "NODE_UNREACHABLE": dict(kind=CAUSE, title="A node answers no probe", role_var=""),
    "NODE_PORT_BLOCKED": dict(kind=OBSERVATION, title="Probes between two nodes were dropped", role_var=""),
    # dns
    "DNS_POD_UNREACHABLE": dict(kind=OBSERVATION, title="A node gets no answer from a CoreDNS pod on another node",
                                role_var=""),
    "DNS_SERVICE_UNREACHABLE": dict(kind=CAUSE, title="The cluster DNS service does not answer", role_var=""),
    "DNS_LOOKUP_FAILED": dict(kind=OBSERVATION, title="A probe pod's lookups through the cluster DNS failed",
                              role_var=""),
    "COREDNS_NOT_READY": dict(kind=CAUSE, title="CoreDNS pods are not ready", role_var=""),
    "UPSTREAM_TIMEOUT": dict(kind=CAUSE, title="CoreDNS's upstream resolver does not answer",
                             role_var=ROLE_VAR_FORWARD),
    "DNS_NO_ENDPOINTS": dict(kind=CAUSE, title="The kube-dns Service has no endpoints", role_var=""),
    "NETPOL_BLOCKS_DNS": dict(kind=CAUSE, title="A NetworkPolicy drops DNS queries", role_var=""),
    "SVC_NO_ENDPOINTS": dict(kind=CAUSE, title="A Service selects no serving pod", role_var=""),
    "DNS_NAME_NOT_FOUND": dict(kind=CAUSE, title="A name does not exist in cluster DNS", role_var=""),
    "DNS_PROBE_FAILED": dict(kind=CAUSE, title="A DNS probe pod could not run", role_var=""),
    # image_arch
    "IMAGE_ARCH_MISMATCH": dict(kind=CAUSE, title="An image has no build for a node's architecture", role_var=""),
    "IMAGE_EXEC_FORMAT": dict(kind=CAUSE, title="An image is built for another architecture only (exec format error "
                                                "at start)", role_var=""),
    "IMAGE_PLATFORM_FALLBACK": dict(kind=CAUSE, title="An image runs only through a 32-bit platform fallback",
                                    role_var=""),
    "IMAGE_UNREACHABLE": dict(kind=CAUSE, title="An image cannot be read from its registry", role_var=""),
    "INPUT_INVALID": dict(kind=CAUSE, title="An input could not be used", role_var=""),
    # netpol / paths
    "NETPOL_NEAR_MISS": dict(kind=CAUSE, title="A NetworkPolicy rule matches nothing it seems meant for", role_var=""),
    "NETPOL_SELECTS_NOTHING": dict(kind=CAUSE, title="A NetworkPolicy selects no pod", role_var=""),
    "PATH_BLOCKED": dict(kind=CAUSE, title="An application path is blocked", role_var=""),
    "NETPOL_NOT_ENFORCED": dict(kind=CAUSE, title="NetworkPolicies are not enforced (the CNI does not implement "
                                                  "them)", role_var=""),
    # paths: the live pod mesh (analysis/mesh.py)
    "POD_PATH_BLOCKED": dict(kind=CAUSE, title="Probe pods cannot reach each other", role_var=""),
    "SERVICE_PATH_BLOCKED": dict(kind=CAUSE, title="Probe pods cannot reach a ClusterIP Service", role_var=""),
    "EGRESS_BLOCKED": dict(kind=CAUSE, title="Probe pods cannot reach an address outside the cluster",
                           role_var=""),
    "MESH_PROBE_FAILED": dict(kind=CAUSE, title="A mesh probe pod could not run", role_var=""),
    "MESH_NETPOL_DENIED": dict(kind=CAUSE, title="NetworkPolicies select the mesh probe pods", role_var=""),
    # validate: the Kubernetes API reads
    "API_UNREACHABLE": dict(kind=CAUSE, title="The Kubernetes API does not answer", role_var=""),
    # causes only the diagnosis infers
    "BLOCKED_OUTSIDE_SG": dict(kind=DIAGNOSIS,
                               title="Traffic the security group allows is dropped outside it (network ACL or host "
                                     "firewall)", role_var=""),
    "NODE_PORTS_BLOCKED": dict(kind=DIAGNOSIS,
                               title="Traffic between nodes is dropped (security group, network ACL or host firewall)",
                               role_var=""),
    "COREDNS_LOOP": dict(kind=DIAGNOSIS, title="CoreDNS forwards to itself and crashes (forwarding loop)",
                         role_var=ROLE_VAR_RESOLV_CONF),
}

# Finding ids the checks may emit (every entry but the diagnosis-only ones), in catalogue order.
FINDING_IDS = tuple(k for k, v in ENTRIES.items() if v["kind"] != DIAGNOSIS)
CAUSE_IDS = tuple(ENTRIES)


# -- one command --------------------------------------------------------------------------------------
_PROGRAM = re.compile(r"^[a-z][a-z0-9._-]*( |$)")
_PROSE = re.compile(r"(^|\s)(or|then|and|if|else)(\s|$)", re.I)


def _unquoted(text):
    """``text`` with every single- or double-quoted part blanked out."""
    out, quote = [], None
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
            out.append(" ")
        elif ch in "'\"":
            quote = ch
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out), quote is None


def is_one_command(text):
    """Whether ``text`` is ONE shell command a user can paste: a program name first, one line, balanced
    quotes, and outside quotes no command separator (``;``, ``&&``, ``||``), no subshell or heredoc
    (``(``, ``)``, ``<<``) and no prose (a ``label: `` before the command, or/then/and/if/else). A pipeline
    (``a | b``) is one command."""
    if not isinstance(text, str) or not text.strip() or "\n" in text or not _PROGRAM.match(text):
        return False
    bare, balanced = _unquoted(text)
    if not balanced:
        return False
    return not (any(sep in bare for sep in (";", "&&", "||", "(", ")", "<<", ": ")) or _PROSE.search(bare))


def validate_cli(check=None):
    """The command that re-runs validate (only ``check`` when given): what shows a fix worked."""
    if not check:
        return VALIDATE
    return "%s -e '{\"validate_checks\": [\"%s\"]}'" % (VALIDATE, check)


def entry(fid):
    """The catalogue entry of ``fid`` (raises ValueError for an unknown id)."""
    if fid not in ENTRIES:
        raise ValueError("unknown catalogue id %r" % (fid,))
    return ENTRIES[fid]


def title(fid):
    return entry(fid)["title"]


def role_var(fid):
    return entry(fid)["role_var"]


# -- security group remediation ------------------------------------------------------------------
def sg_permission(proto, port, sg_id=None):
    """One IpPermissions item allowing ``proto`` (tcp/udp/4/-1) [and ``port``] from the node SG itself."""
    sg = sg_id or SG_PLACEHOLDER
    if proto in ("tcp", "udp") and port is not None:
        return "IpProtocol=%s,FromPort=%d,ToPort=%d,UserIdGroupPairs=[{GroupId=%s}]" % (proto, port, port, sg)
    return "IpProtocol=%s,UserIdGroupPairs=[{GroupId=%s}]" % (proto, sg)


def authorize_ingress_cli(sg_id, permissions):
    return "aws ec2 authorize-security-group-ingress --group-id %s --ip-permissions %s" % (
        sg_id or SG_PLACEHOLDER, " ".join("'%s'" % p for p in permissions))


def self_ref_cli(sg_id=None):
    """The one command that adds the self-referencing rule to the node security group."""
    return authorize_ingress_cli(sg_id, [sg_permission("-1", None, sg_id)])


def self_ref_fix(sg_id=None):
    return ("add the self-referencing rule (inbound all traffic from the node security group itself): %s ; "
            "or set %s for role ec2_network and re-run it" % (self_ref_cli(sg_id), ROLE_VAR_SELF_REF))


def self_ref_verify(sg_id=None):
    """Prints the group's own id once the self-referencing rule is there (an empty list before)."""
    sg = sg_id or SG_PLACEHOLDER
    return ("aws ec2 describe-security-groups --group-ids %s --query "
            "\"SecurityGroups[0].IpPermissions[?IpProtocol=='-1'].UserIdGroupPairs[].GroupId\"" % sg)


def encap_fix(labels, permissions, sg_id=None):
    """Allow the encapsulation protocols ``labels`` (already rendered ``permissions``), or the self-reference."""
    return ("allow %s between the nodes: %s ; or add the self-referencing rule (%s) / set %s for role "
            "ec2_network; or switch the Calico IPPool to an encapsulation the security group allows"
            % (", ".join(labels), authorize_ingress_cli(sg_id, permissions), self_ref_cli(sg_id), ROLE_VAR_SELF_REF))


def src_dst_check_cli(instance_id):
    return "aws ec2 modify-instance-attribute --instance-id %s --no-source-dest-check" % instance_id


def egress_443_cli(sg_id):
    return ("aws ec2 authorize-security-group-egress --group-id %s "
            "--ip-permissions 'IpProtocol=tcp,FromPort=443,ToPort=443,IpRanges=[{CidrIp=0.0.0.0/0}]'" % sg_id)


def host_firewall_cli(nodes):
    """Lists the packet filter rules (nftables; iptables-nft rules show there too) of ``nodes``."""
    return "ansible -i <inventory> %s --become -m ansible.builtin.command -a 'nft list ruleset'" % ":".join(nodes)


def nacl_cli(subnets):
    """Lists the network ACLs of ``subnets``."""
    return ("aws ec2 describe-network-acls --filters Name=association.subnet-id,Values=%s"
            % ",".join(sorted(subnets) or [SUBNET_PLACEHOLDER]))


def outside_sg_cli(dst_nodes, subnets=(), same_subnet=True):
    """Where to look for a drop the security group does not explain: the nodes' own packet filter
    when a dropped pair shares a subnet (network ACLs do not filter inside a subnet), else the
    network ACLs of the subnets."""
    if same_subnet or not subnets:
        return host_firewall_cli(dst_nodes)
    return nacl_cli(subnets)


# -- DNS remediation -------------------------------------------------------------------------------
def coredns_forward_cli(target=VPC_RESOLVER, namespace="kube-system"):
    """Points the Corefile's forward at ``target`` (the VPC resolver by default); CoreDNS's reload
    plugin picks the change up, and a crash-looping pod reads it when it restarts."""
    return ("kubectl -n %s get configmap coredns -o yaml | sed -E 's#forward [.] [^{]+#forward . %s #' | "
            "kubectl apply -f -" % (namespace, target))


def coredns_pods_cli(namespace="kube-system"):
    """Shows whether the CoreDNS pods run and are ready."""
    return "kubectl -n %s get pods -l k8s-app=kube-dns -o wide" % namespace


def coredns_loop_fix(namespace="kube-system"):
    return ("break the forwarding loop: set resolvConf: /run/systemd/resolve/resolv.conf in the kubelet "
            "configuration (/var/lib/kubelet/config.yaml) on every node and restart kubelet, or change the "
            "Corefile to 'forward . %s' (the VPC resolver): kubectl -n %s edit configmap coredns; then "
            "kubectl -n %s rollout restart deployment coredns" % (VPC_RESOLVER, namespace, namespace))


def upstream_fix():
    return ("allow egress UDP/TCP 53 from the nodes to the upstream resolver (security group egress / NACL), or "
            "point the Corefile at a reachable resolver: 'forward . %s' (kubectl -n kube-system edit configmap "
            "coredns)" % VPC_RESOLVER)


def dns_verify(name="kubernetes.default.svc.cluster.local"):
    """Resolves ``name`` from a throw-away pod through the cluster DNS."""
    return "kubectl run dns-check --rm -i --restart=Never --image=busybox:1.36.1 -- nslookup %s" % name
