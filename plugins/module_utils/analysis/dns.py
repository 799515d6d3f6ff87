# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cluster DNS analysis: plain data in, findings out (no I/O, no Ansible).

Three kinds of input, each produced by one mode of the ``dns_check`` module:

* cluster objects: the API JSON of CoreDNS pods, the kube-dns Service and
  EndpointSlices, the coredns ConfigMap, NetworkPolicies, Services, pods, nodes
  and namespaces (``summarize_cluster`` + ``cluster_findings``);
* node results: what each node got when it queried the service IP and each
  CoreDNS endpoint directly (``host_findings``);
* probe pod results: the termination message of one short-lived pod per node
  (``parse_probe_message`` + ``pod_findings``).

``analyze`` combines them; every finding names where, what, why and the fix.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import math
import re

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import catalogue as cat
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import (
    ERROR,
    WARNING,
    finding,
)
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import netpol
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.resolv import (  # pylint: disable=unused-import
    DEFAULT_DOMAIN,
    is_loopback,
    loopback_nameservers,
    parse_kubelet_resolv_conf,
    parse_resolv_conf,
    qualify,
    query_plan,
)

DEFAULT_SERVICE_IP = "10.96.0.10"
COREDNS_LABELS = {"k8s-app": "kube-dns"}
VPC_RESOLVER = cat.VPC_RESOLVER
OK_STATUSES = ("ok", "nodata")
PROBE_FORMAT = "dnsprobe/1"

# Which device drops node-to-pod traffic between two nodes is decided by the diagnosis; the finding
# says where to look.
POD_PATH_FIX = (
    "the path between the two nodes drops it: if the node security group lacks the self-referencing rule "
    "(SG_NO_SELF_REF), add it: %s ; or at least the pod encapsulation Calico uses (IPIP: IP protocol 4, "
    "VXLAN: UDP 4789; see ENCAP_BLOCKED). If the group allows it, look at the subnet's network ACL and the "
    "destination node's host firewall (NODE_PORT_BLOCKED)" % cat.self_ref_cli()
)


