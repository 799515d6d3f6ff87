# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A NetworkPolicy engine: does the cluster's policy set allow one connection? (pure, no I/O)

``allowed(src, dst, port, protocol, policies, namespaces, pods)`` answers for a pod, an address
(``"203.0.113.7"`` or ``{"ip": ...}``) or, as destination, a Service (judged on the pods it selects,
after the DNAT kube-proxy does). The rules follow the Kubernetes documentation (concept page
"Network Policies" and the networking.k8s.io/v1 API reference); each rule below names the statement
it follows:

D1  "A pod is isolated for egress if there is any NetworkPolicy that both selects the pod and has
    Egress in its policyTypes" (and likewise for ingress); a pod no policy applies to is non-isolated
    in that direction: every connection is allowed.
D2  "If no policyTypes are specified ... Ingress will always be set and Egress will be set if the
    NetworkPolicy has any egress rules."
D3  "the connections allowed in that direction ... is the union of what the applicable policies
    allow"; "both the egress policy on the source pod and the ingress policy on the destination pod
    need to allow the connection".
D4  A rule "allows traffic which matches both the from/to and ports sections"; an empty or missing
    from/to matches all peers, an empty or missing ports matches all ports (API reference).
D5  podSelector alone: pods "in the same namespace as the NetworkPolicy"; namespaceSelector alone: all
    pods of the selected namespaces; both in ONE peer: the pods matching podSelector in the namespaces
    matching namespaceSelector; an empty selector selects all.
D6  ipBlock: the CIDR minus its except ranges. The documentation says ipBlock is meant for
    cluster-external addresses and leaves rewritten addresses undefined; like the upstream conformance
    tests and Calico we match pod IPs against ipBlock too.
D7  port: "a numerical or named port on a pod"; "If this field is not provided, this matches all port
    names and numbers"; protocol "defaults to TCP"; endPort: "the range of ports from port to endPort,
    inclusive". A named port is resolved against the destination pod's container ports, so one rule
    can mean different numbers on different destination pods.
D8  hostNetwork pods (the common implementation the page describes): ignored when matching
    spec.podSelector and peer pod/namespace selectors; their traffic is node traffic, matched by an
    ipBlock holding the node IP.
D9  "traffic to and from the node where a Pod is running is always allowed"; "a pod cannot block
    access to itself".
D10 NetworkPolicy is defined for TCP, UDP and SCTP only; "It is not possible to directly specify the
    name of the namespaces": the control plane labels every namespace kubernetes.io/metadata.name.

A deny comes back with the deciding policies (those that isolate the denying side) and the nearest
rule, with every part of it that did not match and why.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

NAME_LABEL = "kubernetes.io/metadata.name"
PROTOCOLS = ("TCP", "UDP", "SCTP")
TERMINAL_PHASES = ("Succeeded", "Failed")


# -- selectors -----------------------------------------------------------------------------------
def selector_matches(selector, labels):
    """A metav1.LabelSelector (matchLabels/matchExpressions) against labels. ``{}`` selects all;
    None selects nothing (as for NetworkPolicy peers, where None means "not given")."""
    if selector is None:
        return False
    labels = labels or {}
    for key, val in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != val:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def fmt_selector(selector):
    """A LabelSelector as kubectl prints it: ``app=web,tier in (a,b)``; ``{}`` -> ``<all>``."""
    if selector is None:
        return "<none>"
    parts = ["%s=%s" % kv for kv in sorted((selector.get("matchLabels") or {}).items())]
    for e in selector.get("matchExpressions") or []:
        op = e.get("operator")
        if op in ("In", "NotIn"):
            parts.append("%s %s (%s)" % (e.get("key"), op.lower(), ",".join(e.get("values") or [])))
        elif op == "Exists":
            parts.append(e.get("key"))
        else:
            parts.append("!%s" % e.get("key"))
    return ",".join(parts) or "<all>"


def fmt_labels(labels):
    return ",".join("%s=%s" % kv for kv in sorted((labels or {}).items())) or "<no labels>"


# -- inputs --------------------------------------------------------------------------------------
def _meta(obj):
    return (obj or {}).get("metadata") or {}


def namespace_labels(namespaces):
    """{name: labels} from Namespace objects (or a {name: labels} dict); every namespace carries
    kubernetes.io/metadata.name (D10)."""
    out = {}
    if isinstance(namespaces, dict):
        items = list(namespaces.items())
    else:
        items = [(_meta(ns).get("name"), _meta(ns).get("labels")) for ns in namespaces or []]
    for name, labels in items:
        labels = dict(labels or {})
        labels.setdefault(NAME_LABEL, name)
        out[name] = labels
    return out


