# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Root causes: every check's findings and evidence in, the causes that explain them out.

A finding records what one check observed. Here, and only here, observations of different checks
are put together: one missing self-referencing rule shows up as the audit's SG_NO_SELF_REF, a
NODE_PORT_BLOCKED per node pair, a DNS_POD_UNREACHABLE per cross-node CoreDNS pair and probe pods
whose lookups time out. That is one cause with one fix, and the rest is its evidence.

``diagnose(checks)`` takes ``{check name: {"status", "msg", "findings", "evidence"}}`` and returns
``[{"id", "title", "confidence", "explains", "evidence", "fix": {"cli", "role_var"}, "verify"}]``.
It reads only what the checks recorded, so its answer does not depend on which CoreDNS pod a probe
pod's query happened to reach: the blame for a node pair comes from the security group as EC2
holds it and the node-to-node matrix, and upstream DNS is blamed only on the host path's word (it
asks every CoreDNS pod directly).

Rules, in order (a finding explained by an earlier cause is not made a cause of its own):
  1. node pairs. Each blocked port of NODE_PORT_BLOCKED is judged against the security group:
     - not allowed by it -> SG_NO_SELF_REF (the group lacks the self-reference), which also explains
       the audit's SG_NO_SELF_REF / ENCAP_BLOCKED;
     - allowed by it -> BLOCKED_OUTSIDE_SG (network ACL or host firewall), never the self-reference;
     - no security group data -> NODE_PORTS_BLOCKED (likely), naming both places to look.
     DNS_POD_UNREACHABLE, DNS_LOOKUP_FAILED and pod-path failures are explained by the cause of the
     node pair that carries them, when that pair is blocked. A path finding (details src_node,
     dst_node/dst_nodes, protocol, port) is, when a probe saw it time out; a verdict from the cluster
     objects (``observed_by: objects``: NetworkPolicy, Service endpoints, targetPort) never is.
     The pod mesh's cross-node POD_PATH_BLOCKED is tied to its pair src_node -> dst_node (the carrier
     from the Calico table: IPIP, VXLAN or the traffic itself), its SERVICE_PATH_BLOCKED to the pairs
     from src_node towards the nodes running an endpoint (dst_nodes).
  2. NODE_UNREACHABLE: one cause per node; explains the DNS and pod-path failures towards it.
  3. CoreDNS: the loop (not ready + loop) -> COREDNS_LOOP, which explains DNS_NO_ENDPOINTS when no
     pod is ready; else DNS_NO_ENDPOINTS and COREDNS_NOT_READY stay single causes.
  4. UPSTREAM_TIMEOUT: only from the host path's UPSTREAM_TIMEOUT (CoreDNS pods that answer cluster
     names but not the external name), or when every probe pod fails the external name while
     cluster names resolve through the same (or the only) CoreDNS endpoint and no blocked pair
     explains it. Never when the host path saw every reachable endpoint answer the external name.
  5. the pod mesh's EGRESS_BLOCKED: explained by the audit's EGRESS_443 for tcp/443, else one cause per
     external target (NAT / natOutgoing / no route out); node pairs never explain it.
  6. every other error finding whose catalogue kind is ``cause`` is a single cause with its own fix
     (NetworkPolicy, Service, image, egress, source/dest check, ...). Warnings are never causes. A pod
     mesh cell (POD_PATH_BLOCKED, SERVICE_PATH_BLOCKED) that no blocked node pair explains is one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import calico
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import catalogue as cat
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import sg as sgmod

CHECK_ORDER = ("sg_audit", "node_reachability", "dns", "image_arch", "paths")
CERTAIN = "certain"
LIKELY = "likely"
DNS_TRAFFIC = ("udp", 53)


def _ref(check, index, f):
    return {"check": check, "index": index, "id": f["id"], "where": f.get("where", "")}


def _proto_label(proto, port):
    if proto == "4":
        return "ip protocol 4 (IP-in-IP)"
    if proto == "-1":
        return "all traffic"
    return "%s/%s" % (proto, port) if port is not None else proto