def corefile_forwards(corefile):
    """``forward`` directives of a Corefile: [{"from": zone, "to": [targets]}]."""
    out = []
    for line in (corefile or "").splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^(forward|proxy)\s+(\S+)\s+([^{]+?)\s*(\{.*)?$", line)
        if m:
            out.append({"from": m.group(2), "to": m.group(3).split()})
    return out


def corefile_forwards_to_resolv_conf(corefile):
    return any("/etc/resolv.conf" in fw["to"] for fw in corefile_forwards(corefile) if fw["from"] == ".")


def loop_risk(corefile, node_resolv):
    """Nodes whose resolver is loopback while the Corefile forwards '.' to /etc/resolv.conf.

    ``node_resolv``: {node: [nameservers]} -> {node: [loopback nameservers]}.
    """
    if not corefile_forwards_to_resolv_conf(corefile):
        return {}
    out = {}
    for node, servers in sorted((node_resolv or {}).items()):
        loop = loopback_nameservers(servers or [])
        if loop:
            out[node] = loop
    return out


# -- label selectors ---------------------------------------------------------------------------
selector_matches = netpol.selector_matches  # one implementation, in the NetworkPolicy engine


def service_selector_matches(selector, labels):
    """A Service's plain map selector (every pair must match)."""
    labels = labels or {}
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def _fmt_labels(labels):
    return ",".join("%s=%s" % kv for kv in sorted((labels or {}).items())) or "<none>"


# -- cluster objects ---------------------------------------------------------------------------
def _meta(obj):
    return obj.get("metadata") or {}


def _pod_ready(pod):
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def coredns_pod_state(pod):
    """A short summary of one CoreDNS pod."""
    status = pod.get("status") or {}
    out = {
        "name": _meta(pod).get("name"),
        "node": (pod.get("spec") or {}).get("nodeName") or "",
        "ip": status.get("podIP") or "",
        "phase": status.get("phase") or "Unknown",
        "ready": _pod_ready(pod),
        "waiting_reason": "",
        "last_reason": "",
        "last_message": "",
        "restarts": 0,
    }
    for cs in status.get("containerStatuses") or []:
        out["restarts"] += int(cs.get("restartCount") or 0)
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") and not out["waiting_reason"]:
            out["waiting_reason"] = waiting["reason"]
        term = (cs.get("lastState") or {}).get("terminated") or (cs.get("state") or {}).get("terminated") or {}
        if term and not out["last_reason"]:
            out["last_reason"] = term.get("reason") or ""
            out["last_message"] = (term.get("message") or "").strip()
    return out


def endpoints_from_slices(slices):
    """[{ip, node, ready, pod}] from kube-dns EndpointSlices (ready endpoints only, deduplicated)."""
    out, seen = [], set()
    for sl in slices or []:
        for ep in sl.get("endpoints") or []:
            cond = ep.get("conditions") or {}
            if cond.get("ready") is False:
                continue
            for ip in ep.get("addresses") or []:
                if ip in seen:
                    continue
                seen.add(ip)
                ref = ep.get("targetRef") or {}
                out.append({"ip": ip, "node": ep.get("nodeName") or "", "pod": ref.get("name") or ""})
    return out


def summarize_cluster(objs, domain=DEFAULT_DOMAIN):
    """Reduce the API objects to the state the other analyses need.

    ``objs`` keys (lists of API JSON unless noted): coredns_pods, dns_service (dict or None),
    dns_slices, coredns_configmap (dict or None), nodes.
    """
    svc = objs.get("dns_service") or {}
    cm = objs.get("coredns_configmap") or {}
    nodes = []
    for node in objs.get("nodes") or []:
        ip = ""
        for addr in (node.get("status") or {}).get("addresses") or []:
            if addr.get("type") == "InternalIP":
                ip = addr.get("address")
                break
        nodes.append({"name": _meta(node).get("name"), "ip": ip})
    return {
        "service_ip": (svc.get("spec") or {}).get("clusterIP") or "",
        "service_found": bool(svc),
        "service_selector": (svc.get("spec") or {}).get("selector") or {},
        "endpoints": endpoints_from_slices(objs.get("dns_slices")),
        "slices_found": len(objs.get("dns_slices") or []),
        "coredns_pods": [coredns_pod_state(p) for p in objs.get("coredns_pods") or []],
        "coredns_labels": [(_meta(p).get("labels") or {}) for p in objs.get("coredns_pods") or []],
        "corefile": (cm.get("data") or {}).get("Corefile", ""),
        "corefile_found": bool(cm),
        "nodes": nodes,
        "domain": domain,
    }


def dns_endpoint_findings(state, namespace="kube-system"):
    if state.get("endpoints"):
        return []
    pods = state.get("coredns_pods") or []
    ready = [p for p in pods if p["ready"]]
    if not state.get("service_found"):
        observed = "Service %s/kube-dns not found" % namespace
    else:
        observed = "Service %s/kube-dns (%s) has no ready endpoints (%d EndpointSlice(s))" % (
            namespace, state.get("service_ip") or "no clusterIP", state.get("slices_found", 0))
    if not pods:
        why = "no CoreDNS pod exists (label k8s-app=kube-dns), so every DNS query to the service IP times out"
        cli = "kubectl -n %s scale deployment coredns --replicas=2" % namespace
        fix = "deploy CoreDNS: kubeadm init phase addon coredns, or %s" % cli
    elif not ready:
        why = "none of the %d CoreDNS pod(s) is Ready, so the service has nothing to send queries to" % len(pods)
        cli = "kubectl -n %s rollout restart deployment coredns" % namespace
        fix = "fix the CoreDNS pods (see COREDNS_NOT_READY), then %s" % cli
    else:
        why = ("%d CoreDNS pod(s) are Ready but the Service selector %s does not select them"
               % (len(ready), _fmt_labels(state.get("service_selector"))))
        labels = (state.get("coredns_labels") or [{}])[0] or {"k8s-app": "kube-dns"}
        fix = ("make the kube-dns Service selector match the CoreDNS pod labels (%s): kubectl -n %s edit "
               "service kube-dns" % (_fmt_labels(labels), namespace))
        cli = "kubectl -n %s patch service kube-dns -p '%s'" % (namespace, netpol._json({"spec": {"selector": labels}}))
    return [finding("DNS_NO_ENDPOINTS", observed, why, fix, where="%s/kube-dns" % namespace, cli=cli)]


def coredns_findings(state, node_resolv=None, namespace="kube-system"):
    """COREDNS_NOT_READY for not-ready CoreDNS pods, with the loop hint when it applies."""
    corefile = state.get("corefile") or ""
    risky = loop_risk(corefile, node_resolv)
    forwards_resolv = corefile_forwards_to_resolv_conf(corefile)
    loop_fix = cat.coredns_loop_fix(namespace)
    out = []
    for pod in state.get("coredns_pods") or []:
        if pod["ready"]:
            continue
        reason = pod["waiting_reason"] or pod["phase"]
        observed = "CoreDNS pod %s on %s is not ready: %s (restarts %d" % (
            pod["name"], pod["node"] or "<unscheduled>", reason, pod["restarts"])
        if pod["last_reason"]:
            observed += ", last exit %s" % pod["last_reason"]
        observed += ")"
        if pod["last_message"]:
            observed += ": %s" % pod["last_message"].splitlines()[-1][:200]
        looped = "loop" in pod["last_message"].lower() and "detected" in pod["last_message"].lower()
        if forwards_resolv and (risky or looped):
            where_loop = ", ".join("%s -> %s" % (n, "/".join(s)) for n, s in risky.items())
            why = ("the Corefile forwards '.' to /etc/resolv.conf and the resolv.conf kubelet gives pods points "
                   "to a loopback resolver (%s); CoreDNS forwards to itself and its loop plugin stops it"
                   % (where_loop or "127.0.0.53 / 127.0.0.11"))
            fix, cli = loop_fix, cat.coredns_forward_cli(VPC_RESOLVER, namespace)
        else:
            why = "a CoreDNS replica that is not Ready serves no queries; DNS degrades or fails cluster-wide"
            fix = ("kubectl -n %s describe pod %s; kubectl -n %s logs %s --previous"
                   % (namespace, pod["name"], namespace, pod["name"]))
            cli = "kubectl -n %s logs %s --previous" % (namespace, pod["name"])
        out.append(finding("COREDNS_NOT_READY", observed, why, fix, cli=cli,
                           where="%s/%s@%s" % (namespace, pod["name"], pod["node"] or "?"),
                           reason=reason, loop=bool(forwards_resolv and (risky or looped))))
    if not out and risky:
        out.append(finding(
            "COREDNS_NOT_READY",
            "the Corefile forwards '.' to /etc/resolv.conf and the node resolver is loopback (%s)"
            % ", ".join("%s -> %s" % (n, "/".join(s)) for n, s in risky.items()),
            "a CoreDNS pod started on such a node forwards to itself: the loop plugin makes it CrashLoopBackOff",
            loop_fix, severity=WARNING, where=", ".join(risky), loop=True))
    return out


# -- NetworkPolicy (judged by the engine in analysis/netpol.py) -----------------------------------
# The ports kubeadm's CoreDNS Deployment declares: named egress ports ("dns", "dns-tcp") resolve to
# them when the CoreDNS pod objects themselves are not at hand.
COREDNS_PORTS = [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                 {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                 {"name": "metrics", "containerPort": 9153, "protocol": "TCP"}]


def dns_targets(state, namespace="kube-system", pods=None):
    """Where pods' DNS packets go after kube-proxy DNAT: the CoreDNS pods, as pod objects for the
    engine (the listed API objects when ``pods`` has them, else stand-ins built from ``state``)."""
    listed = {(p.get("status") or {}).get("podIP"): p for p in pods or []
              if _meta(p).get("namespace") == namespace and (p.get("status") or {}).get("podIP")}
    targets = []
    for pod, labels in zip(state.get("coredns_pods") or [], state.get("coredns_labels") or []):
        if pod.get("ip") in listed:
            targets.append(listed[pod["ip"]])
        else:
            targets.append(_coredns_stand_in(pod.get("name") or "coredns", namespace, labels, pod.get("ip"),
                                             pod.get("node")))
    if not targets:
        for i, ep in enumerate(state.get("endpoints") or [{"ip": ""}]):
            targets.append(_coredns_stand_in(ep.get("pod") or "coredns-%d" % i, namespace, dict(COREDNS_LABELS),
                                             ep.get("ip"), ep.get("node")))
    return targets


def _coredns_stand_in(name, namespace, labels, ip, node):
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "coredns", "ports": COREDNS_PORTS}]},
            "status": {"phase": "Running", "podIP": ip or ""}}


