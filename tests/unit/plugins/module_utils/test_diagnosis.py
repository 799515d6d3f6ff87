"""The diagnosis layer: each rule proven both ways, on check results built by the real analyses.

The node network is simulated from the security group itself: a probe passes when the group allows
it (analysis/sg.py decides, as EC2 would) and no "host firewall" drop was added; node-to-pod DNS
traffic passes only with all traffic allowed between the nodes (as in the lab, which routes pod
traffic without encapsulation). Probe pods' queries go to the CoreDNS pod the test says the
service picked, so determinism is checked over every pick.
"""

import itertools

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import diagnosis as dg
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import dns
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import reachability as r
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import sg as sgmod
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import finding
from tests.lab import netlab

NODES = {"node1": "10.0.1.11", "node2": "10.0.1.12", "node3": "10.0.1.13"}
CPS = ["node1"]
SG_ID = "sg-1"


def _ec2(perms):
    """The lab's SG model as EC2 holds it: the lab's placeholder for "the group itself" becomes SG_ID."""
    return [dict(p, UserIdGroupPairs=[{"GroupId": SG_ID}]) if p.get("UserIdGroupPairs") else dict(p) for p in perms]


SEED = _ec2(netlab.SEED_SG)  # the seeds' group: allow-listed ports only
HEALTHY = _ec2(netlab.HEALTHY_SG)  # plus the self-referencing rule
EGRESS = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
COREDNS = {"node1": "192.168.1.10", "node2": "192.168.2.10"}  # CoreDNS pod per node
CLUSTER_NAME = "kubernetes.default.svc.cluster.local"
EXTERNAL = "example.test"
COREFILE = ".:53 {\n    kubernetes cluster.local\n    forward . 10.0.0.2\n    loop\n}\n"


def _instances():
    return [{"InstanceId": "i-%d" % n, "PrivateIpAddress": ip, "SubnetId": "subnet-1", "SourceDestCheck": True,
             "Tags": [{"Key": "Name", "Value": name}], "SecurityGroups": [{"GroupId": SG_ID}]}
            for n, (name, ip) in enumerate(sorted(NODES.items()), 1)]


def _groups(perms):
    return {SG_ID: {"GroupId": SG_ID, "GroupName": "nodes", "IpPermissions": perms, "IpPermissionsEgress": EGRESS}}