class _Context:
    """The checks, indexed: findings in a stable order, the evidence parsed once."""

    def __init__(self, checks):
        self.checks = checks or {}
        names = [c for c in CHECK_ORDER if c in self.checks] + sorted(c for c in self.checks if c not in CHECK_ORDER)
        self.items = []  # (check, index, finding)
        for name in names:
            for i, f in enumerate((self.checks[name] or {}).get("findings") or []):
                self.items.append((name, i, f))
        self.by_key = dict(((c, i), f) for c, i, f in self.items)
        self.sg = self._evidence("sg_audit")
        self.reach = self._evidence("node_reachability")
        self.dns = self._evidence("dns")
        self.groups = dict((g["GroupId"], g) for g in self.sg.get("groups") or [] if g.get("GroupId"))
        self.node_sg = self.sg.get("node_sg_id") or ""
        self.encap = self.sg.get("encapsulation") or ""
        self.instances = {}
        for inst in self.sg.get("instances") or []:
            if inst.get("private_ip"):
                self.instances[inst["private_ip"]] = {
                    "InstanceId": inst.get("id", ""), "PrivateIpAddress": inst["private_ip"],
                    "SubnetId": inst.get("subnet_id", ""), "Name": inst.get("name", ""),
                    "SourceDestCheck": inst.get("source_dest_check", True),
                    "SecurityGroups": [{"GroupId": g} for g in inst.get("security_groups") or []]}
        self.ips = {}
        for name, ip in (self.reach.get("nodes") or {}).items():
            self.ips[name] = ip
        # each node's subnet as node_reachability recorded it (the host variable subnet_id), which it has
        # also when sg_audit did not run; sg_audit's instances are the fallback (subnet())
        self.subnets = dict((name, sn) for name, sn in (self.reach.get("subnets") or {}).items() if sn)
        state = self.dns.get("state") or {}
        for node in state.get("nodes") or []:
            if node.get("name") and node.get("ip"):
                self.ips.setdefault(node["name"], node["ip"])
        for inst in self.instances.values():
            if inst["Name"]:
                self.ips.setdefault(inst["Name"], inst["PrivateIpAddress"])
        self.endpoints = [e for e in state.get("endpoints") or [] if e.get("node")]
        if not self.endpoints:  # no cluster summary: the CoreDNS pods the host path could not reach
            self.endpoints = [{"ip": ip, "node": (f.get("details") or {}).get("dst")} for _c, _i, f in self.items
                              if f["id"] == "DNS_POD_UNREACHABLE" for ip in (f.get("details") or {}).get("endpoints") or []]
        # the mode the matrix was judged under (node_reachability's evidence) when sg_audit did not say
        self.encap = self.encap or self.reach.get("calico_encapsulation") or ""
        for _c, _i, f in self.items:
            if f["id"] == "NODE_PORT_BLOCKED" and not self.encap:
                self.encap = (f.get("details") or {}).get("calico_encapsulation") or ""
        self.encap = self.encap or "IPIP"

    def _evidence(self, name):
        return (self.checks.get(name) or {}).get("evidence") or {}

    def of(self, *ids, **kw):
        """Findings with one of ``ids`` (errors only unless warnings=True), as (check, index, finding)."""
        warnings = kw.get("warnings", False)
        return [(c, i, f) for c, i, f in self.items if f["id"] in ids
                and (warnings or f.get("severity") == "error")]

    def key(self, name):
        return self.ips.get(name) or name

    def instance(self, name):
        """The node as an EC2 instance (DescribeInstances shape), or a stand-in member of the node SG."""
        ip = self.ips.get(name)
        if ip in self.instances:
            return self.instances[ip]
        if self.node_sg in self.groups:
            return {"InstanceId": name, "PrivateIpAddress": ip or "", "SecurityGroups": [{"GroupId": self.node_sg}]}
        return None

    def subnet(self, name):
        """The node's subnet: node_reachability's evidence, else its EC2 instance in sg_audit's; "" unknown."""
        return self.subnets.get(name) or (self.instance(name) or {}).get("SubnetId") or ""

    def sg_allows(self, src, dst, proto, port):
        """True/False as the security groups decide src -> dst, None without security group data."""
        s, d = self.instance(src), self.instance(dst)
        if not s or not d or not self.groups:
            return None
        return sgmod.ingress_allows(d, s, self.groups, proto, port)

    def carrier(self, src, dst, traffic):
        """(proto, port) that carries pod traffic ``traffic`` from node src to dst: the encapsulation protocol
        of the Calico mode (analysis/calico.py), or the traffic itself when it travels unencapsulated."""
        if calico.is_cross_subnet(self.encap) and self.subnet(src) and self.subnet(src) == self.subnet(dst):
            return traffic
        for need in calico.needs(self.encap):
            if need in ("ipip", "vxlan"):
                proto, port = sgmod.ENCAP_NEEDS[need][0], sgmod.ENCAP_NEEDS[need][1]
                return proto, port
        return traffic