def allow_dns_policy(namespace, dns_namespace="kube-system"):
    """The allow-dns NetworkPolicy of ``allow_dns_policy_yaml`` as an object (for ``netpol.apply_cli``)."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "allow-dns", "namespace": namespace},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"],
                     "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": dns_namespace}},
                                         "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                                 "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}}


def allow_dns_policy_yaml(namespace, dns_namespace="kube-system"):
    return (
        "kubectl apply -f - <<'EOF'\n"
        "apiVersion: networking.k8s.io/v1\n"
        "kind: NetworkPolicy\n"
        "metadata: {name: allow-dns, namespace: %s}\n"
        "spec:\n"
        "  podSelector: {}\n"
        "  policyTypes: [Egress]\n"
        "  egress:\n"
        "  - to:\n"
        "    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: %s}}\n"
        "      podSelector: {matchLabels: {k8s-app: kube-dns}}\n"
        "    ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]\n"
        "EOF" % (namespace, dns_namespace)
    )


def _dns_egress(pod, proto, targets, policies, ns_labels):
    """The engine's egress verdict of ``pod`` towards the CoreDNS pods on ``proto`` 53: the first
    allowed one, else the one whose nearest rule misses least."""
    best = None
    src = netpol.endpoint(pod)
    for target in targets:
        dst = netpol.endpoint(target)
        side = netpol.side("Egress", src, dst, dst, 53, proto, policies, ns_labels)
        if side["allowed"]:
            return side, target
        if best is None or (side["nearest"] and not best[0]["nearest"]):
            best = (side, target)
    return best


def netpol_findings(policies, pods, namespaces, state, dns_namespace="kube-system"):
    """NETPOL_BLOCKS_DNS: pods isolated for egress by policies that allow no UDP (or TCP) 53 to CoreDNS;
    when a rule nearly allows it, the part that matches nothing and its minimal fix."""
    targets = dns_targets(state, dns_namespace, pods)
    ns_labels = netpol.namespace_labels(namespaces)
    groups = {}
    for pod in pods or []:
        meta, spec, status = _meta(pod), pod.get("spec") or {}, pod.get("status") or {}
        if spec.get("hostNetwork") or status.get("phase") in ("Succeeded", "Failed"):
            continue
        selecting = netpol.applying(policies, netpol.endpoint(pod), "Egress")
        if not selecting:
            continue
        verdicts = {proto: _dns_egress(pod, proto, targets, policies, ns_labels) for proto in ("UDP", "TCP")}
        blocked = [proto for proto in ("UDP", "TCP") if not verdicts[proto][0]["allowed"]]
        if not blocked:
            continue
        side, target = verdicts[blocked[0]]
        near = side["nearest"]
        key = (meta.get("namespace"), tuple(sorted(_meta(p).get("name") for p in selecting)), tuple(blocked),
               "; ".join(near["why"]) if near else "")
        entry = groups.setdefault(key, {"pods": [], "near": near, "verdicts": verdicts})
        entry["pods"].append(meta.get("name"))
    out = []
    for (ns, names, blocked, why), entry in sorted(groups.items()):
        pod_names = entry["pods"]
        shown = ", ".join(sorted(pod_names)[:5]) + (" and %d more" % (len(pod_names) - 5) if len(pod_names) > 5 else "")
        observed = "NetworkPolicy %s selects %d pod(s) (%s) and allows no egress to %s 53 of the CoreDNS pods" % (
            "/".join(names), len(pod_names), shown, "/".join(blocked))
        fix = "add an allow-dns egress policy (UDP and TCP 53 to kube-system): " + allow_dns_policy_yaml(ns, dns_namespace)
        cli = netpol.apply_cli([allow_dns_policy(ns, dns_namespace)])
        details = {}
        near = entry["near"]
        if near:
            observed += "; nearest rule %s egress rule %d: %s" % (near["policy"], near["rule"], why)
            fixes = []
            for proto in blocked:  # one change that lets every blocked protocol through
                side, target = entry["verdicts"][proto]
                dst = netpol.endpoint(target)
                # with the pods: a peer selector that serves other pods gets a new peer beside it, as the
                # paths check's fixes do, instead of being replaced (those pods keep what the policy allowed)
                fixes += netpol.rule_fixes(side["nearest"], dst, dst, 53, proto, ns_labels, pods)
            if fixes:
                fix = "%s; or %s" % (netpol.combine_fixes(fixes), fix)
                cli = netpol.fix_cli(fixes) or cli
            details["nearest"] = {"policy": near["policy"], "rule": near["rule"], "why": near["why"]}
        out.append(finding(
            "NETPOL_BLOCKS_DNS", observed,
            "pods selected by an egress policy may only send what some policy allows: their DNS queries "
            "are dropped, so name lookups time out in namespace %s only" % ns if "UDP" in blocked else
            "DNS answers larger than 512 bytes retry over TCP 53, which these policies drop",
            fix, severity=ERROR if "UDP" in blocked else WARNING, cli=cli,
            where="namespace %s" % ns, policies=list(names), pods=sorted(pod_names), blocked=list(blocked), **details))
    return out


# -- Services ------------------------------------------------------------------------------------
def _container_ports(pod):
    out = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            out.append({"port": p.get("containerPort"), "name": p.get("name") or "",
                        "protocol": (p.get("protocol") or "TCP").upper()})
    return out


def workload_name(pod):
    """The workload a pod belongs to: its controller's name without the ReplicaSet hash, else its own name
    without the generated suffix."""
    meta = _meta(pod)
    labels = meta.get("labels") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller") or len(meta.get("ownerReferences")) == 1:
            owner = ref.get("name") or ""
            h = labels.get("pod-template-hash")
            if ref.get("kind") == "ReplicaSet":
                if h and owner.endswith("-" + h):
                    return owner[:-len(h) - 1]
                return re.sub(r"-[a-z0-9]{6,10}$", "", owner)
            return owner
    name = meta.get("name") or ""
    return re.sub(r"(-[a-z0-9]{6,10})?-[a-z0-9]{5}$", "", name) or name


def _declares(pod, service_ports):
    """Whether ``pod`` declares every targetPort of the Service (by number or name, same protocol)."""
    ports = _container_ports(pod)
    for sp in service_ports:
        target = sp.get("targetPort", sp.get("port"))
        proto = (sp.get("protocol") or "TCP").upper()
        if isinstance(target, str) and not target.isdigit():
            ok = any(p["name"] == target and p["protocol"] == proto for p in ports)
        else:
            ok = any(p["port"] == int(target) and p["protocol"] == proto for p in ports)
        if not ok:
            return False
    return True


def _closeness(selector, service_name, pod):
    """How close a pod is to what a Service meant: (selector pairs equal, selector keys present, similarity of
    its workload name (and label values) to the Service name). Higher is closer."""
    labels = _meta(pod).get("labels") or {}
    equal = sum(1 for k, v in selector.items() if labels.get(k) == v)
    present = sum(1 for k in selector if k in labels)
    names = [workload_name(pod)] + [labels[k] for k in selector if k in labels]
    similar = max(difflib.SequenceMatcher(None, service_name, n).ratio() for n in names)
    return (equal, present, round(similar, 3))


def _target_text(service_ports):
    return ", ".join("%s/%s" % (sp.get("targetPort", sp.get("port")), (sp.get("protocol") or "TCP").upper())
                     for sp in service_ports) or "any port"


def selector_finding(ns, name, selector, service_ports, candidates, where):
    """SVC_NO_ENDPOINTS for a selector that matches no pod, with the nearest workloads that could serve it."""
    qualified, skipped = {}, []
    for pod in sorted(candidates, key=lambda p: _meta(p).get("name") or ""):
        if _declares(pod, service_ports):
            qualified.setdefault(workload_name(pod), []).append(pod)
        elif any(k in (_meta(pod).get("labels") or {}) for k in selector):
            skipped.append(pod)
    ranked = sorted(qualified.items(), key=lambda kv: (tuple(-x for x in _closeness(selector, name, kv[1][0])), kv[0]))
    observed = "selector %s matches no pod in namespace %s" % (_fmt_labels(selector), ns)
    targets = _target_text(service_ports)
    near = []
    for _wl, pods in ranked[:3]:
        labels = _meta(pods[0]).get("labels") or {}
        diff = [k for k in sorted(selector) if labels.get(k) != selector[k]]
        near.append("%s has %s" % (_meta(pods[0]).get("name"),
                                   ",".join("%s=%s" % (k, labels[k]) if k in labels else "no %s" % k for k in diff)))
    if near:
        observed += " (%s)" % "; ".join(near)
    if skipped:
        observed += "; not proposed, as they declare no containerPort %s: %s" % (
            targets, ", ".join(sorted({workload_name(p) for p in skipped})))
    if ranked:
        wl, pods = ranked[0]
        labels = _meta(pods[0]).get("labels") or {}
        patch = dict((k, labels.get(k)) for k in sorted(selector) if labels.get(k) != selector[k])
        body = ",".join('"%s":%s' % (k, '"%s"' % v if v is not None else "null") for k, v in sorted(patch.items()))
        cli = "kubectl -n %s patch service %s -p '{\"spec\":{\"selector\":{%s}}}'" % (ns, name, body)
        fix = ("%s (the nearest workload that declares %s: %s; or label its pods %s)"
               % (cli, targets, wl, _fmt_labels(selector)))
        why = ("a Service whose selector matches no pod has no endpoints: its name resolves but connections are "
               "refused or hang")
    else:
        fix = ("no pod in namespace %s declares containerPort %s, so no selector change gives this Service "
               "endpoints: deploy the pods it is meant for, declare the port in their containers, or change the "
               "Service's targetPort (kubectl -n %s get pods --show-labels)" % (ns, targets, ns))
        cli = "kubectl -n %s get pods --show-labels" % ns
        why = ("a Service whose selector matches no pod has no endpoints, and no pod here could serve its "
               "targetPort: its name resolves but connections are refused or hang")
    return finding("SVC_NO_ENDPOINTS", observed, why, fix, where=where, reason="selector", cli=cli,
                   candidates=[wl for wl, _p in ranked], not_serving=sorted({workload_name(p) for p in skipped}))


def service_findings(services, pods, skip_namespaces=()):
    """SVC_NO_ENDPOINTS: selector matching no pod, or a targetPort no selected pod declares."""
    out = []
    by_ns = {}
    for pod in pods or []:
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        by_ns.setdefault(_meta(pod).get("namespace"), []).append(pod)
    for svc in services or []:
        meta, spec = _meta(svc), svc.get("spec") or {}
        ns, name, selector = meta.get("namespace"), meta.get("name"), spec.get("selector")
        if ns in skip_namespaces or not selector or spec.get("type") == "ExternalName":
            continue
        where = "service %s/%s" % (ns, name)
        candidates = by_ns.get(ns, [])
        matched = [p for p in candidates if service_selector_matches(selector, _meta(p).get("labels"))]
        if not matched:
            out.append(selector_finding(ns, name, selector, spec.get("ports") or [], candidates, where))
            continue
        ports = [p for pod in matched for p in _container_ports(pod)]
        for sp in spec.get("ports") or []:
            target = sp.get("targetPort", sp.get("port"))
            proto = (sp.get("protocol") or "TCP").upper()
            if isinstance(target, str) and not target.isdigit():
                ok = any(p["name"] == target and p["protocol"] == proto for p in ports)
            else:
                if not ports:
                    continue  # containerPorts not declared: a numeric targetPort may still work
                ok = any(p["port"] == int(target) and p["protocol"] == proto for p in ports)
            if ok:
                continue
            declared = ", ".join(sorted({"%s%s/%s" % ("%s:" % p["name"] if p["name"] else "", p["port"], p["protocol"])
                                         for p in ports})) or "none"
            numeric = sorted({p["port"] for p in ports if p["protocol"] == proto})
            index = (spec.get("ports") or []).index(sp)
            cli = ("kubectl -n %s patch service %s --type=json -p '[{\"op\":\"replace\",\"path\":\"/spec/ports/%d/"
                   "targetPort\",\"value\":%s}]'" % (ns, name, index, numeric[0] if numeric else '"<port>"'))
            fix = "%s (or change the containers' containerPort to %s)" % (cli, target)
            out.append(finding(
                "SVC_NO_ENDPOINTS",
                "port %s targetPort %s/%s matches no containerPort of the %d selected pod(s) (declared: %s)"
                % (sp.get("name") or sp.get("port"), target, proto, len(matched), declared),
                "traffic to the Service is sent to a port nothing listens on: connection refused",
                fix, where=where, reason="port", cli=cli))
    return out


def cluster_findings(objs, state, dns_namespace="kube-system", node_resolv=None):
    """Every finding the cluster objects alone support."""
    out = dns_endpoint_findings(state, dns_namespace)
    out += coredns_findings(state, node_resolv, dns_namespace)
    out += netpol_findings(objs.get("network_policies"), objs.get("pods"), objs.get("namespaces"), state,
                           dns_namespace)
    explained = {(f["details"]["nearest"]["policy"], f["details"]["nearest"]["rule"]) for f in out
                 if f["id"] == "NETPOL_BLOCKS_DNS" and "nearest" in f.get("details", {})}
    out += [f for f in netpol.near_miss_findings(objs.get("network_policies"), objs.get("namespaces"), objs.get("pods"))
            if (f["details"]["policy"], f["details"].get("rule")) not in explained]
    out += service_findings(objs.get("services"), objs.get("pods"), skip_namespaces=())
    return out


# -- host path -----------------------------------------------------------------------------------
def _failed(q):
    return q["status"] not in OK_STATUSES


def _node_of_host(result, state):
    """Map a node result to its Kubernetes node name (by name, then by InternalIP)."""
    names = {n["name"] for n in (state or {}).get("nodes") or []}
    if result.get("node") in names or not names:
        return result.get("node")
    for n in state.get("nodes") or []:
        if n["ip"] and n["ip"] == result.get("node_ip"):
            return n["name"]
    return result.get("node")


def host_findings(node_results, state=None, timeout=None):
    """Findings from the nodes' queries (service IP and each CoreDNS endpoint)."""
    state = state or {}
    out = []
    pairs = {}  # (src, dst) -> [endpoint ips]
    unexplained_svc = {}  # node -> [queries]
    upstream = []
    missing = []
    same_node_dead = {}
    upstream_pods = {}  # endpoint ip -> node, for endpoints that answer cluster names but not external ones
    for res in node_results or []:
        src = _node_of_host(res, state)
        queries = res.get("queries") or []
        ep_q = [q for q in queries if q.get("target") == "endpoint"]
        ep_fail = [q for q in ep_q if q["kind"] == "cluster" and _failed(q)]
        reachable = {q["server"] for q in ep_q if q["kind"] == "cluster" and not _failed(q)}
        for q in ep_fail:
            dst = q.get("endpoint_node") or "unknown node"
            if dst == src:
                same_node_dead.setdefault(src, []).append(q)
            else:
                pairs.setdefault((src, dst), []).append(q)
        ep_upstream = [q for q in ep_q if q["kind"] == "external" and q["server"] in reachable
                       and _failed(q) and q["status"] != "nxdomain"]
        for q in ep_upstream:
            upstream.append((src, q))
            upstream_pods[q["server"]] = q.get("endpoint_node") or "?"
        svc_q = [q for q in queries if q.get("target") == "service"]
        cluster_ok = any(q["kind"] == "cluster" and not _failed(q) for q in svc_q)
        for q in svc_q:
            if q["status"] == "nxdomain" and q["kind"] != "external":
                missing.append((src, q))
            elif not _failed(q) or q["status"] == "nxdomain" or ep_fail:
                continue  # fine, or explained by the unreachable endpoint(s)
            elif q["kind"] == "external" and ep_upstream:
                continue  # explained by the CoreDNS pods' upstream
            elif q["kind"] == "external" and cluster_ok and not any(e["kind"] == "external" for e in ep_q):
                upstream.append((src, q))  # external name not asked at the endpoints: judge by the service
            else:
                unexplained_svc.setdefault(src, []).append(q)
    t = "%.1fs" % timeout if timeout else "the timeout"
    for (src, dst), qs in sorted(pairs.items()):
        same_ok = [q["server"] for res in node_results if _node_of_host(res, state) == src
                   for q in res.get("queries") or [] if q.get("target") == "endpoint" and q["kind"] == "cluster"
                   and q.get("endpoint_node") == src and not _failed(q)]
        observed = "%s cannot reach CoreDNS pod %s on %s: %s" % (
            src, ", ".join(q["server"] for q in qs), dst, ", ".join(sorted({q["status"] for q in qs})))
        if same_ok:
            observed += " (the CoreDNS pod on %s itself, %s, answers)" % (src, ", ".join(same_ok))
        out.append(finding(
            "DNS_POD_UNREACHABLE", observed,
            "queries to the kube-dns service IP are spread over all CoreDNS pods: the share sent across "
            "%s -> %s is dropped, so lookups intermittently time out ('connection timed out; no servers could "
            "be reached'); which device drops node-to-pod traffic between these nodes is for the diagnosis to "
            "say, from the security group and the node-to-node matrix" % (src, dst),
            POD_PATH_FIX, where="%s -> %s" % (src, dst), src=src, dst=dst, endpoints=[q["server"] for q in qs]))
    for node, qs in sorted(same_node_dead.items()):
        out.append(finding(
            "DNS_POD_UNREACHABLE",
            "CoreDNS pod %s on %s does not answer even from its own node (%s)"
            % (", ".join(q["server"] for q in qs), node, ", ".join(sorted({q["status"] for q in qs}))),
            "a CoreDNS pod that does not answer locally is not serving (crashed, hung or not listening on 53)",
            "kubectl -n kube-system get pods -l k8s-app=kube-dns -o wide; kubectl -n kube-system logs <pod>",
            where="%s -> %s" % (node, node), src=node, dst=node))
    for node, qs in sorted(unexplained_svc.items()):
        out.append(finding(
            "DNS_SERVICE_UNREACHABLE",
            "%s: the DNS service %s gives %s for %s while every CoreDNS endpoint answers directly"
            % (node, qs[0]["server"], ", ".join(sorted({q["status"] for q in qs})), ", ".join(q["name"] for q in qs)),
            "the service IP is translated to the CoreDNS pods by kube-proxy rules on the node; without them "
            "(or with a wrong clusterDNS address) no query reaches CoreDNS",
            "check kube-proxy on %s (kubectl -n kube-system get pods -l k8s-app=kube-proxy -o wide; "
            "iptables -t nat -L KUBE-SERVICES | grep %s) and that kubelet clusterDNS equals the kube-dns "
            "Service clusterIP" % (node, qs[0]["server"]), where=node,
            cli="kubectl -n kube-system get pods -l k8s-app=kube-proxy -o wide"))
    if upstream:
        fw = [t for f in corefile_forwards(state.get("corefile")) if f["from"] == "." for t in f["to"]]
        out.append(_upstream_finding(sorted({src for src, _q in upstream}), upstream[0][1], fw, t, upstream_pods))
    for src, q in missing:
        out.append(_missing_finding(src, q))
    return out