def policy_types(policy):
    """D2: policyTypes as given, else Ingress plus Egress when the policy has egress rules."""
    spec = policy.get("spec") or {}
    types = spec.get("policyTypes")
    if types:
        return list(types)
    return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def policy_name(policy):
    return "%s/%s" % (_meta(policy).get("namespace"), _meta(policy).get("name"))


def is_service(obj):
    return isinstance(obj, dict) and (obj.get("kind") == "Service" or (
        "spec" in obj and "selector" in (obj.get("spec") or {}) and "containers" not in (obj.get("spec") or {})))


def is_pod(obj):
    return isinstance(obj, dict) and "metadata" in obj and not is_service(obj)


def endpoint(obj):
    """A normalised endpoint: {kind: pod|ip, name, namespace, labels, ip, node, node_ip, host_network, pod}."""
    if isinstance(obj, str):
        return {"kind": "ip", "ip": obj, "name": obj, "namespace": None, "labels": {}, "node": None,
                "node_ip": None, "host_network": False, "pod": None}
    if isinstance(obj, dict) and "ip" in obj and "metadata" not in obj:
        return dict(endpoint(obj["ip"]), node=obj.get("node"), name=obj.get("name") or obj["ip"])
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    host = bool(spec.get("hostNetwork"))
    return {"kind": "pod", "name": meta.get("name"), "namespace": meta.get("namespace"),
            "labels": meta.get("labels") or {}, "ip": status.get("podIP") or (status.get("hostIP") if host else ""),
            "node": spec.get("nodeName"), "node_ip": status.get("hostIP") or "", "host_network": host, "pod": obj}


def describe(ep):
    if ep["kind"] == "ip":
        return ep["ip"]
    return "pod %s/%s%s" % (ep["namespace"], ep["name"], " (hostNetwork)" if ep["host_network"] else "")


def container_ports(pod):
    """[{name, port, protocol}] of every container (init and sidecar containers included)."""
    spec = (pod or {}).get("spec") or {}
    out = []
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for p in c.get("ports") or []:
            out.append({"name": p.get("name") or "", "port": p.get("containerPort"),
                        "protocol": (p.get("protocol") or "TCP").upper(), "container": c.get("name")})
    return out


def fmt_ports(ports):
    return ", ".join("%s%s/%s" % ("%s:" % p["name"] if p["name"] else "", p["port"], p["protocol"])
                     for p in ports) or "none"


# -- matching one rule ---------------------------------------------------------------------------
def _in_block(ip, block):
    """(matches, why-not) of an address against an ipBlock (D6)."""
    try:
        addr = ipaddress.ip_address(str(ip))
        net = ipaddress.ip_network(block.get("cidr"), strict=False)
    except ValueError:
        return False, "ipBlock %s or address %s is not valid" % (block.get("cidr"), ip)
    if addr.version != net.version or addr not in net:
        return False, "ipBlock %s does not contain %s" % (block.get("cidr"), ip)
    for exc in block.get("except") or []:
        try:
            if addr in ipaddress.ip_network(exc, strict=False):
                return False, "ipBlock %s contains %s but its except %s removes it" % (block.get("cidr"), ip, exc)
        except (ValueError, TypeError):
            continue
    return True, ""


def peer_matches(peer, policy_ns, ep, ns_labels):
    """(matches, [why-not parts]) of one from/to peer against an endpoint (D5, D6, D8)."""
    peer = peer or {}
    if peer.get("ipBlock"):
        if not ep.get("ip"):
            return False, ["ipBlock %s: %s has no IP yet" % (peer["ipBlock"].get("cidr"), describe(ep))]
        ok, why = _in_block(ep["ip"], peer["ipBlock"])
        return ok, [] if ok else [why]
    nsel, psel = peer.get("namespaceSelector"), peer.get("podSelector")
    if nsel is None and psel is None:
        return False, ["an empty peer selects nothing (the API rejects it)"]
    if ep["kind"] != "pod":
        return False, ["%s is not a pod: only an ipBlock can match it" % ep["ip"]]
    if ep["host_network"]:
        return False, ["%s uses the node network: pod and namespace selectors do not match it, only an ipBlock "
                       "with its node IP %s" % (describe(ep), ep.get("node_ip") or ep.get("ip"))]
    why = []
    labels = ns_labels.get(ep["namespace"], {NAME_LABEL: ep["namespace"]})
    if nsel is not None:
        if not selector_matches(nsel, labels):
            why.append({"part": "namespaceSelector", "selector": nsel,
                        "text": "namespaceSelector %s does not select namespace %s (it carries %s)"
                                % (fmt_selector(nsel), ep["namespace"], fmt_labels(labels))})
    elif ep["namespace"] != policy_ns:
        why.append({"part": "namespace", "text": "podSelector without namespaceSelector selects pods of namespace %s "
                                                 "only; %s is in %s" % (policy_ns, describe(ep), ep["namespace"])})
    if psel is not None and not selector_matches(psel, ep["labels"]):
        why.append({"part": "podSelector", "selector": psel,
                    "text": "podSelector %s does not select %s (labels %s)"
                            % (fmt_selector(psel), describe(ep), fmt_labels(ep["labels"]))})
    return not why, why


