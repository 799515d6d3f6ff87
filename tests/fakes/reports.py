"""Validate reports with real shapes, for the renderer tests.

The findings come from the analysis functions themselves (sg.audit, reachability.analyse,
dns.host_findings, image.mismatch_finding) fed with the seeds' broken cluster: three nodes, a node
security group without the self-referencing rule, marketplace:v1 pushed for arm64 only. The node
matrix is reachability.build_matrix's, turned into the report's list of entries. The root causes
follow diagnosis.py's shape; they are written here because the renderers must not depend on how
the diagnosis decides.
"""

import copy

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import dns, image, reachability, sg
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import finding

SG_ID = "sg-0a1b2c3d"
NODES = {"cp1": "10.231.0.11", "w1": "10.231.0.21", "w2": "10.231.0.22"}
CPS = ["cp1"]
ADMIN = "10.231.1.0/24"
SEED_SG = [
    {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
    {"IpProtocol": "tcp", "FromPort": 6443, "ToPort": 6443, "IpRanges": [{"CidrIp": ADMIN}]},
    {"IpProtocol": "tcp", "FromPort": 30000, "ToPort": 32767, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
    {"IpProtocol": "udp", "FromPort": 4789, "ToPort": 4789, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
]
EGRESS_ALL = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
# what the seed SG lets through between nodes: udp/4789, open to everyone
SEED_OPEN = ("vxlan",)
COREDNS = {"cp1": "192.168.10.2", "w1": "192.168.20.2", "w2": "192.168.30.2"}  # node -> the CoreDNS pod IP on it


def _instances():
    return [{"InstanceId": "i-%s" % name, "PrivateIpAddress": ip, "SourceDestCheck": True, "SubnetId": "subnet-a",
             "SecurityGroups": [{"GroupId": SG_ID}], "Tags": [{"Key": "Name", "Value": name}]}
            for name, ip in sorted(NODES.items())]


def _groups(ingress):
    return {SG_ID: {"GroupId": SG_ID, "GroupName": "kubeadm-ec2-nodes", "IpPermissions": ingress,
                    "IpPermissionsEgress": EGRESS_ALL}}


def probes_and_listens(open_checks, silent_listener=None):
    """Probe and listener reports of the three nodes when only ``open_checks`` pass between them."""
    probes, received = {}, {}
    for src in sorted(NODES):
        results = []
        for dst in sorted(NODES):
            if dst == src:
                continue
            for check in reachability.plan_checks(src, dst, CPS, names=list(NODES)):
                proto = reachability.CHECKS[check][0]
                if proto in ("udp", "ip"):
                    results.append([dst, check, "sent", "sent 3 packet(s)"])
                    if check in open_checks:
                        received.setdefault(dst, []).append([NODES[src], check, 3])
                elif check in open_checks:
                    results.append([dst, check, "ok", "refused (port %d reached, nothing listening)"
                                    % reachability.CHECKS[check][1]])
                else:
                    results.append([dst, check, "blocked", "timeout after 2s (dropped silently)"])
        probes[src] = {"results": results}
    listens = dict((n, {"received": received.get(n, [])}) for n in NODES if n != silent_listener)
    listens[silent_listener] = None
    return probes, listens


def matrix_entries(matrix, ephemeral_port=reachability.DEFAULT_EPHEMERAL_PORT):
    """build_matrix's dict as the report's list of {src, dst, check, proto, port, ok, status, reason}
    (sorted, as the reachability report plugin writes it)."""
    out = []
    for (src, dst, check), (status, reason) in sorted(matrix.items()):
        proto, port = reachability.CHECKS[check][0], reachability.CHECKS[check][1]
        if check == "ephemeral":
            port = ephemeral_port
        out.append({"src": src, "dst": dst, "check": check, "proto": proto, "port": port,
                    "ok": status == "ok", "status": status, "reason": reason})
    return out


def _dns_host_results(blocked):
    out = []
    for src in sorted(NODES):
        queries = []
        for node, ip in sorted(COREDNS.items()):
            dead = blocked and node != src
            queries.append({"target": "endpoint", "kind": "cluster", "server": ip, "endpoint_node": node,
                            "name": "kubernetes.default.svc.cluster.local", "status": "timeout" if dead else "ok"})
        queries.append({"target": "service", "kind": "cluster", "server": "10.96.0.10",
                        "name": "kubernetes.default.svc.cluster.local", "status": "ok"})
        out.append({"node": src, "node_ip": NODES[src], "queries": queries})
    return out


def broken_checks():
    """The five checks on the seeds' broken cluster (paths with a pod mesh)."""
    instances, groups = _instances(), _groups(SEED_SG)
    sg_findings = sg.audit(instances, groups, "IPIP")
    probes, listens = probes_and_listens(SEED_OPEN, silent_listener="w2")
    reach_findings, summary, matrix = reachability.analyse(NODES, CPS, probes, listens, "IPIP", sg_id=SG_ID)
    host = _dns_host_results(blocked=True)
    dns_findings = dns.host_findings(host, state={}, timeout=2.0)
    ref = image.parse_reference("127.0.0.1:5000/seeds/marketplace:v1")
    img = image.mismatch_finding(ref, [{"os": "linux", "architecture": "arm64"}], ["amd64", "arm64"], ["amd64"],
                                 ["default/Deployment/marketplace"], [])
    return {
        "sg_audit": {"status": "failed", "msg": "sg_audit: %d problem(s) found" % 3, "findings": sg_findings,
                     "evidence": {"groups": list(groups.values()), "node_sg_id": SG_ID, "encapsulation": "IPIP",
                                  "instances": [{"id": i["InstanceId"], "name": i["Tags"][0]["Value"],
                                                 "private_ip": i["PrivateIpAddress"], "subnet_id": "subnet-a",
                                                 "security_groups": [SG_ID], "source_dest_check": True,
                                                 "arch": "amd64"} for i in instances]}},
        "node_reachability": {"status": "failed", "msg": summary["text"], "findings": reach_findings,
                              "evidence": {"nodes": dict(NODES), "control_planes": list(CPS),
                                           "matrix": matrix_entries(matrix), "unreachable": []}},
        "dns": {"status": "failed", "msg": "dns: %d problem(s) found" % len(dns_findings), "findings": dns_findings,
                "evidence": {"state": {}, "host_results": host, "pod_results": []}},
        "image_arch": {"status": "failed", "msg": "image_arch: 1 problem(s) found", "findings": [img],
                       "evidence": {"images": [{"ref": "127.0.0.1:5000/seeds/marketplace:v1",
                                                "platforms": ["linux/arm64"], "kind": "index",
                                                "node_arches": ["amd64", "arm64"]}]}},
        "paths": {"status": "skipped", "msg": "validate_paths is empty: no application path to check",
                  "findings": [], "evidence": {"mesh": mesh(blocked=True)}},
    }


def mesh(blocked):
    """One probe pod per node, as analysis/mesh.py matrix() gives it: pod to pod (TCP and UDP), to the kube-dns
    Service and to an external host."""
    pods = {"cp1": ("probe-cp1", "192.168.10.9"), "w1": ("probe-w1", "192.168.20.9"), "w2": ("probe-w2", "192.168.30.9")}
    out = []
    for src in sorted(pods):
        for dst in sorted(pods):
            if dst == src:
                continue
            dead = blocked
            for proto, port in (("tcp", 7946), ("udp", 7947)):
                out.append({"src_pod": pods[src][0], "src_node": src, "dst": "%s:%d" % (pods[dst][1], port),
                            "dst_pod": pods[dst][0], "dst_node": dst, "kind": "pod", "proto": proto, "port": port,
                            "ok": not dead, "reason": ("connect timed out after 2s" if proto == "tcp" else
                                                       "no answer within 2s") if dead else "connected"})
        out.append({"src_pod": pods[src][0], "src_node": src, "dst": "10.96.0.10:53", "kind": "service", "proto": "tcp",
                    "port": 53, "ok": True, "reason": "connected", "service": "kube-system/kube-dns"})
        out.append({"src_pod": pods[src][0], "src_node": src, "dst": "kubernetes.io:443", "kind": "external",
                    "proto": "tcp", "port": 443, "ok": True, "reason": "connected"})
    return out


def refs(checks, check, fid=None):
    return [{"check": check, "index": i, "id": f["id"], "where": f["where"]}
            for i, f in enumerate(checks[check]["findings"]) if f["severity"] == "error" and fid in (None, f["id"])]


SELF_REF_CLI = ("aws ec2 authorize-security-group-ingress --group-id %s "
                "--ip-permissions 'IpProtocol=-1,UserIdGroupPairs=[{GroupId=%s}]'" % (SG_ID, SG_ID))
SELF_REF_CAUSE = {
    "id": "SG_NO_SELF_REF",
    "title": "The node security group %s has no self-referencing rule" % SG_ID,
    "confidence": "certain",
    "fix": {"cli": SELF_REF_CLI, "role_var": "ec2_network_sg_self_reference: true"},
    "verify": "ansible-playbook kubeadm_ec2.cluster.validate -e validate_checks=node_reachability,dns",
}
IMAGE_CAUSE = {
    "id": "IMAGE_ARCH_MISMATCH",
    "title": "marketplace:v1 is published for linux/arm64 only; the amd64 nodes cannot pull it",
    "confidence": "certain",
    "fix": {"cli": "docker buildx build --platform linux/amd64,linux/arm64 --push -t 127.0.0.1:5000/seeds/marketplace:v1 .",
            "role_var": ""},
    "verify": "ansible-playbook kubeadm_ec2.cluster.validate -e validate_checks=image_arch",
}


def broken_report(unexplained_dns=False, causes=True):
    """The seeds' broken cluster: two causes (or none: a diagnosis that found nothing); optionally one
    DNS error no cause explains."""
    checks = broken_checks()
    if unexplained_dns:
        checks["dns"]["findings"].append(finding(
            "DNS_NAME_NOT_FOUND", "10.96.0.10 answered NXDOMAIN for recommendations.default.svc.cluster.local (from w1)",
            "the name does not exist in cluster DNS", "kubectl get service -A | grep recommendations", where="w1"))
    self_ref = dict(SELF_REF_CAUSE, explains=refs(checks, "sg_audit") + refs(checks, "node_reachability")
                    + refs(checks, "dns", "DNS_POD_UNREACHABLE"),
                    evidence=["%s has no rule whose source is %s itself" % (SG_ID, SG_ID),
                              "between nodes it allows only udp/4789 and the NodePort range (open to 0.0.0.0/0)",
                              "every blocked node-pair port is one the group does not allow"])
    img = dict(IMAGE_CAUSE, explains=refs(checks, "image_arch"),
               evidence=["the index of marketplace:v1 lists linux/arm64 only", "nodes cp1, w1 are amd64"])
    if not causes:
        errs = [r for c in checks for r in refs(checks, c)]
        return {"headline": "no root cause; %d error findings unexplained" % len(errs), "root_causes": [],
                "checks": checks, "unexplained": errs}
    causes = [self_ref, img]
    n = len(set((r["check"], r["index"]) for c in causes for r in c["explains"]))
    report = {"headline": "2 root causes explain %d findings" % n, "root_causes": causes, "checks": checks,
              "unexplained": []}
    if unexplained_dns:
        idx = len(checks["dns"]["findings"]) - 1
        report["unexplained"] = [{"check": "dns", "index": idx, "id": "DNS_NAME_NOT_FOUND", "where": "w1"}]
    return report


def healthy_report():
    """Every check passed; the node matrix all green, paths skipped without a mesh."""
    probes, listens = probes_and_listens(tuple(reachability.CHECKS))
    findings, summary, matrix = reachability.analyse(NODES, CPS, probes, listens, "IPIP", sg_id=SG_ID)
    assert findings == []
    return {
        "headline": "healthy", "root_causes": [], "unexplained": [],
        "checks": {
            "sg_audit": {"status": "passed", "msg": "sg_audit: security groups allow the cluster's traffic",
                         "findings": [], "evidence": {}},
            "node_reachability": {"status": "passed", "msg": summary["text"], "findings": [],
                                  "evidence": {"nodes": dict(NODES), "control_planes": list(CPS),
                                               "matrix": matrix_entries(matrix), "unreachable": []}},
            "dns": {"status": "passed", "msg": "dns: every node resolves through every CoreDNS pod",
                    "findings": [], "evidence": {}},
            "image_arch": {"status": "skipped", "msg": "no image to check (validate_images is empty)",
                           "findings": [], "evidence": {}},
        },
    }


def errors_of(report, check, fid=None):
    """How many error findings ``check`` has (of id ``fid``)."""
    return len(refs(report["checks"], check, fid))


def with_hostile_text(report):
    """A copy whose names and texts carry markup, quotes, and a control character."""
    out = copy.deepcopy(report)
    out["root_causes"][0]["title"] = "<script>alert('x')</script> & \"quoted\" \x1b[31m"
    out["root_causes"][0]["evidence"].append("<img src=x onerror=alert(1)>")
    out["checks"]["dns"]["findings"][0]["observed"] = "</td></tr></table><b>broken</b>"
    return out