def _upstream_finding(sources, q, forward_targets, t, pods=None):
    if pods:
        observed = "%s: %s from CoreDNS pod(s) %s, which answer cluster names (queried from %s)" % (
            q["name"], q["status"], ", ".join("%s on %s" % kv for kv in sorted(pods.items())), ", ".join(sources))
    else:
        observed = "%s via the cluster DNS %s: %s, while cluster names resolve (from %s)" % (
            q["name"], q["server"], q["status"], ", ".join(sources))
    return finding(
        "UPSTREAM_TIMEOUT", observed,
        "CoreDNS answers cluster names itself but forwards other names to its upstream (%s), which does not "
        "answer within %s: external names fail in every pod ('i/o timeout' in CoreDNS logs)"
        % (", ".join(forward_targets) or "forward target of the Corefile", t),
        cat.upstream_fix(),
        where=", ".join(sources), name=q["name"], forward=forward_targets, cli=cat.coredns_forward_cli())


def _missing_finding(src, q):
    return finding(
        "DNS_NAME_NOT_FOUND",
        "%s answered NXDOMAIN for %s (from %s)" % (q["server"], q["name"], src),
        "the name does not exist in cluster DNS: the Service is missing, in another namespace, or the "
        "cluster domain differs" if q["kind"] == "user" else
        "CoreDNS does not serve the cluster zone: its kubernetes plugin is missing or uses another domain",
        "kubectl get service -A | grep %s; check the name (<service>.<namespace>.svc.<domain>) and the "
        "Corefile 'kubernetes' line" % q["name"].split(".")[0],
        severity=ERROR, where=src, name=q["name"],
        cli="kubectl get services -A --field-selector metadata.name=%s" % q["name"].split(".")[0])