def port_matches(spec, port, protocol, dst):
    """(matches, why-not) of one NetworkPolicyPort against a destination port (D7)."""
    proto = (spec.get("protocol") or "TCP").upper()
    want = spec.get("port")
    shown = "%s %s%s" % (proto, want if want is not None else "any",
                         "-%s" % spec["endPort"] if spec.get("endPort") else "")
    if proto != protocol:
        return False, "%s is not %s" % (shown, protocol)
    if want is None:
        return True, ""
    if isinstance(want, int) or str(want).isdigit():
        lo = int(want)
        hi = int(spec.get("endPort") or lo)
        if lo <= port <= hi:
            return True, ""
        return False, "%s does not include %s" % (shown, port)
    if dst["kind"] != "pod":
        return False, "named port %r is resolved on a destination pod; %s is not one" % (want, dst["ip"])
    declared = container_ports(dst["pod"])
    named = [p for p in declared if p["name"] == want and p["protocol"] == protocol]
    if not named:
        return False, ("named port %r: %s declares no %s port of that name (declares %s)"
                       % (want, describe(dst), protocol, fmt_ports(declared)))
    if any(p["port"] == port for p in named):
        return True, ""
    return False, ("named port %r is %s/%s on %s, not %s"
                   % (want, named[0]["port"], protocol, describe(dst), port))


def rule_matches(rule, direction, policy_ns, peer_ep, dst, port, protocol, ns_labels):
    """(matches, mismatch) of one ingress/egress rule (D4); ``peer_ep`` is the other side of the
    connection (the source for ingress, the destination for egress)."""
    key = "from" if direction == "Ingress" else "to"
    ports, peers = rule.get("ports") or [], rule.get(key) or []
    miss = {"ports": [], "peers": []}
    if ports:
        res = [port_matches(p, port, protocol, dst) for p in ports]
        if not any(ok for ok, _w in res):
            miss["ports"] = [w for _ok, w in res]
    if peers:
        best = None
        for i, peer in enumerate(peers):
            ok, why = peer_matches(peer, policy_ns, peer_ep, ns_labels)
            if ok:
                best = None
                break
            if best is None or len(why) < len(best["why"]):
                best = {"index": i, "peer": peer, "why": why}
        else:
            miss["peers"] = [best] if best else []
    ok = not miss["ports"] and not miss["peers"]
    return ok, miss


# -- one direction -------------------------------------------------------------------------------
def applying(policies, ep, direction):
    """Policies that select ``ep`` and have ``direction`` in their policyTypes (D1, D2, D8)."""
    if ep["kind"] != "pod" or ep["host_network"]:
        return []
    return [p for p in policies or [] if _meta(p).get("namespace") == ep["namespace"]
            and direction in policy_types(p)
            and selector_matches((p.get("spec") or {}).get("podSelector") or {}, ep["labels"])]


def _why_text(miss):
    parts = []
    if miss["ports"]:
        parts.append("ports: " + "; ".join(miss["ports"]))
    for peer in miss["peers"]:
        parts.extend(w["text"] if isinstance(w, dict) else w for w in peer["why"])
    return parts


def _same_node(pod, other):
    """D9: is ``other`` the node ``pod`` runs on (its node IP, or a hostNetwork pod on that node)?"""
    if other["kind"] == "pod" and not other["host_network"]:
        return False
    if pod.get("node_ip") and other.get("ip") == pod["node_ip"]:
        return True
    return bool(other["kind"] == "pod" and pod.get("node") and other.get("node") == pod["node"])