class Cluster:
    """One simulated cluster: its SG, host-firewall drops ((dst, check) pairs) and upstream."""

    def __init__(self, perms, drops=(), upstream_ok=True, sg_audit=True, host_external=True, encap="IPIP",
                 subnets=None):
        self.perms, self.drops, self.upstream_ok = perms, set(drops), upstream_ok
        self.sg_audit, self.host_external = sg_audit, host_external
        self.encap, self.subnets = encap, subnets  # Calico mode; node_reachability's {node: subnet_id}
        self.insts = dict((i["Tags"][0]["Value"], i) for i in _instances())
        self.groups = _groups(perms)

    def allows(self, src, dst, proto, port=None):
        return sgmod.ingress_allows(self.insts[dst], self.insts[src], self.groups, proto, port)

    def passes(self, src, dst, check):
        if (dst, check) in self.drops:
            return False
        proto, port = r.CHECKS[check][0], r.CHECKS[check][1]
        if proto == "ip":
            return self.allows(src, dst, "4")
        return self.allows(src, dst, proto, port)

    def pod_path(self, src, dst):
        """Node (or pod on node) src -> CoreDNS pod on node dst (routed, unencapsulated as in the lab)."""
        return src == dst or self.allows(src, dst, "-1")

    # -- check results as the checks produce them --------------------------------------------------
    def reach(self):
        probes, listens = {}, {}
        for src in NODES:
            results, sent = [], []
            for dst in sorted(NODES):
                if dst == src:
                    continue
                for check in r.plan_checks(src, dst, CPS, names=list(NODES)):
                    ok = self.passes(src, dst, check)
                    if r.CHECKS[check][0] == "tcp":
                        results.append([dst, check, "ok" if ok else "blocked", "refused" if ok else "timeout"])
                    else:
                        results.append([dst, check, "sent", "5 packet(s)"])
                        sent.append([dst, check, 5])
            probes[src] = {"node": src, "ip": NODES[src], "results": results, "sent": sent}
        for dst in NODES:
            got = [[NODES[s], c, 5] for s in NODES if s != dst for c in ("vxlan", "ipip")
                   if c in r.plan_checks(s, dst, CPS, names=list(NODES)) and self.passes(s, dst, c)]
            listens[dst] = {"received": got, "missing": False}
        findings, _summary, matrix = r.analyse(NODES, CPS, probes, listens, self.encap, sg_id=SG_ID,
                                               subnets=self.subnets)
        return {"status": "failed" if any(f["severity"] == "error" for f in findings) else "passed", "msg": "",
                "findings": findings,
                "evidence": {"nodes": dict(NODES), "control_planes": CPS, "matrix": r.matrix_rows(NODES, matrix),
                             "unreachable": [], "subnets": dict(self.subnets or {})}}

    def audit(self):
        insts = list(self.insts.values())
        findings = sgmod.audit(insts, self.groups, self.encap)
        return {"status": "failed" if any(f["severity"] == "error" for f in findings) else "passed", "msg": "",
                "findings": findings, "evidence": sgmod.evidence(insts, self.groups, self.encap)}

    def state(self):
        return {"endpoints": [{"ip": ip, "node": n} for n, ip in sorted(COREDNS.items())],
                "service_ip": "10.96.0.10", "corefile": COREFILE,
                "coredns_pods": [{"name": "coredns-%s" % n, "node": n, "ip": ip, "ready": True}
                                 for n, ip in sorted(COREDNS.items())],
                "nodes": [{"name": n, "ip": ip} for n, ip in sorted(NODES.items())]}

    def answer(self, src, ep_node, kind):
        if not self.pod_path(src, ep_node):
            return "timeout"
        return "ok" if kind == "cluster" or self.upstream_ok else "timeout"

    def host_results(self, pick):
        out = []
        for node in sorted(NODES):
            qs = []
            for kind, name in (("cluster", CLUSTER_NAME), ("external", EXTERNAL)):
                if kind == "external" and not self.host_external:
                    continue  # the host path did not ask the external name
                qs.append({"target": "service", "server": "10.96.0.10", "endpoint_node": "", "name": name,
                           "kind": kind, "status": self.answer(node, pick[node], kind), "ms": 1.0})
                for ep_node, ip in sorted(COREDNS.items()):
                    qs.append({"target": "endpoint", "server": ip, "endpoint_node": ep_node, "name": name,
                               "kind": kind, "status": self.answer(node, ep_node, kind), "ms": 1.0})
            out.append({"node": node, "node_ip": NODES[node], "service_ip": "10.96.0.10", "queries": qs,
                        "resolv_conf": {"nameservers": ["10.0.0.2"]}})
        return out

    def pod_results(self, pick):
        return [{"node": n, "pod": "dns-probe-%s" % n, "outcome": "finished",
                 "results": [{"name": name, "kind": kind, "status": self.answer(n, pick[n], kind), "answer": ""}
                             for kind, name in (("cluster", CLUSTER_NAME), ("external", EXTERNAL))]}
                for n in sorted(NODES)]

    def dns(self, pick):
        state = self.state()
        hosts, pods = self.host_results(pick), self.pod_results(pick)
        findings = dns.analyze(state, [], hosts, pods, timeout=1.0)
        return {"status": "failed" if any(f["severity"] == "error" for f in findings) else "passed", "msg": "",
                "findings": findings, "evidence": {"state": state, "host_results": hosts, "pod_results": pods}}

    def checks(self, pick=None):
        pick = pick or {"node1": "node1", "node2": "node2", "node3": "node1"}
        out = {"node_reachability": self.reach(), "dns": self.dns(pick)}
        out["sg_audit"] = self.audit() if self.sg_audit else {"status": "skipped", "msg": "", "findings": [],
                                                              "evidence": {}}
        return out


# Every way the service could have sent each probe pod's (and each node's) queries.
PICKS = [dict(zip(sorted(NODES), combo)) for combo in itertools.product(sorted(COREDNS), repeat=len(NODES))]
DROP_10250 = [("node3", "kubelet")]


def _ids(causes):
    return [c["id"] for c in causes]


