# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node-to-node reachability: the probe plan and the analysis of the matrix (pure, no I/O).

The probes themselves run on the nodes (probes/net.py, through the node_probe module); the
controller combines every node's report here into the matrix and findings.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


# The encapsulation protocols each Calico mode needs between nodes: the one table (analysis/calico.py).
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import calico
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import catalogue as cat
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import (
    ERROR,
    WARNING,
    finding,
)
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.node_plan import (  # pylint: disable=unused-import
    CHECK_ORDER,
    CHECKS,
    DEFAULT_EPHEMERAL_PORT,
    ENCAP_CHECKS,
    IPIP_NOTE,
    IPPROTO_IPIP,
    VXLAN_PORT,
    ipip_oriented,
    label,
    plan_checks,
    validate_nodes,
)

ENCAPSULATIONS = calico.ENCAPSULATIONS


# ---------------------------------------------------------------------------
# Remediation text (the commands themselves live in analysis/catalogue.py)
# ---------------------------------------------------------------------------
def encap_permission(check, sg_id=None):
    if check == "ipip":
        return cat.sg_permission("4", None, sg_id)
    return cat.sg_permission(CHECKS[check][0], CHECKS[check][1], sg_id)


def encap_fix(checks, sg_id=None):
    return cat.encap_fix([label(c) for c in checks], [encap_permission(c, sg_id) for c in checks], sg_id)


def blocked_fix(core, encap, dst, sg_id=None):
    """What to do about probes dropped between two nodes: which device dropped them is not known here."""
    if core:
        sg_fix = cat.self_ref_fix(sg_id)
    else:
        sg_fix = encap_fix(encap, sg_id)
    return ("if the node security group does not allow them: %s. If it does, the drop is outside it: the network "
            "ACL of the nodes' subnet or the host firewall of %s (sudo iptables -S; sudo nft list ruleset); the "
            "report's root causes say which" % (sg_fix, dst))


# ---------------------------------------------------------------------------
# Analysis (controller, pure)
# ---------------------------------------------------------------------------
# A silence is a drop only when at least this many packets went out while the receiver listened.
MIN_PACKETS_WHILE_LISTENING = 3


def sent_while_listening(send, count, listen):
    """How many of ``count`` evenly spaced packets sent through ``send`` = [first, last] fell inside the
    receiver's ``listen`` = [opened, closed] (None: an interval is unknown)."""
    if not send or not listen or len(send) != 2 or len(listen) != 2 or None in send or None in listen:
        return None
    first, last = send
    low, high = max(first, listen[0]), min(last, listen[1])
    if high < low:
        return 0
    if count is None:  # a report without per-probe counts: overlapping is all that is known
        return None
    count = int(count)
    if count <= 1 or last <= first:
        return count
    spacing = (last - first) / float(count - 1)
    return min(count, int((high - low) / spacing + 1e-9) + 1)


def _job_sends(rep):
    """{(dst, check): (send interval, packet count)} of one node's report: each probe's own first/last
    send when the report has them, else the node's whole send interval (indexed once per node: the
    matrix looks up every probe)."""
    out = {}
    for entry in rep.get("sent") or []:
        if len(entry) >= 6 and entry[4] is not None and entry[5] is not None:
            out[(entry[0], entry[1])] = ([entry[4], entry[5]], entry[2])
        else:
            out[(entry[0], entry[1])] = (rep.get("send"), entry[2])
    return out