# -- pod path ------------------------------------------------------------------------------------
def lookup_bound(timeout):
    """Whole seconds a probe pod's lookup may take (busybox nslookup's ``-timeout``): ``timeout`` rounded up."""
    return max(1, int(math.ceil(float(timeout) - 1e-9)))


def lookup_lines(name, timeout):
    """The sh lines of a probe pod's lookup of ``name`` (a shell word), the same in the DNS and the path probe
    pods: they leave the first address in ``$a`` and the status in ``$s`` (ok, timeout, nxdomain, error).

    busybox nslookup gets ``lookup_bound(timeout)`` seconds (``-timeout``, the whole lookup) and is told to
    send its queries every half second within them (``-retry``: busybox spaces its sends timeout/retry apart
    and resends only the unanswered ones), so a lost packet, or the conntrack race of the A and AAAA
    queries leaving one socket together, costs half a second, not the lookup. Left to its defaults busybox
    sends twice, 2.5 s apart, and gives up at 5 s. ``timeout`` one second later (exit 143/124) ends an
    nslookup that ignores the options."""
    wait = lookup_bound(timeout)
    return [
        "out=$(timeout %d nslookup -timeout=%d -retry=%d %s 2>&1); r=$?" % (wait + 1, wait, 2 * wait, name),
        "a=$(echo \"$out\" | sed -n '/^Name:/,$ s/^Address[^:]*: *//p' | head -n 1)",
        "if [ $r -eq 0 ] && [ -n \"$a\" ]; then s=ok",
        "elif [ $r -eq 143 ] || [ $r -eq 124 ]; then s=timeout",
        "elif echo \"$out\" | grep -qiE 'NXDOMAIN|find'; then s=nxdomain",
        "elif echo \"$out\" | grep -qiE 'timed out|no servers|timeout'; then s=timeout",
        "else s=error; fi",
    ]