@pytest.mark.parametrize("cluster,expected", [
    (Cluster(HEALTHY), []),
    (Cluster(SEED), ["SG_NO_SELF_REF"]),
    (Cluster(HEALTHY, drops=DROP_10250), ["BLOCKED_OUTSIDE_SG"]),
    (Cluster(HEALTHY, upstream_ok=False), ["UPSTREAM_TIMEOUT"]),
    (Cluster(HEALTHY, drops=DROP_10250, upstream_ok=False), ["BLOCKED_OUTSIDE_SG", "UPSTREAM_TIMEOUT"]),
    (Cluster(SEED, upstream_ok=False), ["SG_NO_SELF_REF", "UPSTREAM_TIMEOUT"]),
    (Cluster(SEED, sg_audit=False), ["NODE_PORTS_BLOCKED"]),
], ids=["healthy", "seed", "drop-10250", "upstream", "drop+upstream", "seed+upstream", "seed-no-audit"])
def test_causes_do_not_depend_on_the_coredns_pod_a_probe_reached(cluster, expected):
    """The same causes for every DNAT pick, and every error finding explained by one of them."""
    for pick in PICKS:
        checks = cluster.checks(pick)
        causes = dg.diagnose(checks)
        assert _ids(causes) == expected, (pick, [(c["id"], c["explains"]) for c in causes])
        assert dg.unexplained(checks, causes) == [], pick
        assert causes == dg.diagnose(checks)  # and the same answer twice
        assert dg.contradictions(checks) == [], pick


def test_seed_is_one_cause_with_every_symptom_attached():
    checks = Cluster(SEED).checks()
    (cause,) = dg.diagnose(checks)
    assert cause["title"] == "The node security group has no self-referencing rule (node security group sg-1)"
    assert cause["confidence"] == "certain"
    assert cause["fix"] == {
        "cli": "aws ec2 authorize-security-group-ingress --group-id sg-1 --ip-permissions "
               "'IpProtocol=-1,UserIdGroupPairs=[{GroupId=sg-1}]'",
        "role_var": "ec2_network_sg_self_reference: true"}
    assert cause["verify"] == (
        "aws ec2 describe-security-groups --group-ids sg-1 --query "
        "\"SecurityGroups[0].IpPermissions[?IpProtocol=='-1'].UserIdGroupPairs[].GroupId\"")
    explained = sorted((e["check"], e["id"]) for e in cause["explains"])
    assert explained == sorted(
        [("sg_audit", "SG_NO_SELF_REF"), ("sg_audit", "ENCAP_BLOCKED"), ("sg_audit", "ENCAP_BLOCKED")]
        + [("node_reachability", "NODE_PORT_BLOCKED")] * 6
        + [("dns", "DNS_POD_UNREACHABLE")] * 4 + [("dns", "DNS_LOOKUP_FAILED")])
    assert cause["evidence"][0] == (
        "sg-1 (as EC2 holds it) has no inbound rule allowing all traffic from itself; it allows: tcp/22 from "
        "10.231.1.0/24; tcp/6443 from 10.231.1.0/24; tcp/30000-32767 from 0.0.0.0/0; udp/4789 from 0.0.0.0/0")
    assert cause["evidence"][-3] == (
        "node_reachability: 6 node pair(s) blocked on ports the group does not allow (ip protocol 4 (IP-in-IP), "
        "tcp/10250, tcp/179, tcp/40123, tcp/6443)")
    assert cause["evidence"][-2] == (
        "dns: CoreDNS pods on other nodes time out for node1 -> node2, node2 -> node1, node3 -> node1, "
        "node3 -> node2, carried by ip protocol 4 (IP-in-IP) which the group does not allow")
    assert cause["evidence"][-1] == ("dns: probe pod lookups on node3 failed when the service picked a CoreDNS pod "
                                     "on a blocked node pair")
    assert dg.headline(checks, [cause]) == "1 root cause explains 14 findings"


@pytest.mark.parametrize("keep_audit_findings,expected,confidence", [
    (True, ["SG_NO_SELF_REF"], "likely"),       # the audit's word, without its rules: one cause, likely
    (False, ["NODE_PORTS_BLOCKED"], "likely"),  # no audit at all: both places to look
])
def test_seed_without_the_security_group_rules(keep_audit_findings, expected, confidence):
    checks = Cluster(SEED).checks()
    checks["sg_audit"]["evidence"] = {}
    if not keep_audit_findings:
        checks["sg_audit"]["findings"] = []
    causes = dg.diagnose(checks)
    assert _ids(causes) == expected and causes[0]["confidence"] == confidence
    assert dg.unexplained(checks, causes) == []
    if keep_audit_findings:
        assert causes[0]["evidence"][-1] == (
            "node_reachability: 6 node pair(s) blocked; the security group rules were not in the evidence, so these "
            "drops are put down to the missing self-reference the audit reported")