def side(direction, subject, other, dst, port, protocol, policies, ns_labels):
    """The verdict of one side: the egress of the source or the ingress of the destination."""
    out = {"direction": direction, "subject": describe(subject), "isolated": False, "allowed": True,
           "policies": [], "allowed_by": [], "nearest": None, "reason": ""}
    if subject["kind"] != "pod":
        out["reason"] = "%s is not a pod: no NetworkPolicy applies to it" % describe(subject)
        return out
    if subject["host_network"]:
        out["reason"] = "%s uses the node network: NetworkPolicies do not select it" % describe(subject)
        return out
    pols = applying(policies, subject, direction)
    out["policies"] = [policy_name(p) for p in pols]
    if not pols:
        out["reason"] = "no NetworkPolicy selects %s for %s: not isolated" % (describe(subject), direction.lower())
        return out
    out["isolated"] = True
    # D9: the pod's own node is always allowed, and a pod cannot block itself
    if other["kind"] == "pod" and (other["namespace"], other["name"]) == (subject["namespace"], subject["name"]):
        out["reason"] = "a pod cannot block traffic to itself"
        return out
    if _same_node(subject, other):
        out["reason"] = "traffic between a pod and its own node is always allowed"
        return out
    candidates = []
    key = "ingress" if direction == "Ingress" else "egress"
    for pol in pols:
        ns = _meta(pol).get("namespace")
        for i, rule in enumerate((pol.get("spec") or {}).get(key) or []):
            ok, miss = rule_matches(rule, direction, ns, other, dst, port, protocol, ns_labels)
            if ok:
                out["allowed_by"].append({"policy": policy_name(pol), "rule": i})
            else:
                score = (1 if miss["ports"] else 0) + (1 if miss["peers"] else 0)
                depth = sum(len(p["why"]) for p in miss["peers"])
                candidates.append((score, depth, {"policy": policy_name(pol), "direction": direction, "rule": i,
                                                  "spec": rule, "miss": miss, "why": _why_text(miss), "score": score}))
    if out["allowed_by"]:
        first = out["allowed_by"][0]
        out["reason"] = "allowed by %s %s rule %d" % (first["policy"], key, first["rule"])
        return out
    out["allowed"] = False
    if candidates:
        candidates.sort(key=lambda c: (c[0], c[1]))
        out["nearest"] = candidates[0][2]
        out["reason"] = "%s is isolated for %s by %s and no %s rule matches (nearest: %s %s rule %d: %s)" % (
            describe(subject), direction.lower(), ", ".join(out["policies"]), key, out["nearest"]["policy"], key,
            out["nearest"]["rule"], "; ".join(out["nearest"]["why"]))
    else:
        out["reason"] = "%s is isolated for %s by %s and none has an %s rule: every %s connection is denied" % (
            describe(subject), direction.lower(), ", ".join(out["policies"]), key, direction.lower())
    return out