def _sg_rule_text(sg):
    parts = []
    for perm in sg.get("IpPermissions") or []:
        proto = sgmod.norm_proto(perm.get("IpProtocol"))
        if proto in ("tcp", "udp") and perm.get("FromPort") not in (None, -1):
            what = "%s/%s" % (proto, perm["FromPort"]) if perm["FromPort"] == perm.get("ToPort") else \
                "%s/%s-%s" % (proto, perm["FromPort"], perm.get("ToPort"))
        else:
            what = _proto_label(proto, None)
        srcs = [r.get("CidrIp") for r in perm.get("IpRanges") or []]
        srcs += [p.get("GroupId") for p in perm.get("UserIdGroupPairs") or []]
        parts.append("%s from %s" % (what, ", ".join(s for s in srcs if s) or "nowhere"))
    return "; ".join(parts) or "nothing"


def _cli(f):
    """The one command that fixes finding ``f`` (its ``cli``; the remediation text for an old finding)."""
    return f.get("cli") or f.get("remediation") or ""


def _cause(cid, title, confidence, refs, evidence, cli, role_var, verify):
    return {"id": cid, "title": title, "confidence": confidence, "explains": refs,
            "evidence": evidence, "fix": {"cli": cli, "role_var": role_var}, "verify": verify}


def _short(items, limit=6):
    items = list(items)
    text = ", ".join(items[:limit])
    if len(items) > limit:
        text += ", ... (%d more)" % (len(items) - limit)
    return text


# -- rule 1: node pairs ------------------------------------------------------------------------------
def _judge_pairs(ctx):
    """Classify every blocked port of NODE_PORT_BLOCKED: {(check, index): {"sg": [...], "outside": [...],
    "unknown": [...]}} and per pair {(src, dst): set of kinds}."""
    verdicts, pairs = {}, {}
    for c, i, f in ctx.of("NODE_PORT_BLOCKED", warnings=True):
        d = f.get("details") or {}
        src, dst = d.get("src"), d.get("dst")
        if not src or not dst:
            continue
        kinds = {"sg": [], "outside": [], "unknown": []}
        for p in d.get("ports") or []:
            allowed = ctx.sg_allows(src, dst, p["proto"], p["port"])
            kind = "unknown" if allowed is None else ("outside" if allowed else "sg")
            kinds[kind].append(p)
        verdicts[(c, i)] = kinds
        if f.get("severity") == "error":
            pairs.setdefault((ctx.key(src), ctx.key(dst)), set()).update(k for k, v in kinds.items() if v)
    return verdicts, pairs


def _pair_kind(ctx, pairs, src, dst, traffic):
    """Which kind of blocked pair carries pod traffic ``traffic`` from node src to dst, or None."""
    seen = pairs.get((ctx.key(src), ctx.key(dst)), set())
    proto, port = ctx.carrier(src, dst, traffic)
    allowed = ctx.sg_allows(src, dst, proto, port)
    if allowed is False:
        return "sg"
    if allowed is None:
        return "unknown" if seen else None
    if "outside" in seen:
        return "outside"
    return None


def _pod_refs(ctx, pairs, kind, taken):
    """DNS and pod-path findings explained by node pairs of ``kind``."""
    refs = []
    for c, i, f in ctx.items:
        if (c, i) in taken or f.get("severity") != "error":
            continue
        d = f.get("details") or {}
        if c == "paths":
            traffic = (str(d.get("protocol") or "tcp").lower(), d.get("port"))
            if any(_pair_kind(ctx, pairs, d["src_node"], dst, traffic) == kind for dst in _path_pairs(d)):
                refs.append(_ref(c, i, f))
        elif f["id"] == "DNS_POD_UNREACHABLE" and d.get("src") and d.get("dst") and d["src"] != d["dst"]:
            if _pair_kind(ctx, pairs, d["src"], d["dst"], DNS_TRAFFIC) == kind:
                refs.append(_ref(c, i, f))
        elif f["id"] == "DNS_LOOKUP_FAILED" and not (d.get("external_only") and ctx.of("UPSTREAM_TIMEOUT")):
            # (an external-only failure while the host path shows the upstream failing is the upstream's)
            node = f.get("where")
            remote = sorted({e["node"] for e in ctx.endpoints if e["node"] != node})
            if any(_pair_kind(ctx, pairs, node, e, DNS_TRAFFIC) == kind for e in remote):
                refs.append(_ref(c, i, f))
    return refs