def test_a_drop_the_sg_allows_is_never_the_self_reference():
    checks = Cluster(HEALTHY, drops=DROP_10250).checks()
    (cause,) = dg.diagnose(checks)
    assert cause["id"] == "BLOCKED_OUTSIDE_SG"
    assert cause["title"] == ("Traffic the security group allows is dropped outside it (network ACL or host "
                              "firewall), towards node3")
    assert cause["evidence"] == [
        "node1 -> node3: tcp/10250 dropped, although the security group allows it from node1",
        "node1 and node3 share subnet subnet-1: network ACLs do not filter traffic inside a subnet, so the drop "
        "is on node3 itself (host firewall)",
        "node2 -> node3: tcp/10250 dropped, although the security group allows it from node2",
        "node2 and node3 share subnet subnet-1: network ACLs do not filter traffic inside a subnet, so the drop "
        "is on node3 itself (host firewall)"]
    # the pairs share a subnet, so the one command lists node3's own packet filter (not the network ACLs)
    assert cause["fix"] == {"cli": "ansible -i <inventory> node3 --become -m ansible.builtin.command "
                                   "-a 'nft list ruleset'", "role_var": ""}
    assert cause["verify"] == ("ansible-playbook -i <inventory> kubeadm_ec2.cluster.validate "
                               "-e '{\"validate_checks\": [\"node_reachability\"]}'")
    assert "authorize-security-group-ingress" not in str(cause) and "sg_self_reference" not in str(cause)
    assert [e["where"] for e in cause["explains"]] == ["node1 (10.0.1.11) -> node3 (10.0.1.13)",
                                                       "node2 (10.0.1.12) -> node3 (10.0.1.13)"]


def test_a_port_the_sg_lacks_and_another_it_allows_are_two_causes():
    """No self-reference but tcp/10250 allowed from the group: the ephemeral port is the group's, the
    10250 drop on node3 is not."""
    perms = SEED + [{"IpProtocol": "tcp", "FromPort": 10250, "ToPort": 10250, "UserIdGroupPairs": [{"GroupId": SG_ID}]}]
    checks = Cluster(perms, drops=DROP_10250).checks()
    causes = dg.diagnose(checks)
    assert _ids(causes) == ["SG_NO_SELF_REF", "BLOCKED_OUTSIDE_SG"]
    assert causes[1]["evidence"][0] == "node1 -> node3: tcp/10250 dropped, although the security group allows it from node1"
    assert dg.unexplained(checks, causes) == []


def test_upstream_from_the_host_path():
    checks = Cluster(HEALTHY, upstream_ok=False).checks()
    (cause,) = dg.diagnose(checks)
    assert cause["id"] == "UPSTREAM_TIMEOUT" and cause["confidence"] == "certain"
    assert cause["title"] == "CoreDNS's upstream resolver does not answer"
    assert cause["evidence"] == [
        "dns (host path, every CoreDNS pod asked directly): example.test: timeout from CoreDNS pod(s) 192.168.1.10 "
        "on node1, 192.168.2.10 on node2, which answer cluster names (queried from node1, node2, node3)",
        "dns: the Corefile forwards '.' to 10.0.0.2"]
    assert cause["fix"]["role_var"] == "coredns_forward_target: 169.254.169.253"
    assert cause["fix"]["cli"] == ("kubectl -n kube-system get configmap coredns -o yaml | sed -E "
                                   "'s#forward [.] [^{]+#forward . 169.254.169.253 #' | kubectl apply -f -")
    assert cause["verify"] == ("kubectl run dns-check --rm -i --restart=Never --image=busybox:1.36.1 -- "
                               "nslookup example.test")
    assert sorted(e["id"] for e in cause["explains"]) == ["DNS_LOOKUP_FAILED"] * 3 + ["UPSTREAM_TIMEOUT"]