# -- services ------------------------------------------------------------------------------------
def service_backends(service, pods, port, protocol):
    """[(pod, target port)] the Service sends ``protocol``/``port`` to, or raise ValueError."""
    meta, spec = _meta(service), service.get("spec") or {}
    sport = None
    for sp in spec.get("ports") or []:
        if int(sp.get("port") or 0) == int(port) and (sp.get("protocol") or "TCP").upper() == protocol:
            sport = sp
            break
    if sport is None:
        raise ValueError("Service %s/%s has no %s port %s (ports: %s)" % (
            meta.get("namespace"), meta.get("name"), protocol, port,
            ", ".join("%s/%s" % (sp.get("port"), (sp.get("protocol") or "TCP").upper())
                      for sp in spec.get("ports") or []) or "none"))
    selector = spec.get("selector") or {}
    target = sport.get("targetPort", sport.get("port"))
    out = []
    for pod in pods or []:
        pm = _meta(pod)
        if pm.get("namespace") != meta.get("namespace") or (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
            continue
        if not selector or any((pm.get("labels") or {}).get(k) != v for k, v in selector.items()):
            continue
        if isinstance(target, int) or str(target).isdigit():
            out.append((pod, int(target)))
        else:
            num = [p["port"] for p in container_ports(pod) if p["name"] == target and p["protocol"] == protocol]
            out.append((pod, num[0] if num else None))
    return out


# -- the verdict ---------------------------------------------------------------------------------
def allowed(src, dst, port, protocol="TCP", policies=(), namespaces=(), pods=()):
    """Does the policy set allow ``src`` -> ``dst`` on ``protocol``/``port``?

    ``src``: a pod (API JSON) or an address; ``dst``: a pod, an address, or a Service (its ``port``,
    then judged on every selected pod at its targetPort). Returns
    ``{allowed, reason, egress, ingress, deciding: [policy], nearest: rule or None, backends: [...]}``.
    For a Service, ``allowed`` is True only when every backend pod is allowed (kube-proxy may pick any),
    ``partial`` when some are.
    """
    protocol = (protocol or "TCP").upper()
    if protocol not in PROTOCOLS:
        raise ValueError("protocol %r: NetworkPolicy covers TCP, UDP and SCTP only" % protocol)
    port = int(port)
    ns_labels = namespace_labels(namespaces)
    if is_service(dst):
        meta = _meta(dst)
        backends = service_backends(dst, pods, port, protocol)
        verdicts = []
        for pod, target in backends:
            if target is None:
                reason = "targetPort %r is not declared by pod %s" % (_service_target(dst, port, protocol),
                                                                      _meta(pod).get("name"))
                v = {"allowed": False, "reason": reason, "egress": None, "ingress": None, "deciding": [], "nearest": None}
            else:
                v = allowed(src, pod, target, protocol, policies, namespaces, pods)
            v["pod"] = _meta(pod).get("name")
            v["target_port"] = target
            verdicts.append(v)
        denied = [v for v in verdicts if not v["allowed"]]
        name = "%s/%s" % (meta.get("namespace"), meta.get("name"))
        if not verdicts:
            reason = "Service %s selects no pod: nothing to judge" % name
        elif denied:
            reason = "Service %s: %d of %d backend pod(s) denied: %s" % (
                name, len(denied), len(verdicts), denied[0]["reason"])
        else:
            reason = "Service %s: all %d backend pod(s) allowed" % (name, len(verdicts))
        first = denied[0] if denied else (verdicts[0] if verdicts else {})
        return {"allowed": bool(verdicts) and not denied, "partial": bool(denied) and len(denied) < len(verdicts),
                "reason": reason, "egress": first.get("egress"), "ingress": first.get("ingress"),
                "deciding": sorted({d for v in denied for d in v["deciding"]}),
                "nearest": first.get("nearest") if denied else None, "backends": verdicts, "service": name}
    s, d = endpoint(src), endpoint(dst)
    eg = side("Egress", s, d, d, port, protocol, policies, ns_labels)
    ing = side("Ingress", d, s, d, port, protocol, policies, ns_labels)
    ok = eg["allowed"] and ing["allowed"]
    deciding, nearest, reasons = [], None, []
    for part in (eg, ing):
        if not part["allowed"]:
            deciding += part["policies"]
            nearest = nearest or part["nearest"]
            reasons.append(part["reason"])
    return {"allowed": ok, "partial": False,
            "reason": "; ".join(reasons) if reasons else "allowed (egress: %s; ingress: %s)" % (eg["reason"], ing["reason"]),
            "egress": eg, "ingress": ing, "deciding": deciding, "nearest": nearest, "backends": []}


def _service_target(service, port, protocol):
    for sp in (service.get("spec") or {}).get("ports") or []:
        if int(sp.get("port") or 0) == int(port) and (sp.get("protocol") or "TCP").upper() == protocol:
            return sp.get("targetPort", sp.get("port"))
    return None


# -- minimal fixes -------------------------------------------------------------------------------
def _json(value):
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _patch(policy, ops):
    ns, name = policy.split("/", 1)
    return "kubectl -n %s patch networkpolicy %s --type=json -p '%s'" % (ns, name, _json(ops))


def _pod_label_subset(selector, labels):
    """The smallest change of a podSelector's matchLabels that selects a pod with ``labels``."""
    want = dict((selector or {}).get("matchLabels") or {})
    fixed = {k: labels[k] for k in want if k in labels}
    if not fixed:
        for key in ("app.kubernetes.io/name", "app", "k8s-app", "name", "role"):
            if key in labels:
                fixed = {key: labels[key]}
                break
    return {"matchLabels": fixed or dict(labels)}


def rule_fixes(nearest, other, dst, port, protocol, ns_labels=None, pods=None):
    """Minimal changes that make the nearest rule match: [{what, policy, ops, alt}] (JSON patch ops on
    the policy; ``alt`` marks an alternative to the change before it, such as labelling a namespace).

    ``other`` is the far side of the rule (the destination of an egress rule, the source of an
    ingress rule), ``dst`` the destination pod (for ports). With ``pods``, a podSelector that selects
    other live pods is left as it is (they keep their access) and a peer for ``other`` is added instead."""
    if not nearest:
        return []
    direction, pol, i = nearest["direction"], nearest["policy"], nearest["rule"]
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    base = "/spec/%s/%d" % (key, i)
    fixes = []

    def add(what, ops=None, cli=None, alt=False):
        fixes.append({"what": what, "policy": pol, "ops": ops or [], "cli": cli or _patch(pol, ops), "alt": alt})

    for peer in nearest["miss"]["peers"]:
        j, parts = peer["index"], peer["why"]
        path = "%s/%s/%d" % (base, peers_key, j)
        if other["kind"] != "pod" or other["host_network"] or any(not isinstance(w, dict) for w in parts):
            if other.get("ip"):
                add("allow %s by address in %s %s rule %d" % (other["ip"], pol, key, i),
                    [{"op": "add", "path": "%s/%s/-" % (base, peers_key), "value": {"ipBlock": {"cidr": "%s/32" % other["ip"]}}}])
            continue
        ns = other["namespace"]
        kept = _namespaces_kept(parts, ns, ns_labels)
        if kept:
            # the namespaceSelector admits other namespaces: replacing it would cut them off
            value = {"namespaceSelector": {"matchLabels": {NAME_LABEL: ns}}}
            psel = [w["selector"] for w in parts if w["part"] == "podSelector"]
            if psel:
                value["podSelector"] = _pod_label_subset(psel[0], other["labels"])
            elif (peer.get("peer") or {}).get("podSelector") is not None:
                value["podSelector"] = peer["peer"]["podSelector"]
            shown = ", ".join(kept[:3]) + (", ..." if len(kept) > 3 else "")
            add("add a peer selecting namespace %s to %s %s rule %d (peer %d's namespaceSelector %s selects %s, "
                "which keep their access)" % (ns, pol, key, i, j, fmt_selector(peer["peer"]["namespaceSelector"]), shown),
                [{"op": "add", "path": "%s/%s/-" % (base, peers_key), "value": value}])
            continue
        for w in parts:
            if w["part"] == "namespaceSelector":
                add("select namespace %s by the label the control plane sets (%s=%s) in %s %s rule %d"
                    % (ns, NAME_LABEL, ns, pol, key, i),
                    [{"op": "replace", "path": path + "/namespaceSelector", "value": {"matchLabels": {NAME_LABEL: ns}}}])
                labels = (w["selector"] or {}).get("matchLabels") or {}
                if labels and NAME_LABEL not in labels and not w["selector"].get("matchExpressions"):
                    add("or label namespace %s as the selector expects" % ns, alt=True,
                        cli="kubectl label namespace %s %s" % (ns, " ".join("%s=%s" % kv for kv in sorted(labels.items()))))
            elif w["part"] == "namespace":
                add("add a namespaceSelector for %s to %s %s rule %d peer %d (a podSelector alone means the "
                    "policy's own namespace)" % (ns, pol, key, i, j),
                    [{"op": "add", "path": path + "/namespaceSelector", "value": {"matchLabels": {NAME_LABEL: ns}}}])
            elif w["part"] == "podSelector":
                subset = _pod_label_subset(w["selector"], other["labels"])
                serves = sorted(_meta(p).get("name") for p in _live(pods) if _meta(p).get("namespace") == ns
                                and selector_matches(w["selector"], _meta(p).get("labels") or {}))
                if serves:
                    peer_value = {"podSelector": subset}
                    if ns != pol.split("/", 1)[0]:
                        peer_value["namespaceSelector"] = {"matchLabels": {NAME_LABEL: ns}}
                    add("add a peer selecting %s to %s %s rule %d (peer %d's podSelector %s selects %s, which keep "
                        "their access)" % (describe(other), pol, key, i, j, fmt_selector(w["selector"]),
                                           ", ".join(serves[:3]) + (", ..." if len(serves) > 3 else "")),
                        [{"op": "add", "path": "%s/%s/-" % (base, peers_key), "value": peer_value}])
                    continue
                add("make the podSelector of %s %s rule %d peer %d select %s" % (pol, key, i, j, describe(other)),
                    [{"op": "replace", "path": path + "/podSelector", "value": subset}])
    if nearest["miss"]["ports"]:
        add("allow %s %s in %s %s rule %d" % (protocol, port, pol, key, i),
            [{"op": "add", "path": base + "/ports/-", "value": {"protocol": protocol, "port": port}}])
    return fixes


def _namespaces_kept(parts, ns, ns_labels):
    """The namespaces other than ``ns`` that a peer's missing namespaceSelector selects (sorted); empty
    when the selector is not what misses or the namespaces are unknown."""
    sel = [w["selector"] for w in parts if w["part"] == "namespaceSelector"]
    if not sel or not ns_labels:
        return []
    return sorted(name for name, labels in ns_labels.items() if name != ns and selector_matches(sel[0], labels))


def combine_fixes(fixes):
    """One text for a list of rule_fixes: the patches of one policy merged into one command (identical
    operations once), alternatives after it."""
    order, ops, what, alts = [], {}, {}, []
    for f in fixes:
        if f["alt"]:
            if f["cli"] not in [a[1] for a in alts]:
                alts.append((f["what"], f["cli"]))
            continue
        if f["policy"] not in ops:
            order.append(f["policy"])
            ops[f["policy"]], what[f["policy"]] = [], []
        for op in f["ops"]:
            if op not in ops[f["policy"]]:
                ops[f["policy"]].append(op)
        if f["what"] not in what[f["policy"]]:
            what[f["policy"]].append(f["what"])
    parts = ["%s: %s" % ("; ".join(what[p]), _patch(p, ops[p])) for p in order]
    parts += ["%s: %s" % a for a in alts]
    return " ".join([parts[0]] + ["(%s)" % p if p.startswith("or ") else "and %s" % p for p in parts[1:]]) if parts else ""


def fix_cli(fixes):
    """The one command among rule_fixes: the merged JSON patch when every change is to one policy
    (alternatives left out), else "" (the caller then applies a new policy instead)."""
    main = [f for f in fixes if not f["alt"]]
    if not main or len({f["policy"] for f in main}) != 1:
        return ""
    ops = []
    for f in main:
        ops.extend(op for op in f["ops"] if op not in ops)
    return _patch(main[0]["policy"], ops) if ops else ""


def apply_cli(objects):
    """ONE command that creates ``objects`` (Kubernetes object dicts): their JSON piped to kubectl apply."""
    body = objects[0] if len(objects) == 1 else {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    return "echo '%s' | kubectl apply -f -" % _json(body)


# -- near misses: rules that match nothing --------------------------------------------------------
def _live(pods):
    return [p for p in pods or [] if (p.get("status") or {}).get("phase") not in TERMINAL_PHASES
            and not (p.get("spec") or {}).get("hostNetwork")]


def _near_namespaces(selector, ns_labels):
    """Namespaces that carry one of the selector's wanted values under another key (or as their name)."""
    want = (selector or {}).get("matchLabels") or {}
    out = []
    for name, labels in sorted(ns_labels.items()):
        for key, val in sorted(want.items()):
            other = sorted(k for k, v in labels.items() if v == val and k != key)
            if other:
                out.append((name, "%s=%s" % (other[0], val)))
                break
    return out


def _near_pods(selector, candidates):
    """Pods that have the selector's keys with other values: [(pod name, 'k=v,...')]."""
    want = (selector or {}).get("matchLabels") or {}
    out = []
    for pod in candidates:
        labels = _meta(pod).get("labels") or {}
        diff = ["%s=%s" % (k, labels[k]) for k in sorted(want) if k in labels and labels[k] != want[k]]
        if diff:
            out.append((_meta(pod).get("name"), ",".join(diff)))
    return out


def near_miss_findings(policies, namespaces, pods):
    """Warnings for policy parts that match nothing (issue: rules that look right but allow nothing):
    a podSelector selecting no pod (NETPOL_SELECTS_NOTHING), a peer whose namespaceSelector or
    podSelector matches nothing, a named port no destination container declares (NETPOL_NEAR_MISS)."""
    from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import WARNING, finding

    ns_labels = namespace_labels(namespaces)
    live = _live(pods)
    by_ns = {}
    for p in live:
        by_ns.setdefault(_meta(p).get("namespace"), []).append(p)
    out = []
    for pol in policies or []:
        meta, spec = _meta(pol), pol.get("spec") or {}
        pns, pname = meta.get("namespace"), policy_name(pol)
        psel = spec.get("podSelector") or {}
        selected = [p for p in by_ns.get(pns, []) if selector_matches(psel, _meta(p).get("labels"))]
        if not selected:
            near = _near_pods(psel, by_ns.get(pns, []))
            fix = ("make spec.podSelector select the pods it was written for (kubectl -n %s get pods --show-labels)"
                   % pns)
            if near:
                fix = _patch(pname, [{"op": "replace", "path": "/spec/podSelector",
                                      "value": _pod_label_subset(psel, _meta(next(
                                          p for p in by_ns[pns] if _meta(p).get("name") == near[0][0])).get("labels"))}])
            out.append(finding(
                "NETPOL_SELECTS_NOTHING",
                "NetworkPolicy %s: podSelector %s selects no pod in namespace %s%s" % (
                    pname, fmt_selector(psel), pns, " (%s)" % "; ".join("%s has %s" % n for n in near[:3]) if near else ""),
                "a policy that selects no pod has no effect: the pods it was written for are neither isolated nor "
                "allowed by its rules", fix, severity=WARNING, where="networkpolicy %s" % pname, policy=pname,
                part="podSelector"))
        for direction in policy_types(pol):
            key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
            for i, rule in enumerate(spec.get(key) or []):
                dests = selected if direction == "Ingress" else None
                peer_pods = []
                for j, peer in enumerate(rule.get(peers_key) or []):
                    where = "%s %s rule %d peer %d" % (pname, key, i, j)
                    found, pods_ = _peer_near_miss(peer, pns, pname, where, "%s/%s/%d/%s/%d" % (
                        "/spec", key, i, peers_key, j), ns_labels, by_ns)
                    for f in found:
                        f["details"].update(direction=direction, rule=i)
                    out.extend(found)
                    peer_pods.extend(pods_)
                if direction == "Egress":
                    peers = rule.get(peers_key) or []
                    dests = live if not peers else peer_pods
                    if peers and all(p.get("ipBlock") for p in peers):
                        continue
                for f in _named_port_misses(rule, pname, key, i, dests or []):
                    f["details"].update(direction=direction, rule=i)
                    out.append(f)
    return out


def _peer_near_miss(peer, pns, pname, where, path, ns_labels, by_ns):
    """(findings, pods the peer selects) for one pod/namespace peer."""
    from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import WARNING, finding

    nsel, psel = peer.get("namespaceSelector"), peer.get("podSelector")
    if peer.get("ipBlock") or (nsel is None and psel is None):
        return [], []
    if nsel is not None:
        namespaces = [n for n, labels in sorted(ns_labels.items()) if selector_matches(nsel, labels)]
        if not namespaces:
            near = _near_namespaces(nsel, ns_labels)
            observed = "%s: namespaceSelector %s selects no namespace" % (where, fmt_selector(nsel))
            if near:
                observed += " (%s)" % "; ".join("namespace %s carries %s, not %s" % (n, lab, fmt_selector(nsel))
                                                for n, lab in near[:3])
                fix = "%s (or kubectl label namespace %s %s)" % (
                    _patch(pname, [{"op": "replace", "path": path + "/namespaceSelector",
                                    "value": {"matchLabels": {NAME_LABEL: near[0][0]}}}]),
                    near[0][0], " ".join("%s=%s" % kv for kv in sorted((nsel.get("matchLabels") or {}).items())))
            else:
                fix = ("select the namespace by the label the control plane sets on every namespace: "
                       "namespaceSelector: {matchLabels: {%s: <namespace>}} (kubectl get namespaces --show-labels)"
                       % NAME_LABEL)
            return [finding(
                "NETPOL_NEAR_MISS", observed,
                "the rule is meant to allow traffic with pods of some namespace, but no namespace carries these labels, "
                "so the peer allows nothing (%s is the label every namespace has)" % NAME_LABEL,
                fix, severity=WARNING, where="networkpolicy %s" % pname, policy=pname, part="namespaceSelector")], []
    else:
        namespaces = [pns]
    candidates = [p for n in namespaces for p in by_ns.get(n, [])]
    if psel is None:
        return [], candidates
    chosen = [p for p in candidates if selector_matches(psel, _meta(p).get("labels"))]
    if chosen:
        return [], chosen
    near = _near_pods(psel, candidates)
    observed = "%s: podSelector %s selects no pod in namespace(s) %s" % (where, fmt_selector(psel), ", ".join(namespaces))
    if near:
        observed += " (%s)" % "; ".join("%s has %s" % n for n in near[:3])
        target = next(p for p in candidates if _meta(p).get("name") == near[0][0])
        fix = _patch(pname, [{"op": "replace", "path": path + "/podSelector",
                              "value": _pod_label_subset(psel, _meta(target).get("labels") or {})}])
    else:
        fix = "make the podSelector match the pods' labels (kubectl get pods -n %s --show-labels)" % namespaces[0]
    if nsel is None:
        why = ("a podSelector without namespaceSelector selects pods of the policy's own namespace (%s) only" % pns)
    else:
        why = "the peer selects the pods matching podSelector inside the selected namespaces; none match"
    return [finding("NETPOL_NEAR_MISS", observed, why + ", so the peer allows nothing", fix, severity=WARNING,
                    where="networkpolicy %s" % pname, policy=pname, part="podSelector")], []


def _named_port_misses(rule, pname, key, i, dests):
    from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import WARNING, finding

    out = []
    for k, spec in enumerate(rule.get("ports") or []):
        name = spec.get("port")
        if name is None or isinstance(name, int) or str(name).isdigit() or not dests:
            continue
        proto = (spec.get("protocol") or "TCP").upper()
        if any(p["name"] == name and p["protocol"] == proto for d in dests for p in container_ports(d)):
            continue
        declared = sorted({"%s:%s/%s" % (p["name"], p["port"], p["protocol"]) for d in dests
                           for p in container_ports(d) if p["name"]})
        out.append(finding(
            "NETPOL_NEAR_MISS",
            "%s %s rule %d: named port %r (%s) is declared by no container of the %d destination pod(s) "
            "(named ports there: %s)" % (pname, key, i, name, proto, len(dests), ", ".join(declared[:6]) or "none"),
            "a named port is resolved on each destination pod's containers; where no container declares it the "
            "rule allows nothing on that port",
            "use the port number, or name the containerPort %r in the destination pods' spec: %s" % (
                name, _patch(pname, [{"op": "replace", "path": "/spec/%s/%d/ports/%d/port" % (key, i, k),
                                      "value": "<number>"}])),
            severity=WARNING, where="networkpolicy %s" % pname, policy=pname, part="port"))
    return out