def _path_pairs(d):
    """The destination nodes on other nodes than the source of a paths finding whose failure a node pair
    can explain: a live timeout, never a verdict from the cluster objects (a NetworkPolicy, a Service
    without endpoints or a wrong targetPort is its own cause) nor a refused connection (it arrived)."""
    if d.get("observed_by") == "objects" or d.get("probe_status") in ("refused", "nxdomain", "ok"):
        return []
    src = d.get("src_node")
    return [n for n in d.get("dst_nodes") or [d.get("dst_node")] if src and n and n != src]


def _rule_pairs(ctx, taken):
    verdicts, pairs = _judge_pairs(ctx)
    causes = []
    # SG_NO_SELF_REF: the audit's word, or blocked ports the group does not allow
    audit = ctx.of("SG_NO_SELF_REF", "ENCAP_BLOCKED")
    if ctx.of("SG_NO_SELF_REF"):  # the self-reference lets etcd through between control planes of the group too
        audit = ctx.of("SG_NO_SELF_REF", "ENCAP_BLOCKED", "ETCD_BLOCKED")
    sg_cells = [(k, v["sg"]) for k, v in sorted(verdicts.items()) if v["sg"]]
    # the audit said "no self-reference" but its rules did not reach us: its word covers the drops, as likely
    adopt = bool(ctx.of("SG_NO_SELF_REF")) and not ctx.groups
    unk_cells = [(k, v["unknown"]) for k, v in sorted(verdicts.items()) if v["unknown"]]
    if audit or sg_cells:
        refs = [_ref(c, i, f) for c, i, f in audit]
        refs += [_ref(c, i, ctx.by_key[(c, i)]) for (c, i), _ps in sg_cells]
        refs += _pod_refs(ctx, pairs, "sg", taken)
        if adopt:
            refs += [_ref(c, i, ctx.by_key[(c, i)]) for (c, i), _ps in unk_cells]
            refs += _pod_refs(ctx, pairs, "unknown", taken)
        sg_id = ctx.node_sg or next(((f.get("details") or {}).get("security_group_id") for _c, _i, f in audit
                                     if (f.get("details") or {}).get("security_group_id")), "") or ""
        evidence = []
        if sg_id in ctx.groups:
            evidence.append("%s (as EC2 holds it) has no inbound rule allowing all traffic from itself; it allows: %s"
                            % (sg_id, _sg_rule_text(ctx.groups[sg_id])))
        for _c, _i, f in audit:
            evidence.append("sg_audit %s: %s" % (f["id"], f["observed"]))
        if sg_cells:
            labels = sorted({_proto_label(p["proto"], p["port"]) for _k, ps in sg_cells for p in ps})
            npairs = len(sg_cells)
            evidence.append("node_reachability: %d node pair(s) blocked on ports the group does not allow (%s)"
                            % (npairs, ", ".join(labels)))
        dns_pairs = [r["where"] for r in refs if r["id"] == "DNS_POD_UNREACHABLE"]
        if dns_pairs:
            evidence.append("dns: CoreDNS pods on other nodes time out for %s, carried by %s which the group "
                            "does not allow" % (_short(dns_pairs), _proto_label(*ctx.carrier("", "", DNS_TRAFFIC))))
        pods = [r["where"] for r in refs if r["id"] == "DNS_LOOKUP_FAILED"]
        if pods:
            evidence.append("dns: probe pod lookups on %s failed when the service picked a CoreDNS pod on a "
                            "blocked node pair" % _short(pods))
        if adopt and unk_cells:
            evidence.append("node_reachability: %d node pair(s) blocked; the security group rules were not in the "
                            "evidence, so these drops are put down to the missing self-reference the audit "
                            "reported" % len(unk_cells))
        title = "%s (node security group %s)" % (cat.title("SG_NO_SELF_REF"), sg_id or cat.SG_PLACEHOLDER)
        causes.append(_cause("SG_NO_SELF_REF", title,
                             LIKELY if adopt and unk_cells else CERTAIN, refs, evidence, cat.self_ref_cli(sg_id or None), cat.ROLE_VAR_SELF_REF,
                             cat.self_ref_verify(sg_id or None)))
    # BLOCKED_OUTSIDE_SG: ports the group allows, dropped all the same
    out_cells = [(k, v["outside"]) for k, v in sorted(verdicts.items()) if v["outside"]]
    if out_cells:
        by_key = ctx.by_key
        refs = [_ref(c, i, by_key[(c, i)]) for (c, i), _ps in out_cells]
        refs += _pod_refs(ctx, pairs, "outside", taken)
        evidence, dsts, subnets, same = [], set(), set(), False
        for (c, i), ps in out_cells:
            d = by_key[(c, i)]["details"]
            dsts.add(d["dst"])
            labels = ", ".join(_proto_label(p["proto"], p["port"]) for p in ps)
            evidence.append("%s -> %s: %s dropped, although the security group allows it from %s"
                            % (d["src"], d["dst"], labels, d["src"]))
            s, t = ctx.subnet(d["src"]), ctx.subnet(d["dst"])
            subnets.update(sn for sn in (s, t) if sn)
            if s and s == t:
                same = True
                evidence.append("%s and %s share subnet %s: network ACLs do not filter traffic inside a subnet, so "
                                "the drop is on %s itself (host firewall)" % (d["src"], d["dst"], s, d["dst"]))
        where = _short(sorted(dsts))
        causes.append(_cause(
            "BLOCKED_OUTSIDE_SG", "%s, towards %s" % (cat.title("BLOCKED_OUTSIDE_SG"), where), LIKELY, refs,
            evidence, cat.outside_sg_cli(sorted(dsts), subnets, same or not subnets), "",
            cat.validate_cli("node_reachability")))
    # NODE_PORTS_BLOCKED: no security group data to judge with
    if unk_cells and not adopt:
        by_key = ctx.by_key
        refs = [_ref(k[0], k[1], by_key[k]) for k, _ps in unk_cells] + _pod_refs(ctx, pairs, "unknown", taken)
        labels = sorted({_proto_label(p["proto"], p["port"]) for _k, ps in unk_cells for p in ps})
        evidence = ["node_reachability: %d node pair(s) drop %s" % (len(unk_cells), ", ".join(labels)),
                    "no security group data (sg_audit did not run or found no instances): the drop cannot be "
                    "placed in the group or outside it"]
        causes.append(_cause(
            "NODE_PORTS_BLOCKED", cat.title("NODE_PORTS_BLOCKED"), LIKELY, refs, evidence,
            "aws ec2 describe-security-groups --group-ids %s" % (ctx.node_sg or cat.SG_PLACEHOLDER),
            cat.ROLE_VAR_SELF_REF, cat.validate_cli()))
    return causes