def test_seed_pod_dnated_to_an_unreachable_coredns_is_not_upstream():
    """The issue's false UPSTREAM_TIMEOUT: node1's pod resolved the cluster name through its own CoreDNS
    pod and the external name was sent to node2's, across the missing self-reference."""
    cluster = Cluster(SEED)
    pods = cluster.pod_results({"node1": "node1", "node2": "node2", "node3": "node1"})
    pods[0]["results"][1]["status"] = "timeout"  # external name DNATed to node2's pod
    checks = cluster.checks()
    checks["dns"]["findings"] = dns.analyze(cluster.state(), [], checks["dns"]["evidence"]["host_results"], pods, 1.0)
    causes = dg.diagnose(checks)
    assert _ids(causes) == ["SG_NO_SELF_REF"]
    assert ("dns", "DNS_LOOKUP_FAILED", "node1") in [(e["check"], e["id"], e["where"]) for e in causes[0]["explains"]]
    assert dg.unexplained(checks, causes) == []


@pytest.mark.parametrize("endpoints,pod_endpoint,expected,confidence", [
    (["node1"], None, ["UPSTREAM_TIMEOUT"], "likely"),          # one CoreDNS pod: the same endpoint
    (["node1", "node2"], "192.168.1.10", ["UPSTREAM_TIMEOUT"], "likely"),  # the probes name the endpoint
    (["node1", "node2"], None, [], None),                         # which endpoint is unknown: no cause
])
def test_upstream_from_probe_pods_only(endpoints, pod_endpoint, expected, confidence):
    """No host-path answer for the external name: every probe pod failing it while cluster names resolve
    through the same endpoint is the upstream; otherwise it is left unexplained, not guessed."""
    cluster = Cluster(HEALTHY, upstream_ok=False, host_external=False)
    checks = cluster.checks()
    state = dict(cluster.state(), endpoints=[{"ip": COREDNS[n], "node": n} for n in endpoints])
    pods = checks["dns"]["evidence"]["pod_results"]
    for p in pods:
        for res in p["results"]:
            if pod_endpoint:
                res["endpoint"] = pod_endpoint
    checks["dns"]["evidence"]["state"] = state
    checks["dns"]["findings"] = dns.analyze(state, [], checks["dns"]["evidence"]["host_results"], pods, 1.0)
    assert "UPSTREAM_TIMEOUT" not in [f["id"] for f in checks["dns"]["findings"]]
    causes = dg.diagnose(checks)
    assert _ids(causes) == expected
    if confidence:
        assert causes[0]["confidence"] == confidence
        assert causes[0]["evidence"][0] == ("dns (probe pods): every probe pod failed the external name while "
                                            "cluster names resolved through the same CoreDNS endpoint (node1, "
                                            "node2, node3)")
        assert dg.unexplained(checks, causes) == []
    else:
        assert [u["id"] for u in dg.unexplained(checks, causes)] == ["DNS_LOOKUP_FAILED"] * 3


def test_host_path_answering_the_external_name_rules_out_pod_upstream():
    cluster = Cluster(HEALTHY)
    checks = cluster.checks()
    pods = checks["dns"]["evidence"]["pod_results"]
    for p in pods:
        p["results"][1]["status"] = "timeout"
        p["results"][1]["endpoint"] = "192.168.1.10"
    checks["dns"]["findings"] = dns.analyze(cluster.state(), [], checks["dns"]["evidence"]["host_results"], pods, 1.0)
    causes = dg.diagnose(checks)
    assert causes == []
    assert [u["id"] for u in dg.unexplained(checks, causes)] == ["DNS_LOOKUP_FAILED"] * 3
    assert dg.headline(checks, causes) == "0 root causes explain 0 findings; 3 error findings unexplained"


# -- single causes -----------------------------------------------------------------------------------
LOOP_MSG = 'plugin/loop: Loop (127.0.0.1:41279 -> :53) detected for zone "."'


def _coredns_state(ready, message):
    pod = {"metadata": {"name": "coredns-a", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
           "spec": {"nodeName": "node1"},
           "status": {"phase": "Running", "podIP": "192.168.1.10",
                      "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                      "containerStatuses": [{"restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                                             "lastState": {"terminated": {"reason": "Error", "message": message}}}]}}
    corefile = ".:53 {\n    forward . /etc/resolv.conf\n    loop\n}\n"
    return dns.summarize_cluster({"coredns_pods": [pod], "dns_service": {"spec": {"clusterIP": "10.96.0.10"}},
                                  "dns_slices": [], "coredns_configmap": {"data": {"Corefile": corefile}}})