def build_matrix(nodes, control_planes, probes, listens=None, typha=False):
    """Combine the per-node reports into ``{(src, dst, check): (status, detail)}``.

    ``probes``: node -> that node's report (probes/net.py ``run_probes()``) or None (it did not report);
    ``listens``: node -> the report holding what that node received; default ``probes`` (one report
    per node carries both).
    Status: ``ok``, ``blocked`` or ``unknown`` (no report from the node that decides, or the
    receiving node was not listening while the sender sent).
    """
    listens = probes if listens is None else listens
    matrix = {}
    received = {}
    for name, res in (listens or {}).items():
        if res and not res.get("missing") and not res.get("listener_error"):
            received[name] = set((src, check) for src, check, _n in res.get("received", []))
    for src in sorted(nodes):
        rep = (probes or {}).get(src)
        by_key, sends = {}, {}
        if rep:
            for dst, check, status, detail in rep.get("results", []):
                by_key[(dst, check)] = (status, detail)
            sends = _job_sends(rep)
        for dst in sorted(nodes):
            if dst == src:
                continue
            for check in plan_checks(src, dst, control_planes, typha, names=list(nodes)):
                if not rep:
                    matrix[(src, dst, check)] = ("unknown", "%s did not report probe results" % src)
                    continue
                status, detail = by_key.get((dst, check), ("unknown", "not probed"))
                if CHECKS[check][0] in ("udp", "ip"):
                    if status == "sent" and detail.startswith("send failed"):
                        status = "blocked"
                    elif status == "sent":
                        send, count = sends.get((dst, check), (rep.get("send"), None))
                        during = sent_while_listening(send, count, ((listens or {}).get(dst) or {}).get("listen"))
                        if dst not in received:
                            status, detail = "unknown", "%s's listener did not report" % dst
                        elif (nodes[src], check) in received[dst]:
                            status, detail = "ok", "received by %s" % dst
                        elif during == 0:
                            status, detail = "unknown", (
                                "%s was not listening while %s sent (the nodes did not run at the same time: "
                                "Ansible forks lower than the number of nodes?)" % (dst, src))
                        elif during is not None and during < MIN_PACKETS_WHILE_LISTENING:
                            status, detail = "unknown", (
                                "only %d packet(s) left %s while %s listened, too few to call a drop (the nodes "
                                "started seconds apart: a busy controller?)" % (during, src, dst))
                        else:
                            status, detail = "blocked", "%s not received by %s" % (detail, dst)
                matrix[(src, dst, check)] = (status, detail)
    return matrix


def unreachable_nodes(nodes, matrix, probes):
    """Nodes no peer reached on any probe and that reached no peer (or never reported)."""
    out = {}
    if len(nodes) < 2:
        return out
    for name in sorted(nodes):
        if not (probes or {}).get(name):
            out[name] = "did not report (Ansible could not run the probe there)"
            continue
        inbound = [v[0] for (s, d, _c), v in matrix.items() if d == name and v[0] != "unknown"]
        outbound = [v[0] for (s, _d, _c), v in matrix.items() if s == name and v[0] != "unknown"]
        if inbound and "ok" not in inbound and "ok" not in outbound:
            out[name] = "no peer reached it on any probe and it reached no peer"
    return out


def same_subnet(subnets, src, dst):
    """Whether two nodes share a subnet; unknown (no entry for either) counts as different."""
    subnets = subnets or {}
    return bool(subnets.get(src)) and subnets.get(src) == subnets.get(dst)


def analyse(nodes, control_planes, probes, listens=None, calico_encapsulation="IPIP", typha=False,
            sg_id=None, ephemeral_port=DEFAULT_EPHEMERAL_PORT, subnets=None):
    """Return (findings, summary, matrix) for the reachability matrix (``listens`` as in build_matrix()).

    ``subnets``: node -> subnet (id or CIDR). With a CrossSubnet mode, VXLAN / IP-in-IP are needed only
    between nodes of different subnets; one blocked inside a subnet is a warning (not needed today).
    """
    matrix = build_matrix(nodes, control_planes, probes, listens, typha)
    findings = []
    dead = unreachable_nodes(nodes, matrix, probes)
    for name, why in sorted(dead.items()):
        findings.append(finding(
            "NODE_UNREACHABLE",
            "%s (%s) %s" % (name, nodes[name], why),
            "a node that drops everything cannot run pods, answer kubelet/API calls or carry pod traffic; "
            "probes to it timed out after their bound instead of hanging",
            "check that the instance is running and reachable: its security groups (aws ec2 describe-security-groups "
            "--group-ids %s), the subnet's network ACL and the host firewall (iptables -S / nft list ruleset on %s)"
            % (sg_id or cat.SG_PLACEHOLDER, name),
            where=name, node=name, ip=nodes[name], reason=why,
            cli="aws ec2 describe-instances --filters Name=private-ip-address,Values=%s --query "
                "'Reservations[].Instances[].[InstanceId,State.Name]'" % nodes[name]))
    warn_pairs = {}
    for src in sorted(nodes):
        for dst in sorted(nodes):
            if src == dst or src in dead or dst in dead:
                continue
            blocked = [c for c in CHECK_ORDER if matrix.get((src, dst, c), ("",))[0] == "blocked"]
            if not blocked:
                continue
            where = "%s (%s) -> %s (%s)" % (src, nodes[src], dst, nodes[dst])
            core = [c for c in blocked if c not in ENCAP_CHECKS]
            needed = calico.pair_needs(calico_encapsulation, same_subnet(subnets, src, dst))
            encap = [c for c in blocked if c in ENCAP_CHECKS and c in needed]
            for c in blocked:
                if c in ENCAP_CHECKS and c not in needed:
                    warn_pairs.setdefault(c, []).append("%s->%s" % (src, dst))
            if not core and not encap:
                continue
            shown = core + encap
            findings.append(finding(
                "NODE_PORT_BLOCKED",
                "%s blocked from %s to %s" % (", ".join(label(c, ephemeral_port) for c in shown), src, dst),
                "probes from %s to %s timed out or were rejected on the way; needed by: %s%s"
                % (src, dst, "; ".join("%s: %s" % (label(c, ephemeral_port), CHECKS[c][3]) for c in shown),
                   IPIP_NOTE if "ipip" in encap else ""),
                blocked_fix(core, encap, dst, sg_id), severity=ERROR, where=where,
                blocked=[label(c, ephemeral_port) for c in shown], checks=shown,
                ports=[_port_of(c, ephemeral_port) for c in shown],
                reasons=[matrix[(src, dst, c)][1] for c in shown],
                calico_encapsulation=calico_encapsulation,
                src=src, dst=dst, src_ip=nodes[src], dst_ip=nodes[dst]))
    for check in ENCAP_CHECKS:
        pairs = warn_pairs.get(check)
        if pairs:
            findings.append(finding(
                "NODE_PORT_BLOCKED",
                "%s blocked on %d node pair(s) (%s%s); not needed by Calico encapsulation %s"
                % (label(check), len(pairs), ", ".join(pairs[:6]), ", ..." if len(pairs) > 6 else "", calico_encapsulation),
                "harmless today, but switching the IPPool to a mode that needs it (%s) would break cross-node pod traffic"
                % CHECKS[check][3],
                encap_fix([check], sg_id), severity=WARNING, where="%d pair(s)" % len(pairs),
                pairs=pairs, checks=[check], calico_encapsulation=calico_encapsulation))
    summary = summarize(nodes, matrix, ephemeral_port)
    return findings, summary, matrix