# -- rule 2: dead nodes -------------------------------------------------------------------------------
def _rule_dead_nodes(ctx, taken):
    causes = []
    for c, i, f in ctx.of("NODE_UNREACHABLE"):
        if (c, i) in taken:
            continue
        node = (f.get("details") or {}).get("node") or f.get("where")
        refs = [_ref(c, i, f)]
        for c2, i2, g in ctx.items:
            d = g.get("details") or {}
            if (c2, i2) in taken or g.get("severity") != "error" or (c2, i2) == (c, i):
                continue
            if g["id"] == "DNS_POD_UNREACHABLE" and node in (d.get("src"), d.get("dst")) or \
                    g["id"] in ("DNS_PROBE_FAILED", "DNS_LOOKUP_FAILED") and g.get("where") == node or \
                    g["id"] == "MESH_PROBE_FAILED" and d.get("src_node") == node or \
                    c2 == "paths" and (node == d.get("src_node") and _path_pairs(d) or node in _path_pairs(d)):
                refs.append(_ref(c2, i2, g))
        causes.append(_cause("NODE_UNREACHABLE", "%s: %s" % (cat.title("NODE_UNREACHABLE"), node), CERTAIN, refs,
                             ["node_reachability: %s" % f["observed"]], _cli(f), "",
                             cat.validate_cli("node_reachability")))
    return causes


# -- rule 3: CoreDNS ----------------------------------------------------------------------------------
def _dns_service_refs(ctx, taken):
    """Failures of every lookup through the service: what empty endpoints / crashing CoreDNS explain."""
    ids = ("DNS_LOOKUP_FAILED", "DNS_SERVICE_UNREACHABLE", "DNS_POD_UNREACHABLE", "SERVICE_PATH_BLOCKED")
    return [_ref(c, i, f) for c, i, f in ctx.of(*ids) if (c, i) not in taken]