def probe_script(plan, timeout=2):
    """A POSIX sh script (busybox) that resolves each name and writes one line per name to
    /dev/termination-log: ``<name> <kind> <status> <answer>``, in plan order; exits 1 if any failed.

    The lookups run at the same time, each one ``lookup_lines`` (exit 143/124 -> "timeout"), so the pod
    finishes in about ``lookup_bound(timeout)`` seconds however many names fail."""
    lines = [
        "m=/dev/termination-log",
        "echo %s > $m" % PROBE_FORMAT,
        "probe() {",
    ] + ["  " + line for line in lookup_lines('"$2"', timeout)] + [
        "  echo \"$1 $2 $3 $s ${a:--}\"",
        "}",
        # every lookup at once; the lines come back in plan order (numbered, sorted, number cut)
        "{",
    ]
    for i, (name, kind) in enumerate(plan):
        lines.append("probe %d %s %s &" % (i, name, kind))
    lines += [
        "wait",
        "} | sort -n | cut -d ' ' -f 2- >> $m",
        "rc=0",
        "tail -n +2 $m | grep -qv '^[^ ]* [^ ]* ok ' && rc=1",
        "exit $rc",
    ]
    return "\n".join(lines)


def probe_pod_manifest(node, plan, image, namespace="default", timeout=2, name_prefix="dns-probe-"):
    """A pod pinned to ``node`` that resolves ``plan`` and reports through its termination message."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "%s%s-" % (name_prefix, re.sub(r"[^a-z0-9-]", "-", node.lower())[:40]),
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "dns-probe", "app.kubernetes.io/managed-by": "kubeadm_ec2.dns_check"},
        },
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": False,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{
                "name": "probe",
                "image": image,
                "command": ["sh", "-c", probe_script(plan, timeout)],
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}},
            }],
        },
    }


def parse_probe_message(text):
    """Parse a probe pod's termination message -> [{name, kind, status, answer}] (raises ValueError)."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    if not lines or lines[0] != PROBE_FORMAT:
        raise ValueError("not a %s message: %r" % (PROBE_FORMAT, (text or "")[:120]))
    out = []
    for line in lines[1:]:
        parts = line.split()
        if len(parts) < 3:
            raise ValueError("bad probe line %r" % line)
        out.append({"name": parts[0], "kind": parts[1], "status": parts[2],
                    "answer": parts[3] if len(parts) > 3 and parts[3] != "-" else ""})
    return out