@pytest.mark.parametrize("message,resolver,expected", [
    (LOOP_MSG, "127.0.0.53", ["COREDNS_LOOP"]),                       # crash + loopback resolver: one cause
    ("plugin/kubernetes: bad config", "10.0.0.2", ["COREDNS_NOT_READY"]),  # a crash that is not the loop
])
def test_coredns_crash_is_one_cause(message, resolver, expected):
    state = _coredns_state(False, message)
    static = dns.cluster_findings({}, state, node_resolv={"node1": [resolver]})
    hosts = [{"node": "node1", "queries": [], "resolv_conf": {"nameservers": [resolver]}}]
    findings = dns.analyze(state, static, hosts, [])
    assert sorted(f["id"] for f in findings) == ["COREDNS_NOT_READY", "DNS_NO_ENDPOINTS"]
    checks = {"dns": {"status": "failed", "msg": "", "findings": findings,
                      "evidence": {"state": state, "host_results": hosts, "pod_results": []}}}
    causes = dg.diagnose(checks)
    assert _ids(causes) == expected
    assert sorted(e["id"] for e in causes[0]["explains"]) == ["COREDNS_NOT_READY", "DNS_NO_ENDPOINTS"]
    if expected == ["COREDNS_LOOP"]:
        assert causes[0]["fix"]["role_var"] == "kubeadm_kubelet_resolv_conf: auto"
        # the forward to the VPC resolver breaks the loop at once; the role variable fixes the kubelet side
        assert causes[0]["fix"]["cli"].startswith("kubectl -n kube-system get configmap coredns -o yaml | sed")
        assert causes[0]["verify"] == "kubectl -n kube-system get pods -l k8s-app=kube-dns -o wide"
    assert dg.unexplained(checks, causes) == []


def _f(fid, where, severity="error", **details):
    return finding(fid, "observed %s" % where, "why", "fix %s" % where, severity=severity, where=where, **details)


def test_single_causes_keep_their_own_fix_and_warnings_are_never_causes():
    checks = {
        "dns": {"findings": [_f("NETPOL_BLOCKS_DNS", "namespace shop"), _f("SVC_NO_ENDPOINTS", "service shop/api"),
                             _f("NETPOL_BLOCKS_DNS", "namespace web", severity="warning"),
                             _f("DNS_LOOKUP_FAILED", "node1", namespace="shop", external_only=False)]},
        "image_arch": {"findings": [_f("IMAGE_ARCH_MISMATCH", "marketplace:v1")]},
        "sg_audit": {"findings": [_f("SG_OPEN_WORLD", "sg-1", severity="warning")]},
    }
    causes = dg.diagnose(checks)
    assert [(c["id"], c["title"]) for c in causes] == [
        ("NETPOL_BLOCKS_DNS", "A NetworkPolicy drops DNS queries: namespace shop"),
        ("SVC_NO_ENDPOINTS", "A Service selects no serving pod: service shop/api"),
        ("IMAGE_ARCH_MISMATCH", "An image has no build for a node's architecture: marketplace:v1")]
    assert causes[0]["fix"] == {"cli": "fix namespace shop", "role_var": ""}
    assert [e["id"] for e in causes[0]["explains"]] == ["NETPOL_BLOCKS_DNS", "DNS_LOOKUP_FAILED"]
    assert causes[2]["evidence"] == ["image_arch: observed marketplace:v1"]
    assert dg.unexplained(checks, causes) == []
    assert dg.headline(checks, causes) == "3 root causes explain 4 findings"


def test_observations_without_a_cause_are_reported_unexplained():
    checks = {"dns": {"findings": [_f("DNS_POD_UNREACHABLE", "node1 -> node2", src="node1", dst="node2")]}}
    assert dg.diagnose(checks) == []
    assert dg.unexplained(checks, []) == [{"check": "dns", "index": 0, "id": "DNS_POD_UNREACHABLE",
                                           "where": "node1 -> node2"}]


def test_dead_node_explains_what_goes_to_it():
    checks = {"node_reachability": {"findings": [_f("NODE_UNREACHABLE", "node3", node="node3")]},
              "dns": {"findings": [_f("DNS_POD_UNREACHABLE", "node3 -> node1", src="node3", dst="node1"),
                                   _f("DNS_PROBE_FAILED", "node3")]}}
    (cause,) = dg.diagnose(checks)
    assert cause["id"] == "NODE_UNREACHABLE" and cause["title"] == "A node answers no probe: node3"
    assert [e["id"] for e in cause["explains"]] == ["NODE_UNREACHABLE", "DNS_POD_UNREACHABLE", "DNS_PROBE_FAILED"]