def _rule_coredns(ctx, taken):
    causes = []
    loops = [(c, i, f) for c, i, f in ctx.of("COREDNS_NOT_READY") if (f.get("details") or {}).get("loop")]
    no_eps = [(c, i, f) for c, i, f in ctx.of("DNS_NO_ENDPOINTS") if (c, i) not in taken]
    state = ctx.dns.get("state") or {}
    none_ready = not any(p.get("ready") for p in state.get("coredns_pods") or [])
    if loops:
        refs = [_ref(c, i, f) for c, i, f in loops]
        evidence = ["dns: %s" % f["observed"] for _c, _i, f in loops]
        evidence.append("dns: the Corefile forwards '.' to /etc/resolv.conf and the node resolver is loopback: %s"
                        % loops[0][2]["why"])
        if no_eps and none_ready:
            refs += [_ref(c, i, f) for c, i, f in no_eps] + _dns_service_refs(ctx, taken)
            evidence.append("dns: %s" % no_eps[0][2]["observed"])
            no_eps = []
        causes.append(_cause("COREDNS_LOOP", cat.title("COREDNS_LOOP"), CERTAIN, refs, evidence,
                             cat.coredns_forward_cli(), cat.role_var("COREDNS_LOOP"), cat.coredns_pods_cli()))
    crashed = [(c, i, f) for c, i, f in ctx.of("COREDNS_NOT_READY") if not (f.get("details") or {}).get("loop")]
    if crashed and no_eps and none_ready:
        # every CoreDNS pod down for another reason: the endpoints are empty because of it
        refs = [_ref(c, i, f) for c, i, f in crashed + no_eps] + _dns_service_refs(ctx, taken)
        causes.append(_cause("COREDNS_NOT_READY", cat.title("COREDNS_NOT_READY"), CERTAIN, refs,
                             ["dns: %s" % f["observed"] for _c, _i, f in crashed + no_eps], _cli(crashed[0][2]),
                             "", cat.coredns_pods_cli()))
        no_eps = []
    for c, i, f in no_eps:
        refs = [_ref(c, i, f)] + _dns_service_refs(ctx, taken | {(c, i)})
        causes.append(_cause("DNS_NO_ENDPOINTS", cat.title("DNS_NO_ENDPOINTS"), CERTAIN, refs,
                             ["dns: %s" % f["observed"], "dns: %s" % f["why"]], _cli(f), "",
                             "kubectl -n kube-system get endpointslices -l kubernetes.io/service-name=kube-dns"))
    return causes


# -- rule 4: upstream ---------------------------------------------------------------------------------
def _host_external_ok(ctx):
    """Whether the host path saw some CoreDNS endpoint answer the external name."""
    for res in ctx.dns.get("host_results") or []:
        for q in res.get("queries") or []:
            if q.get("target") == "endpoint" and q.get("kind") == "external" and q.get("status") in ("ok", "nodata"):
                return True
    return False


def _rule_upstream(ctx, taken):
    host = [(c, i, f) for c, i, f in ctx.of("UPSTREAM_TIMEOUT") if (c, i) not in taken]
    pods = [(c, i, f) for c, i, f in ctx.of("DNS_LOOKUP_FAILED") if (c, i) not in taken
            and (f.get("details") or {}).get("external_only")]
    evidence, confidence = [], CERTAIN
    if host:
        evidence = ["dns (host path, every CoreDNS pod asked directly): %s" % f["observed"] for _c, _i, f in host]
    elif pods and not _host_external_ok(ctx):
        finished = [r for r in ctx.dns.get("pod_results") or [] if r.get("outcome") == "finished"]
        samples = [f for _c, _i, f in pods]
        endpoints = {e for f in samples for e in (f.get("details") or {}).get("endpoints") or []}
        named = all((f.get("details") or {}).get("endpoints") for f in samples)
        same = len(ctx.endpoints) == 1 or (len(endpoints) == 1 and named)
        if same and len(samples) >= max(1, len(finished)):
            confidence = LIKELY
            evidence = ["dns (probe pods): every probe pod failed the external name while cluster names resolved "
                        "through the same CoreDNS endpoint (%s)" % _short(sorted(f["where"] for f in samples))]
    if not evidence:
        return []
    refs = [_ref(c, i, f) for c, i, f in host + pods]
    first = (host or pods)[0][2]
    fw = (first.get("details") or {}).get("forward") or []
    if fw:
        evidence.append("dns: the Corefile forwards '.' to %s" % ", ".join(fw))
    return [_cause("UPSTREAM_TIMEOUT", cat.title("UPSTREAM_TIMEOUT"), confidence, refs, evidence,
                   cat.coredns_forward_cli(), cat.role_var("UPSTREAM_TIMEOUT"),
                   cat.dns_verify((first.get("details") or {}).get("name") or "<external name>"))]