def pod_findings(pod_results, namespace="default", timeout=None):
    """Findings from the probe pods' results ({node, pod, outcome, detail, results}).

    A probe pod asks the service IP, and kube-proxy sends each query to one CoreDNS pod it picks: the
    pod cannot tell which one answered. So its failures are recorded as observations
    (DNS_LOOKUP_FAILED, naming the names and whether cluster names resolved in the same pod); the
    diagnosis compares them with the host path, which asks every CoreDNS endpoint directly.
    """
    out = []
    t = "%.1fs" % timeout if timeout else "the timeout"
    for res in pod_results or []:
        node, pod = res.get("node"), res.get("pod")
        where = "probe pod %s/%s on %s" % (namespace, pod, node)
        if res.get("outcome") != "finished":
            out.append(finding(
                "DNS_PROBE_FAILED", "%s: %s" % (where, res.get("detail") or res.get("outcome")),
                "the pod path could not run on %s, so DNS as pods see it there is unverified" % node,
                "kubectl -n %s describe pod <probe>; check the node is Ready, kubelet runs and the image %s can "
                "be pulled (validate_dns_probe_image), or disable the pod path (validate_dns_pod_probe: false)"
                % (namespace, res.get("image") or "<image>"),
                where=node, pod=pod, outcome=res.get("outcome"),
                cli="kubectl -n %s get events --field-selector involvedObject.name=%s" % (namespace, pod or "<probe>")))
            continue
        results = res.get("results") or []
        cluster_ok = [r["name"] for r in results if r["kind"] != "external" and r["status"] == "ok"]
        failed = []
        for r in results:
            if r["status"] == "ok":
                continue
            if r["status"] == "nxdomain":
                q = {"name": r["name"], "server": "cluster DNS", "status": r["status"], "kind": r["kind"]}
                out.append(_missing_finding("pod on %s" % node, q))
            else:
                failed.append(r)
        if not failed:
            continue
        external_only = all(r["kind"] == "external" for r in failed) and bool(cluster_ok)
        observed = "%s: %s" % (where, ", ".join("%s -> %s" % (r["name"], r["status"]) for r in failed))
        if cluster_ok:
            observed += "; %s resolved in the same pod" % ", ".join(cluster_ok)
        out.append(finding(
            "DNS_LOOKUP_FAILED", observed,
            "pods on %s got no answer within %s for these names through the cluster DNS service; the service "
            "sends each query to one of the CoreDNS pods, so a failure can come from the path to that CoreDNS "
            "pod (another node), a NetworkPolicy, kube-proxy, or the CoreDNS upstream for external names" % (node, t),
            "compare with the host path of %s, which asks every CoreDNS pod directly (DNS_POD_UNREACHABLE, "
            "UPSTREAM_TIMEOUT), and with the report's root causes; kubectl -n kube-system get endpointslices -l "
            "kubernetes.io/service-name=kube-dns -o wide" % node,
            where=node, pod=pod, namespace=namespace, names=[r["name"] for r in failed], kinds=[r["kind"] for r in failed],
            statuses=[r["status"] for r in failed], cluster_resolved=cluster_ok, external_only=external_only,
            endpoints=sorted({r["endpoint"] for r in failed if r.get("endpoint")})))
    return out