def test_pod_mesh_failures_follow_their_node_pair():
    """A paths finding naming its node pair is explained by the pair's cause, same-node ones are not."""
    cluster = Cluster(SEED)
    checks = cluster.checks()
    checks["paths"] = {"findings": [_f("SVC_NO_ENDPOINTS", "x", severity="warning"),
                                    _f("DNS_LOOKUP_FAILED", "node1 -> node2", src_node="node1", dst_node="node2",
                                       protocol="tcp", port=8080),
                                    _f("DNS_LOOKUP_FAILED", "node1 -> node1", src_node="node1", dst_node="node1",
                                       protocol="tcp", port=8080)]}
    causes = dg.diagnose(checks)
    assert _ids(causes) == ["SG_NO_SELF_REF"]
    assert ("paths", 1) in [(e["check"], e["index"]) for e in causes[0]["explains"]]
    assert dg.unexplained(checks, causes) == [{"check": "paths", "index": 2, "id": "DNS_LOOKUP_FAILED",
                                               "where": "node1 -> node1"}]


def test_empty_input_is_healthy():
    assert dg.diagnose({}) == []
    assert dg.headline({}, []) == "healthy"


def test_contradictions_are_found():
    checks = Cluster(HEALTHY).checks()
    checks["dns"]["findings"].append(_f("UPSTREAM_TIMEOUT", "node1"))
    checks["dns"]["findings"].append(_f("DNS_POD_UNREACHABLE", "node1 -> node2", src="node1", dst="node2"))
    checks["node_reachability"]["findings"].append(_f("NODE_PORT_BLOCKED", "node1 -> node2", src="node1",
                                                      dst="node2", checks=["kubelet"]))
    checks["sg_audit"]["findings"].append(_f("SG_NO_SELF_REF", "sg-1"))
    assert [(x["ref"]["id"], x["why"]) for x in dg.contradictions(checks)] == [
        ("SG_NO_SELF_REF", "sg-1 has a self-referencing rule"),
        ("NODE_PORT_BLOCKED", "the matrix shows kubelet open from node1 to node2"),
        ("UPSTREAM_TIMEOUT", "the host path saw a CoreDNS pod answer the external name"),
        ("DNS_POD_UNREACHABLE", "the host path of node1 got an answer from the CoreDNS pod on node2")]


def test_seed_with_findings_only_still_one_cause():
    """Check results without any evidence (an older producer): the audit's word and the host path's
    unreachable pairs still tie every symptom to the one cause."""
    for pick in PICKS:
        checks = Cluster(SEED).checks(pick)
        for res in checks.values():
            res["evidence"] = {}
        causes = dg.diagnose(checks)
        assert _ids(causes) == ["SG_NO_SELF_REF"] and causes[0]["confidence"] == "likely"
        assert dg.unexplained(checks, causes) == [], pick


@pytest.mark.parametrize("encap,dns_explained", [
    ("IPIP", True),    # pod traffic rides IP protocol 4, which the seed group does not allow
    ("VXLAN", False),  # ... rides udp/4789, which the seed group allows from anywhere: not the group's doing
])
def test_cross_node_dns_is_blamed_on_the_group_only_when_its_carrier_is_blocked(encap, dns_explained):
    checks = Cluster(SEED).checks()
    checks["sg_audit"]["evidence"]["encapsulation"] = encap
    causes = dg.diagnose(checks)
    assert _ids(causes) == ["SG_NO_SELF_REF"]
    ids = [e["id"] for e in causes[0]["explains"]]
    assert ("DNS_POD_UNREACHABLE" in ids) is dns_explained
    left = [u["id"] for u in dg.unexplained(checks, causes)]
    assert left == ([] if dns_explained else ["DNS_POD_UNREACHABLE"] * 4 + ["DNS_LOOKUP_FAILED"])


@pytest.mark.parametrize("ids,expected", [
    (["SG_NO_SELF_REF", "ETCD_BLOCKED"], [("SG_NO_SELF_REF", ["SG_NO_SELF_REF", "ETCD_BLOCKED"])]),
    (["ETCD_BLOCKED"], [("ETCD_BLOCKED", ["ETCD_BLOCKED"])]),  # etcd alone: its own port rule
])
def test_etcd_between_control_planes_follows_the_self_reference(ids, expected):
    checks = {"sg_audit": {"findings": [_f(i, "sg-1", security_group_id="sg-1") for i in ids]}}
    causes = dg.diagnose(checks)
    assert [(c["id"], [e["id"] for e in c["explains"]]) for c in causes] == expected