# -- rule 5: egress from pods ------------------------------------------------------------------------
def _rule_egress(ctx, taken):
    """The pod mesh's EGRESS_BLOCKED: the audit's EGRESS_443 explains a blocked tcp/443; the rest are one cause
    per target (NAT / natOutgoing / no route out), whatever the node pairs say: egress leaves the cluster."""
    egress = [(c, i, f) for c, i, f in ctx.of("EGRESS_BLOCKED") if (c, i) not in taken]
    if not egress:
        return []
    causes = []
    for c, i, f in ctx.of("EGRESS_443"):
        if (c, i) in taken:
            continue
        hits = [(c2, i2, g) for c2, i2, g in egress if (g.get("details") or {}).get("port") == 443
                and str((g.get("details") or {}).get("protocol") or "tcp").lower() == "tcp"]
        if hits:
            causes.append(_cause("EGRESS_443", "%s: %s" % (cat.title("EGRESS_443"), f.get("where") or c), CERTAIN,
                                 [_ref(c, i, f)] + [_ref(*h) for h in hits],
                                 ["%s: %s" % (c, f["observed"])] + ["paths: %s" % g["observed"] for _c, _i, g in hits],
                                 _cli(f), cat.role_var("EGRESS_443"), cat.validate_cli("paths")))
            egress = [e for e in egress if e not in hits]
    by_target = {}
    for c, i, f in egress:
        by_target.setdefault((f.get("details") or {}).get("target") or f.get("where"), []).append((c, i, f))
    for target in sorted(by_target):
        items = by_target[target]
        nodes = sorted({(f.get("details") or {}).get("src_node") or f.get("where") for _c, _i, f in items})
        causes.append(_cause(
            "EGRESS_BLOCKED", "%s: %s from pods on %s" % (cat.title("EGRESS_BLOCKED"), target, _short(nodes)),
            CERTAIN, [_ref(c, i, f) for c, i, f in items], ["paths: %s" % f["observed"] for _c, _i, f in items],
            _cli(items[0][2]), "", "kubectl run egress-check --rm -i --restart=Never --image=busybox:1.36.1 -- nc -w 3 "
            "%s -e true" % str(target).replace(":", " ")))
    return causes


# -- rule 6: single causes ----------------------------------------------------------------------------
def _rule_single(ctx, taken):
    causes = []
    for c, i, f in ctx.items:
        if (c, i) in taken or f.get("severity") != "error":
            continue
        kind = cat.ENTRIES.get(f["id"], {}).get("kind")
        if kind != cat.CAUSE:
            continue
        refs = [_ref(c, i, f)]
        if f["id"] == "NETPOL_BLOCKS_DNS":
            ns = (f.get("where") or "").replace("namespace ", "")
            refs += [_ref(c2, i2, g) for c2, i2, g in ctx.of("DNS_LOOKUP_FAILED")
                     if (c2, i2) not in taken and (g.get("details") or {}).get("namespace") == ns]
        causes.append(_cause(f["id"], "%s: %s" % (cat.title(f["id"]), f.get("where") or c), CERTAIN, refs,
                             ["%s: %s" % (c, f["observed"])], _cli(f), cat.role_var(f["id"]),
                             cat.validate_cli(c)))
        taken = taken | {(r["check"], r["index"]) for r in refs}
    return causes


RULES = (_rule_pairs, _rule_dead_nodes, _rule_coredns, _rule_upstream, _rule_egress, _rule_single)


def diagnose(checks):
    """The root causes of ``checks`` ({name: check result}), in rule order; deterministic."""
    ctx = _Context(checks)
    causes, taken = [], set()
    for rule in RULES:
        for cause in rule(ctx, frozenset(taken)):
            seen = set()
            cause["explains"] = [r for r in cause["explains"]
                                 if (r["check"], r["index"]) not in seen and not seen.add((r["check"], r["index"]))]
            cause["explains"].sort(key=lambda r: (_order(r["check"]), r["index"]))
            taken.update((r["check"], r["index"]) for r in cause["explains"])
            causes.append(cause)
    return causes


# the fields of a finding that hold commands naming the node security group
SG_FIELDS = ("remediation", "cli")