def _port_of(check, ephemeral_port=DEFAULT_EPHEMERAL_PORT):
    """``{"check", "proto", "port"}`` of one check: proto tcp/udp, or "4" (IP-in-IP, port None)."""
    proto, port = CHECKS[check][0], CHECKS[check][1]
    if check == "ephemeral":
        port = ephemeral_port
    if proto == "ip":
        return {"check": check, "proto": str(port), "port": None}
    return {"check": check, "proto": proto, "port": port}


def matrix_rows(nodes, matrix, ephemeral_port=DEFAULT_EPHEMERAL_PORT):
    """The matrix as the evidence list of the contract: [{src, dst, check, proto, port, ok, reason}]."""
    out = []
    for (src, dst, check), (status, detail) in sorted(matrix.items()):
        if status == "unknown":
            continue
        row = _port_of(check, ephemeral_port)
        out.append({"src": src, "dst": dst, "check": check, "proto": row["proto"], "port": row["port"],
                    "ok": status == "ok", "reason": detail})
    return out


def summarize(nodes, matrix, ephemeral_port=DEFAULT_EPHEMERAL_PORT):
    per_check = {}
    for (_s, _d, check), (status, _detail) in matrix.items():
        per_check.setdefault(check, {"ok": 0, "blocked": 0, "unknown": 0})[status] += 1
    n = len(nodes)
    ok = sum(v["ok"] for v in per_check.values())
    parts = []
    for check in CHECK_ORDER:
        if check in per_check:
            v = per_check[check]
            parts.append("%s %d/%d" % (label(check, ephemeral_port), v["ok"], v["ok"] + v["blocked"] + v["unknown"]))
    return {
        "nodes": n,
        "pairs": n * (n - 1),
        "probes": len(matrix),
        "ok": ok,
        "blocked": sum(v["blocked"] for v in per_check.values()),
        "unknown": sum(v["unknown"] for v in per_check.values()),
        "per_check": per_check,
        "text": "%d nodes, %d directed pairs, %d probes, %d passed: %s" % (n, n * (n - 1), len(matrix), ok, ", ".join(parts)),
    }


def matrix_table(nodes, matrix):
    """Compact matrix for the module result: {src: {dst: "ok" | "blocked: a, b" | "unknown: a"}}."""
    out = {}
    for src in sorted(nodes):
        row = {}
        for dst in sorted(nodes):
            if src == dst:
                continue
            bad = dict((s, []) for s in ("blocked", "unknown"))
            for c in CHECK_ORDER:
                st = matrix.get((src, dst, c))
                if st and st[0] in bad:
                    bad[st[0]].append(c)
            text = "; ".join("%s: %s" % (k, ", ".join(v)) for k, v in sorted(bad.items()) if v)
            row[dst] = text or "ok"
        out[src] = row
    return out