def test_subnets_from_node_reachability_without_sg_audit():
    """node_reachability records each node's subnet itself: without sg_audit the diagnosis still knows which
    pairs cross a subnet, so under IPIPCrossSubnet a same-subnet pair carries pod traffic unencapsulated."""
    subnets = {"node1": "subnet-a", "node2": "subnet-b", "node3": "subnet-b"}
    ctx = dg._Context(Cluster(SEED, sg_audit=False, encap="IPIPCrossSubnet", subnets=subnets).checks())
    assert ctx.encap == "IPIPCrossSubnet"
    assert [ctx.subnet(n) for n in sorted(NODES)] == ["subnet-a", "subnet-b", "subnet-b"]
    assert ctx.carrier("node2", "node3", ("tcp", 50051)) == ("tcp", 50051)   # same subnet: as it is
    assert ctx.carrier("node1", "node2", ("tcp", 50051)) == ("4", None)      # across: inside IP-in-IP
    # and the preference: node_reachability's word over sg_audit's instances, which fill in what it lacks
    checks = Cluster(SEED, encap="IPIPCrossSubnet", subnets={"node1": "subnet-x"}).checks()
    ctx = dg._Context(checks)
    assert [ctx.subnet(n) for n in sorted(NODES)] == ["subnet-x", "subnet-1", "subnet-1"]


def test_calico_mode_from_node_reachability_without_sg_audit():
    """Without sg_audit the mode the matrix was judged under comes from node_reachability's evidence, not
    from a guess: under VXLAN a cross-node DNS failure is not carried by the IP-in-IP the group blocks."""
    checks = Cluster(SEED, sg_audit=False).checks()
    checks["node_reachability"]["findings"] = [f for f in checks["node_reachability"]["findings"]
                                               if f["id"] != "NODE_PORT_BLOCKED"]
    checks["node_reachability"]["evidence"]["calico_encapsulation"] = "VXLAN"
    assert dg._Context(checks).encap == "VXLAN"
    del checks["node_reachability"]["evidence"]["calico_encapsulation"]
    assert dg._Context(checks).encap == "IPIP"   # the other way: nothing says, the default stands


def _commands(checks):
    return [f.get(k) or "" for c in checks.values() for f in c["findings"] for k in dg.SG_FIELDS]


def test_the_node_sg_found_by_the_audit_goes_into_every_fix_that_names_the_group():
    checks = Cluster(SEED).checks()
    before = [t for t in _commands(checks) if "<node-sg-id>" in t]
    assert before, "the dns check's fixes name the group only as the placeholder"
    filled = dg.fill_node_sg(checks)
    assert not [t for t in _commands(filled) if "<node-sg-id>" in t]
    pod = [f for f in filled["dns"]["findings"] if f["id"] == "DNS_POD_UNREACHABLE"]
    assert pod and all("--group-id sg-1 --ip-permissions 'IpProtocol=-1,UserIdGroupPairs=[{GroupId=sg-1}]'"
                       in f["remediation"] for f in pod)
    # the input is left as it was, and what the fill changed is only the group's id
    assert [t for t in _commands(checks) if "<node-sg-id>" in t] == before
    assert [t.replace("sg-1", "<node-sg-id>") for t in _commands(filled)] == \
        [t.replace("sg-1", "<node-sg-id>") for t in _commands(checks)]
    assert dg.diagnose(filled) == dg.diagnose(checks)


def test_without_the_audit_no_group_id_is_made_up():
    checks = Cluster(SEED, sg_audit=False).checks()
    assert [t for t in _commands(checks) if "<node-sg-id>" in t]
    assert dg.fill_node_sg(checks) == checks


def test_nodes_in_different_groups_get_no_group_id():
    """sg_audit names the first node's group when no group holds every node: not one to put in every fix."""
    cluster = Cluster(SEED)
    cluster.insts["node3"]["SecurityGroups"] = [{"GroupId": "sg-2"}]
    checks = cluster.checks()
    assert checks["sg_audit"]["evidence"]["node_sg_id"] == SG_ID
    assert [t for t in _commands(checks) if "<node-sg-id>" in t]
    assert dg.fill_node_sg(checks) == checks