def fill_node_sg(checks):
    """``checks`` with the node security group's id in place of the placeholder (``<node-sg-id>``) in the
    commands of findings whose check does not know the group (the dns check's fixes, node_reachability's
    without validate_network_security_group_id), once sg_audit found it: the fix a user copies then runs
    as it stands. Unless every node instance sg_audit saw is a member of that one group, ``checks`` comes
    back as it was (no id is guessed); nothing else changes."""
    ctx = _Context(checks)  # how sg_audit's evidence is read, in one place
    sg_id = ctx.node_sg
    members = [[g["GroupId"] for g in i["SecurityGroups"]] for i in ctx.instances.values()]
    if not sg_id or sg_id == cat.SG_PLACEHOLDER or not members or not all(sg_id in m for m in members):
        return checks
    out = {}
    for name, check in checks.items():
        filled, touched = [], False
        for f in (check or {}).get("findings") or []:
            hits = [k for k in SG_FIELDS if isinstance(f.get(k), str) and cat.SG_PLACEHOLDER in f[k]]
            if hits:
                f = dict(f, **dict((k, f[k].replace(cat.SG_PLACEHOLDER, sg_id)) for k in hits))
                touched = True
            filled.append(f)
        out[name] = dict(check, findings=filled) if touched else check
    return out


def _order(check):
    return (CHECK_ORDER.index(check), check) if check in CHECK_ORDER else (len(CHECK_ORDER), check)


def unexplained(checks, causes):
    """Error findings no cause explains, as finding references."""
    ctx = _Context(checks)
    done = {(r["check"], r["index"]) for c in causes for r in c["explains"]}
    return [_ref(c, i, f) for c, i, f in ctx.items if f.get("severity") == "error" and (c, i) not in done]


def contradictions(checks):
    """Findings that another check's evidence contradicts: [{"ref": finding ref, "why": str}].

    A finding must agree with what every check recorded: an upstream timeout while the host path saw a
    CoreDNS pod answer the external name, a blocked node-pair port the matrix shows open, a CoreDNS pod
    unreachable from a node whose own query to it was answered, a missing self-reference in a group whose
    rules have one.
    """
    ctx = _Context(checks)
    out = []
    cells = dict(((m.get("src"), m.get("dst"), m.get("check")), m.get("ok")) for m in ctx.reach.get("matrix") or [])
    answered = set()
    for res in ctx.dns.get("host_results") or []:
        for q in res.get("queries") or []:
            if q.get("target") == "endpoint" and q.get("kind") != "external" and q.get("status") in ("ok", "nodata"):
                answered.add((res.get("node"), q.get("endpoint_node")))
    for c, i, f in ctx.items:
        d = f.get("details") or {}
        why = None
        if f["id"] == "UPSTREAM_TIMEOUT" and _host_external_ok(ctx):
            why = "the host path saw a CoreDNS pod answer the external name"
        elif f["id"] == "NODE_PORT_BLOCKED" and d.get("src"):
            open_ = [x for x in d.get("checks") or [] if cells.get((d["src"], d.get("dst"), x)) is True]
            if open_:
                why = "the matrix shows %s open from %s to %s" % (", ".join(open_), d["src"], d.get("dst"))
        elif f["id"] == "DNS_POD_UNREACHABLE" and (d.get("src"), d.get("dst")) in answered:
            why = "the host path of %s got an answer from the CoreDNS pod on %s" % (d.get("src"), d.get("dst"))
        elif f["id"] == "SG_NO_SELF_REF" and c == "sg_audit" and ctx.node_sg in ctx.groups and \
                sgmod.has_self_reference(ctx.groups[ctx.node_sg]) and len(ctx.groups) == 1:
            why = "%s has a self-referencing rule" % ctx.node_sg
        if why:
            out.append({"ref": _ref(c, i, f), "why": why})
    return out


def headline(checks, causes):
    """"2 root causes explain 22 findings" | "healthy" (plus the unexplained count when there are any)."""
    left = unexplained(checks, causes)
    if not causes and not left:
        return "healthy"
    n = len({(r["check"], r["index"]) for c in causes for r in c["explains"]})
    one = len(causes) == 1
    text = "%d root cause%s explain%s %d finding%s" % (len(causes), "" if one else "s", "s" if one else "", n,
                                                       "" if n == 1 else "s")
    if left:
        text += "; %d error finding%s unexplained" % (len(left), "" if len(left) == 1 else "s")
    return text