# -- combined ------------------------------------------------------------------------------------
def node_resolvers(node_results, state=None):
    return {_node_of_host(r, state or {}): (r.get("resolv_conf") or {}).get("nameservers") or []
            for r in node_results or []}


def analyze(state=None, static_findings=None, node_results=None, pod_results=None, timeout=None,
            dns_namespace="kube-system", probe_namespace="default"):
    """All findings: the cluster-only ones (``static_findings``: endpoints, policies, services) plus the
    CoreDNS/loop, host-path and pod-path analyses."""
    state = state or {}
    out = [f for f in static_findings or [] if f["id"] != "COREDNS_NOT_READY"]
    if state:
        out += coredns_findings(state, node_resolvers(node_results, state), dns_namespace)
    out += host_findings(node_results, state, timeout)
    out += pod_findings(pod_results, probe_namespace, timeout)
    return _dedupe(out)


def _dedupe(findings):
    seen, out = set(), []
    for f in findings:
        key = (f["id"], f["where"], f["observed"])
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def node_summary(node_results, pod_results=None):
    """Short per-node lines for a passing check."""
    lines = []
    pods = {p.get("node"): p for p in pod_results or []}
    for res in node_results or []:
        qs = res.get("queries") or []
        svc = [q for q in qs if q.get("target") == "service"]
        eps = [q for q in qs if q.get("target") == "endpoint" and q.get("kind") == "cluster"]
        slow = max([q.get("ms", 0) for q in qs] or [0])
        line = "%s: %d/%d names via %s, %d/%d CoreDNS endpoints answer (slowest %.0f ms)" % (
            res.get("node"), sum(1 for q in svc if not _failed(q)), len(svc), res.get("service_ip"),
            sum(1 for q in eps if not _failed(q)), len(eps), slow)
        pod = pods.pop(res.get("node"), None)
        if pod:
            line += "; probe pod %s" % ("ok" if pod.get("outcome") == "finished" else pod.get("outcome"))
        lines.append(line)
    for node, pod in sorted(pods.items()):
        lines.append("%s: probe pod %s (%d names)" % (node, pod.get("outcome"), len(pod.get("results") or [])))
    return lines
