# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Application paths: does ``from`` reach ``to``? A verdict per layer, from cluster objects alone.

A path is ``{from: {namespace, selector}, to: "svc.ns:port" | "host:port", protocol: tcp|udp}``
(the ``validate_paths`` variable). ``parse_paths`` checks the input against the cluster and raises
``PathInputError`` naming the variable; ``judge`` gives each path its layers:

* ``dns``: the Service exists (its name resolves) and the source may send DNS to CoreDNS;
* ``service``: the Service has the port, ready endpoints, and its targetPort is a containerPort of
  the pods it selects;
* ``netpol``: egress of the source and ingress of the destination pods, by the NetworkPolicy engine
  (analysis/netpol.py), on the pods the Service selects (after DNAT);
* ``connect``: the live connection (skipped here: the static verdict needs no pod).

Each layer: ``{status: ok|failed|unknown|skipped, detail, object, fix}``. A blocked path gives one
PATH_BLOCKED finding naming the first failing layer, the object that decides and a fix ready to apply.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import ipaddress
import re

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import catalogue as cat
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.dns import lookup_lines
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import mesh
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import netpol
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import WARNING, finding

LAYERS = ("dns", "service", "netpol", "connect")
WORKLOAD_KINDS = ("deployments", "statefulsets", "daemonsets")
_TO = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+):(?P<port>[0-9]+)$")
_LABEL = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


class PathInputError(ValueError):
    """Bad ``validate_paths`` input; the message names the variable and the item."""


def _meta(obj):
    return (obj or {}).get("metadata") or {}


# -- input ---------------------------------------------------------------------------------------
def parse_selector(raw, where):
    """``{k: v}``, a LabelSelector (matchLabels/matchExpressions) or ``"k=v,k2=v2"`` -> LabelSelector."""
    if isinstance(raw, dict) and ("matchLabels" in raw or "matchExpressions" in raw):
        return raw
    if isinstance(raw, dict) and raw:
        return {"matchLabels": {str(k): str(v) for k, v in raw.items()}}
    if isinstance(raw, str) and raw.strip():
        labels = {}
        for term in raw.split(","):
            if "=" not in term:
                raise PathInputError("%s: %r is not a label selector (use k=v[,k2=v2] or a mapping)" % (where, raw))
            k, v = term.split("=", 1)
            labels[k.strip()] = v.strip().lstrip("=")
        return {"matchLabels": labels}
    raise PathInputError("%s: give the source workload's labels, e.g. {app: marketplace} (got %r)" % (where, raw))


def _workloads(objs, namespace):
    """(kind, name, pod template labels) of the workloads and bare pods of one namespace."""
    out = []
    for kind in WORKLOAD_KINDS:
        for w in objs.get(kind) or []:
            if _meta(w).get("namespace") == namespace:
                labels = ((((w.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {})
                out.append((kind[:-1], _meta(w).get("name"), labels))
    for p in objs.get("pods") or []:
        if _meta(p).get("namespace") == namespace:
            out.append(("pod", _meta(p).get("name"), _meta(p).get("labels") or {}))
    return out


def parse_target(raw, where, src_ns, objs, domain="cluster.local"):
    """``svc.ns:port`` / ``svc:port`` (the source's namespace) / ``svc.ns.svc[.domain]:port`` -> a Service
    target; an address or another name -> a host target."""
    if not isinstance(raw, str):
        raise PathInputError("%s: expected \"service.namespace:port\" or \"host:port\", got %r" % (where, raw))
    m = _TO.match(raw.strip())
    if not m:
        raise PathInputError("%s: %r is not \"service.namespace:port\" or \"host:port\"" % (where, raw))
    host, port = m.group("host").strip("[]").rstrip("."), int(m.group("port"))
    if not 0 < port < 65536:
        raise PathInputError("%s: port %d is not 1-65535" % (where, port))
    try:
        ipaddress.ip_address(host)
        return {"kind": "host", "host": host, "ip": host, "port": port}
    except ValueError:
        pass
    labels = host.split(".")
    if not all(_LABEL.match(x) for x in labels):
        raise PathInputError("%s: %r is not a valid host or Service name" % (where, host))
    namespaces = {_meta(n).get("name") for n in objs.get("namespaces") or []}
    suffix = ["svc"] + domain.split(".")
    if labels[2:] == suffix or labels[2:] == ["svc"]:
        name, ns = labels[0], labels[1]
    elif len(labels) == 1:
        name, ns = labels[0], src_ns
    elif len(labels) == 2 and labels[1] in namespaces:
        name, ns = labels
    else:
        services = sorted({_meta(s).get("namespace") for s in objs.get("services") or []
                           if _meta(s).get("name") == labels[0]})
        if len(labels) == 2 and services:
            raise PathInputError("%s: unknown namespace %r (a Service %s exists in %s)" % (
                where, labels[1], labels[0], ", ".join(services)))
        return {"kind": "host", "host": host, "ip": None, "port": port}
    if ns not in namespaces:
        raise PathInputError("%s: unknown namespace %r (namespaces: %s)" % (where, ns, ", ".join(sorted(namespaces))))
    return {"kind": "service", "name": name, "namespace": ns, "port": port,
            "fqdn": "%s.%s.svc.%s" % (name, ns, domain)}


def parse_paths(items, objs, var="validate_paths", domain="cluster.local"):
    """Check every path against the cluster objects; raise PathInputError naming ``var[i].field``."""
    if not isinstance(items, list):
        raise PathInputError("%s must be a list of {from: {namespace, selector}, to, protocol}" % var)
    namespaces = {_meta(n).get("name") for n in objs.get("namespaces") or []}
    out = []
    for i, item in enumerate(items):
        where = "%s[%d]" % (var, i)
        if not isinstance(item, dict) or not isinstance(item.get("from"), dict) or "to" not in item:
            raise PathInputError("%s: expected {from: {namespace, selector}, to: ..., protocol: tcp|udp}, got %r"
                                 % (where, item))
        _known_keys(item, ("from", "to", "protocol"), where)
        _known_keys(item["from"], ("namespace", "selector"), where + ".from")
        src_ns = item["from"].get("namespace")
        if not src_ns:
            raise PathInputError("%s.from.namespace: missing: the source workload's namespace (namespaces: %s)" % (
                where, ", ".join(sorted(namespaces))))
        if src_ns not in namespaces:
            raise PathInputError("%s.from.namespace: unknown namespace %r (namespaces: %s)" % (
                where, src_ns, ", ".join(sorted(namespaces))))
        selector = parse_selector(item["from"].get("selector"), where + ".from.selector")
        matched = [w for w in _workloads(objs, src_ns) if netpol.selector_matches(selector, w[2])]
        if not matched:
            known = sorted({"%s %s (%s)" % (k, n, netpol.fmt_labels(lab)) for k, n, lab in _workloads(objs, src_ns)})
            raise PathInputError("%s.from.selector: %s matches no workload in namespace %s (%s)" % (
                where, netpol.fmt_selector(selector), src_ns, "; ".join(known[:5]) or "it has none"))
        proto = str(item.get("protocol") or "tcp").upper()
        if proto not in ("TCP", "UDP"):
            raise PathInputError("%s.protocol: %r is not tcp or udp" % (where, item.get("protocol")))
        target = parse_target(item["to"], where + ".to", src_ns, objs, domain)
        workload = sorted(matched, key=lambda w: (w[0] == "pod", w[1]))[0]
        source = {"namespace": src_ns, "selector": selector, "workload": "%s %s/%s" % (workload[0], src_ns, workload[1])}
        out.append({"index": i, "var": where, "from": source,
                    "source_labels": dict(workload[2]), "to": item["to"], "target": target, "protocol": proto})
    return out


def _known_keys(mapping, keys, where):
    unknown = sorted(str(k) for k in mapping if k not in keys)
    if unknown:
        raise PathInputError("%s: unknown key%s %s (expected: %s)" % (
            where, "s" if len(unknown) > 1 else "", ", ".join(repr(k) for k in unknown), ", ".join(keys)))


# -- layers --------------------------------------------------------------------------------------
def _layer(status, detail, obj="", fix="", cli="", apply=None, probe=None):
    """One layer's verdict; a failed layer has ``fix`` (what to change, for a person) and ``cli`` (the
    one command that makes the change). ``apply``: the objects that fix it when the fix is to create
    them (the allow policies), so that the fixes of several layers merge into one command. ``probe``:
    the probe pod's own status (timeout, refused, ...) when the verdict is what a probe pod saw rather
    than what the objects say."""
    out = {"status": status, "detail": detail, "object": obj, "fix": fix, "cli": cli}
    if apply:
        out["apply"] = apply
    if probe is not None:
        out["probe"] = probe
    return out


def _find(objs, kind, ns, name):
    for o in objs.get(kind) or []:
        if _meta(o).get("namespace") == ns and _meta(o).get("name") == name:
            return o
    return None


def source_pod(path):
    """The source as the engine sees it: a pod with the workload's labels in the source namespace
    (as the probe pod is started), on no particular node."""
    return {"metadata": {"name": "%s (path source)" % path["from"]["workload"].split("/", 1)[1],
                         "namespace": path["from"]["namespace"], "labels": path["source_labels"]},
            "spec": {"containers": []}, "status": {"phase": "Running", "podIP": ""}}


def _ready_endpoints(objs, ns, name):
    out = []
    for sl in objs.get("endpointslices") or []:
        if _meta(sl).get("namespace") != ns or (_meta(sl).get("labels") or {}).get("kubernetes.io/service-name") != name:
            continue
        for ep in sl.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            out.extend(ep.get("addresses") or [])
    return out


def _svc_port(svc, port, proto):
    for i, sp in enumerate((svc.get("spec") or {}).get("ports") or []):
        if int(sp.get("port") or 0) == port and (sp.get("protocol") or "TCP").upper() == proto:
            return i, sp
    return None, None


def _fmt_svc_ports(svc):
    return ", ".join("%s/%s" % (sp.get("port"), (sp.get("protocol") or "TCP").upper())
                     for sp in (svc.get("spec") or {}).get("ports") or []) or "none"


def _live_pods(objs, ns):
    return [p for p in objs.get("pods") or [] if _meta(p).get("namespace") == ns
            and (p.get("status") or {}).get("phase") not in netpol.TERMINAL_PHASES]


def service_layer(path, objs):
    t = path["target"]
    if t["kind"] != "service":
        return _layer("skipped", "not a Service: %s" % t["host"])
    svc = _find(objs, "services", t["namespace"], t["name"])
    name = "%s/%s" % (t["namespace"], t["name"])
    if svc is None:
        return _layer("skipped", "no Service %s" % name)
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return _layer("skipped", "ExternalName Service %s -> %s" % (name, spec.get("externalName")), "service " + name)
    idx, sp = _svc_port(svc, t["port"], path["protocol"])
    if sp is None:
        return _layer("failed", "Service %s has no %s port %d (ports: %s)" % (
            name, path["protocol"], t["port"], _fmt_svc_ports(svc)), "service " + name,
            "use a port the Service exposes in %s.to, or add %s %d to the Service (kubectl -n %s edit service %s)"
            % (path["var"], path["protocol"], t["port"], t["namespace"], t["name"]),
            "kubectl -n %s edit service %s" % (t["namespace"], t["name"]))
    target = sp.get("targetPort", sp.get("port"))
    selector = spec.get("selector") or {}
    pods = _live_pods(objs, t["namespace"])
    selected = [p for p in pods if selector and all((_meta(p).get("labels") or {}).get(k) == v
                                                    for k, v in selector.items())]
    ready = _ready_endpoints(objs, t["namespace"], t["name"])
    if selector and not selected:
        near, _new = selector_proposal(svc, sp, pods)
        return _layer("failed", "Service %s: %s" % (name, near["observed"]), "service " + name, near["remediation"],
                      near.get("cli", ""))
    declared = [p for p in selected if _declares(p, target, path["protocol"])]
    if selected and not declared and (isinstance(target, str) and not target.isdigit()
                                      or any(netpol.container_ports(p) for p in selected)):
        ports = sorted({"%s/%s" % (p["port"], p["protocol"]) for s in selected for p in netpol.container_ports(s)})
        numeric = sorted({p["port"] for s in selected for p in netpol.container_ports(s)
                          if p["protocol"] == path["protocol"]})
        cli = "kubectl -n %s patch service %s --type=json -p '%s'" % (
            t["namespace"], t["name"], netpol._json([{"op": "replace", "path": "/spec/ports/%d/targetPort" % idx,
                                                      "value": numeric[0] if numeric else target}]))
        return _layer("failed", "Service %s: targetPort %s matches no containerPort of the %d selected pod(s) "
                                "(declared: %s)" % (name, target, len(selected), ", ".join(ports) or "none"),
                      "service " + name, cli, cli)
    if not ready:
        not_ready = [_meta(p).get("name") for p in selected if not _pod_ready(p)]
        return _layer("failed", "Service %s has no ready endpoints%s" % (
            name, " (%d selected pod(s) not Ready: %s)" % (len(not_ready), ", ".join(not_ready[:3])) if not_ready else ""),
            "service " + name, "kubectl -n %s describe pods -l %s; kubectl -n %s get endpointslices -l "
            "kubernetes.io/service-name=%s" % (t["namespace"], netpol.fmt_labels(selector), t["namespace"], t["name"]),
            "kubectl -n %s describe pods -l %s" % (t["namespace"], netpol.fmt_labels(selector)))
    return _layer("ok", "Service %s %s/%d -> targetPort %s, %d ready endpoint(s)" % (
        name, path["protocol"], t["port"], target, len(ready)), "service " + name)


def selector_proposal(svc, service_port, pods):
    """For a Service whose selector matches no pod: the near-miss finding of the dns check's Service analysis
    (only pods that declare the targetPort are proposed, the nearest workload first) and the selector the
    fix gives the Service (None when no pod could serve it)."""
    from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.dns import selector_finding, workload_name

    meta, selector = _meta(svc), (svc.get("spec") or {}).get("selector") or {}
    near = selector_finding(meta.get("namespace"), meta.get("name"), selector, [service_port], pods, "")
    candidates = (near.get("details") or {}).get("candidates") or []
    chosen = [p for p in pods if candidates and workload_name(p) == candidates[0]
              and _declares(p, service_port.get("targetPort", service_port.get("port")),
                            (service_port.get("protocol") or "TCP").upper())]
    if not chosen:
        return near, None
    labels = _meta(sorted(chosen, key=lambda p: _meta(p).get("name") or "")[0]).get("labels") or {}
    new = dict((k, v) for k, v in selector.items() if labels.get(k) == v)
    new.update((k, labels[k]) for k in selector if k in labels)
    return near, new


def _pod_ready(pod):
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def _declares(pod, target, proto):
    ports = netpol.container_ports(pod)
    if isinstance(target, str) and not target.isdigit():
        return any(p["name"] == target and p["protocol"] == proto for p in ports)
    return any(p["port"] == int(target) and p["protocol"] == proto for p in ports)


def dns_layer(path, objs, dns_namespace="kube-system", dns_service="kube-dns"):
    t = path["target"]
    if t["kind"] == "host" and t["ip"]:
        return _layer("skipped", "%s is an address: no lookup" % t["host"])
    if t["kind"] == "service" and _find(objs, "services", t["namespace"], t["name"]) is None:
        others = sorted(_meta(s).get("namespace") for s in objs.get("services") or [] if _meta(s).get("name") == t["name"])
        near = difflib.get_close_matches(t["name"], sorted(_meta(s).get("name") for s in objs.get("services") or []
                                                           if _meta(s).get("namespace") == t["namespace"]), 1, 0.75)
        hint = "; a Service %s exists in %s" % (t["name"], ", ".join(others)) if others else (
            "; did you mean %s (Service %s/%s)?" % (near[0], t["namespace"], near[0]) if near else "")
        return _layer("failed", "%s does not exist: no Service %s in namespace %s%s (NXDOMAIN)" % (
            t["fqdn"], t["name"], t["namespace"], hint), "service %s/%s" % (t["namespace"], t["name"]),
            "point %s.to at an existing Service (%s)" % (
                path["var"], "%s.%s:%d" % (near[0], t["namespace"], t["port"]) if near and not others
                else "kubectl get services -A | grep %s" % t["name"]),
            "kubectl get services -A --field-selector metadata.name=%s" % t["name"])
    coredns = [p for p in _live_pods(objs, dns_namespace)
               if (_meta(p).get("labels") or {}).get("k8s-app") == "kube-dns"]
    ready = _ready_endpoints(objs, dns_namespace, dns_service)
    if not ready:
        return _layer("failed", "Service %s/%s has no ready endpoints: no lookup can succeed" % (
            dns_namespace, dns_service), "service %s/%s" % (dns_namespace, dns_service),
            "see the dns check (DNS_NO_ENDPOINTS / COREDNS_NOT_READY)",
            "kubectl -n %s get endpointslices -l kubernetes.io/service-name=%s" % (dns_namespace, dns_service))
    src = source_pod(path)
    targets = [p for p in coredns if (p.get("status") or {}).get("podIP") in ready] or coredns
    verdicts = [netpol.allowed(src, p, 53, "UDP", objs.get("network_policies"), objs.get("namespaces"),
                               objs.get("pods")) for p in targets]
    if verdicts and not any(v["allowed"] for v in verdicts):
        v = verdicts[0]
        from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.dns import allow_dns_policy_yaml

        from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.dns import allow_dns_policy

        fix = allow_dns_policy_yaml(path["from"]["namespace"], dns_namespace)
        near, near_cli = _near_fix(v, src, targets[0], 53, "UDP", objs)
        return _layer("failed", "NetworkPolicies block DNS (UDP 53 to CoreDNS) from %s: %s" % (
            path["from"]["workload"], v["reason"]), "networkpolicy " + ", ".join(v["deciding"]),
            "%s%s" % ("%s; or " % near if near else "", fix),
            near_cli or netpol.apply_cli([allow_dns_policy(path["from"]["namespace"], dns_namespace)]),
            [allow_dns_policy(path["from"]["namespace"], dns_namespace)])
    detail = "%s resolves through %s/%s (%d ready endpoint(s))" % (
        t.get("fqdn") or t.get("host"), dns_namespace, dns_service, len(ready))
    return _layer("ok" if t["kind"] == "service" else "unknown", detail if t["kind"] == "service" else
                  "DNS is reachable from %s; whether %s resolves is known only by probing" % (
                      path["from"]["workload"], t["host"]))


def _near_fix(verdict, src, dst, port, proto, objs):
    near = verdict.get("nearest")
    if not near or near["score"] > 1:  # a rule that misses on both peer and port was not meant for this flow
        return "", ""
    s, d = netpol.endpoint(src), netpol.endpoint(dst)
    other = d if near["direction"] == "Egress" else s
    fixes = netpol.rule_fixes(near, other, d, port, proto, netpol.namespace_labels(objs.get("namespaces")),
                              objs.get("pods"))
    return netpol.combine_fixes(fixes), netpol.fix_cli(fixes)


def allow_policy(direction, namespace, name, selector, peer, ports):
    """The NetworkPolicy of ``allow_policy_yaml`` as an object (for ``netpol.apply_cli``)."""
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"podSelector": selector, "policyTypes": [direction],
                     key: [{peers_key: [dict(peer)], "ports": [{"protocol": p, "port": n} for p, n in ports]}]}}


def allow_policy_yaml(direction, namespace, name, selector, peer, ports):
    """A NetworkPolicy that allows exactly one flow, as a ready ``kubectl apply`` heredoc."""
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    lines = ["kubectl apply -f - <<'EOF'", "apiVersion: networking.k8s.io/v1", "kind: NetworkPolicy",
             "metadata: {name: %s, namespace: %s}" % (name, namespace), "spec:",
             "  podSelector: %s" % _flow(selector), "  policyTypes: [%s]" % direction, "  %s:" % key,
             "  - %s:" % peers_key]
    first = True
    for k, v in peer:
        lines.append("    %s %s: %s" % ("-" if first else " ", k, _flow(v)))
        first = False
    lines.append("    ports: [%s]" % ", ".join("{protocol: %s, port: %s}" % (p, n) for p, n in ports))
    lines.append("EOF")
    return "\n".join(lines)


def _flow(value):
    """YAML flow style of a small mapping."""
    if isinstance(value, dict):
        return "{%s}" % ", ".join("%s: %s" % (k, _flow(v)) for k, v in sorted(value.items()))
    if isinstance(value, list):
        return "[%s]" % ", ".join(_flow(v) for v in value)
    return str(value)


def netpol_layer(path, objs):
    t = path["target"]
    src = source_pod(path)
    pols, nss, pods = objs.get("network_policies"), objs.get("namespaces"), objs.get("pods")
    preview = ""
    if t["kind"] == "service":
        svc = _find(objs, "services", t["namespace"], t["name"])
        if svc is None or (svc.get("spec") or {}).get("type") == "ExternalName":
            return _layer("skipped", "no Service pods to judge")
        try:
            v = netpol.allowed(src, svc, t["port"], path["protocol"], pols, nss, pods)
        except ValueError as exc:
            return _layer("skipped", str(exc))
        if not v["backends"] and (svc.get("spec") or {}).get("selector"):
            # the service layer proposes a selector: judge the pods it would select, so every fix comes at once
            _sp_i, sp0 = _svc_port(svc, t["port"], path["protocol"])
            _near, new = selector_proposal(svc, sp0, _live_pods(objs, t["namespace"])) if sp0 else (None, None)
            if new:
                svc = dict(svc, spec=dict(svc["spec"], selector=new))
                v = netpol.allowed(src, svc, t["port"], path["protocol"], pols, nss, pods)
                preview = "once the Service selects %s: " % netpol.fmt_labels(new)
        if not v["backends"]:
            return _layer("skipped", "the Service selects no pod to judge")
        denied = [b["pod"] for b in v["backends"] if not b["allowed"] and b["egress"]]
        dst = next((p for p in pods if _meta(p).get("name") in denied[:1]
                    and _meta(p).get("namespace") == t["namespace"]), None)
        _idx, sp = _svc_port(svc, t["port"], path["protocol"])
        target_port = sp.get("targetPort", sp.get("port"))
        dst_selector = (svc.get("spec") or {}).get("selector") or {}
        dst_ns = t["namespace"]
    else:
        if not t["ip"]:
            ep = netpol.endpoint(src)
            eg_pols = netpol.applying(pols, ep, "Egress")
            if not eg_pols:
                return _layer("ok", "%s is not isolated for egress" % path["from"]["workload"])
            return _layer("unknown", "%s is isolated for egress by %s: ipBlock rules are judged on the address "
                                     "%s resolves to (probe it)" % (path["from"]["workload"], ", ".join(
                                         netpol.policy_name(p) for p in eg_pols), t["host"]),
                          "networkpolicy " + ", ".join(netpol.policy_name(p) for p in eg_pols))
        v = netpol.allowed(src, t["ip"], t["port"], path["protocol"], pols, nss, pods)
        dst, target_port, dst_selector, dst_ns = t["ip"], t["port"], None, None
    if v["allowed"]:
        return _layer("ok", preview + v["reason"])
    first = next((b for b in v["backends"] if not b["allowed"] and b["egress"]), None) if v["backends"] else v
    if first is None:  # only backends without the targetPort: the service layer says so
        return _layer("skipped", v["reason"])
    deciding = ", ".join(v["deciding"])
    detail = preview + v["reason"]
    src_sel = (path["from"]["selector"].get("matchLabels") or path["source_labels"])
    flow_name = "allow-%s-to-%s-%s" % (_slug(src_sel), t.get("name") or _slug(t["host"]), t["port"])
    flow_name = flow_name[:240]
    specs = []
    src_peer = [("namespaceSelector", {"matchLabels": {netpol.NAME_LABEL: path["from"]["namespace"]}}),
                ("podSelector", {"matchLabels": src_sel})]
    ports = [(path["protocol"], target_port)]
    if not first["egress"]["allowed"]:
        if dst_ns:
            peer = [("namespaceSelector", {"matchLabels": {netpol.NAME_LABEL: dst_ns}}),
                    ("podSelector", {"matchLabels": dst_selector})]
        else:
            peer = [("ipBlock", {"cidr": "%s/32" % t["ip"]})]
        specs.append(("Egress", path["from"]["namespace"], flow_name + "-egress", {"matchLabels": src_sel}, peer, ports))
        if not first["ingress"]["allowed"] and dst_ns:
            specs.append(("Ingress", dst_ns, flow_name + "-ingress", {"matchLabels": dst_selector}, src_peer, ports))
    else:
        specs.append(("Ingress", dst_ns, flow_name + "-ingress", {"matchLabels": dst_selector}, src_peer, ports))
    policy = "\nand ".join(allow_policy_yaml(*spec) for spec in specs)
    near, near_cli = _near_fix(first, src, dst, first.get("target_port") or t["port"], path["protocol"], objs) \
        if dst else ("", "")
    fix = "%s; or %s" % (near, policy) if near else policy
    policies = [allow_policy(*spec) for spec in specs]
    return _layer("failed", detail, "networkpolicy " + deciding if deciding else "", fix,
                  near_cli or netpol.apply_cli(policies), policies)


def _slug(value):
    if isinstance(value, dict):
        value = "-".join(str(v) for _k, v in sorted(value.items()))
    return re.sub(r"[^a-z0-9-]+", "-", str(value).lower()).strip("-")[:30] or "app"


# -- verdicts ------------------------------------------------------------------------------------
WHY = {
    "dns": "the name must resolve before anything connects: a missing Service answers NXDOMAIN, and a source "
           "isolated for egress without a DNS rule times out on every lookup",
    "service": "kube-proxy sends the Service's traffic to its ready endpoints at the targetPort; with none, or with "
               "a port nothing listens on, connections are refused or hang",
    "netpol": "both the egress policies of the source and the ingress policies of the destination pods must allow "
              "the connection; otherwise the packets are dropped and the connection times out",
    "connect": "the connection itself failed",
}


def judge(paths, objs, probe_results=None, dns_namespace="kube-system", dns_service="kube-dns"):
    """[{from, to, protocol, layers, verdict}] and the findings: one PATH_BLOCKED per blocked path, and
    NETPOL_NOT_ENFORCED (warning) where a live connect contradicts a static NetworkPolicy deny.

    ``probe_results``: {path index: probe outcome} from probe pods; without it the connect layer is
    skipped (static verdicts)."""
    results, findings = [], []
    for path in paths:
        layers = {
            "dns": dns_layer(path, objs, dns_namespace, dns_service),
            "service": service_layer(path, objs),
            "netpol": netpol_layer(path, objs),
            "connect": _layer("skipped", "validate_paths_probe is false: static verdicts only"),
        }
        statuses = [layers[name]["status"] for name in LAYERS]
        result = {"from": {"namespace": path["from"]["namespace"], "selector": path["from"]["selector"],
                           "workload": path["from"]["workload"]},
                  "to": path["to"], "protocol": path["protocol"].lower(), "layers": layers,
                  "verdict": "blocked" if "failed" in statuses else ("unknown" if "unknown" in statuses else "ok")}
        probe = None if probe_results is None else probe_results.get(path["index"])
        if probe_results is not None:
            apply_probe(result, probe)
        traffic = path_traffic(path, objs, (probe or {}).get("node") or "", dns_namespace, dns_service)
        _name_node_path(layers, traffic, path["from"]["namespace"])
        results.append(result)
        findings.extend(_path_findings(path, result, traffic))
    return results, findings


def _name_node_path(layers, traffic, namespace):
    """The live failures' fixes name the node pair the packets crossed."""
    def pair(t, what=""):
        return "from %s to %s%s (%s/%s)" % (t["src_node"] or "the probe pod's node", what, ", ".join(t["dst_nodes"]),
                                            t["protocol"], t["port"])

    connect, dns = layers["connect"], layers["dns"]
    if connect["status"] == "failed" and traffic["path"]["dst_node"]:
        connect["fix"] = ("see the failing layers above; with every layer ok, check the node path "
                          "(node_reachability) %s" % pair(traffic["path"]))
    if dns["status"] == "failed" and dns.get("probe") == "timeout" and traffic["dns"]["dst_node"]:
        dns["fix"] = ("check cluster DNS from namespace %s (see the dns check) and the node path "
                      "(node_reachability) %s" % (namespace, pair(traffic["dns"], "the CoreDNS pods on ")))


def _node_of(pod):
    return ((pod or {}).get("spec") or {}).get("nodeName") or ""


def _order_nodes(nodes, src):
    """Distinct nodes, the ones other than ``src`` first (the pair a blocked node path would be)."""
    nodes = sorted({n for n in nodes if n})
    return [n for n in nodes if n != src] + [n for n in nodes if n == src]


def path_traffic(path, objs, probe_node="", dns_namespace="kube-system", dns_service="kube-dns"):
    """Where a path's packets go, per kind of layer: ``{"dns": traffic, "path": traffic}``, each
    ``{src_node, dst_node, dst_nodes, protocol, port}``.

    src_node is the probe pod's node, else the node of the first pod of the source workload; ``dns``
    goes to the CoreDNS pods behind the DNS Service (udp/53), ``path`` to the pods the Service sends the
    port to (after DNAT, at their numeric targetPort) or to the host. dst_node is the first destination
    on another node than the source (the node pair a blocked path would cross), dst_nodes all of them."""
    ns = path["from"]["namespace"]
    sources = sorted(_node_of(p) for p in _live_pods(objs, ns)
                     if _node_of(p) and netpol.selector_matches(path["from"]["selector"], _meta(p).get("labels") or {}))
    src = probe_node or (sources[0] if sources else "")
    ready_dns = set(_ready_endpoints(objs, dns_namespace, dns_service))
    dns_pods = [p for p in _live_pods(objs, dns_namespace) if (p.get("status") or {}).get("podIP") in ready_dns]
    t = path["target"]
    dsts, port = [], t["port"]
    svc = _find(objs, "services", t["namespace"], t["name"]) if t["kind"] == "service" else None
    if svc is not None and (svc.get("spec") or {}).get("type") != "ExternalName":
        try:
            backends = netpol.service_backends(svc, objs.get("pods") or [], t["port"], path["protocol"])
        except ValueError:
            backends = []
        ready = set(_ready_endpoints(objs, t["namespace"], t["name"]))
        chosen = [(p, n) for p, n in backends if (p.get("status") or {}).get("podIP") in ready] or backends
        dsts = [_node_of(p) for p, _n in chosen]
        numeric = [n for _p, n in chosen if n]
        port = numeric[0] if numeric else port

    def one(nodes, proto, number):
        nodes = _order_nodes(nodes, src)
        return {"src_node": src, "dst_node": nodes[0] if nodes else "", "dst_nodes": nodes,
                "protocol": proto, "port": number}

    return {"dns": one([_node_of(p) for p in dns_pods], "udp", 53),
            "path": one(dsts, path["protocol"].lower(), port)}


def _path_findings(path, result, traffic):
    layers, out = result["layers"], []
    where = "%s: %s -> %s" % (path["var"], path["from"]["workload"], path["to"])
    src = "%s %s" % (path["from"]["namespace"], netpol.fmt_selector(path["from"]["selector"]))
    failed = [name for name in LAYERS if layers[name]["status"] == "failed"]
    if failed:
        layer = layers[failed[0]]
        observed = "%s -> %s/%s is blocked at the %s layer: %s" % (
            src, path["to"], path["protocol"], failed[0], layer["detail"])
        fix, cli = layer["fix"], layer["cli"]
        if len(failed) > 1 and all(layers[name].get("apply") for name in failed):
            # every failing layer is fixed by new policies: one kubectl apply creates them all
            cli = netpol.apply_cli([o for name in failed for o in layers[name]["apply"]])
        if len(failed) > 1:  # one finding per path: every failing layer's fix, in the order traffic meets them
            observed += " (also blocked at: %s)" % ", ".join(failed[1:])
            fix = "\n".join("%d. %s: %s" % (n, name, layers[name]["fix"]) for n, name in enumerate(failed, 1))
        out.append(finding("PATH_BLOCKED", observed, WHY[failed[0]], fix, where=where, cli=cli or None,
                           path=path["index"], object=layer["object"], failed_layers=failed,
                           **_where_details(failed[0], layer, traffic)))
    if layers["netpol"]["status"] == "not-enforced":
        out.append(finding(
            "NETPOL_NOT_ENFORCED", "%s -> %s/%s: %s" % (src, path["to"], path["protocol"], layers["netpol"]["detail"]),
            "the cluster has NetworkPolicies that would isolate these pods, but the network plugin does not apply "
            "them: the isolation they describe does not exist", layers["netpol"]["fix"], severity=WARNING,
            where=where, path=path["index"], object=layers["netpol"]["object"],
            **_where_details("netpol", layers["netpol"], traffic)))
    return out


def _where_details(name, layer, traffic):
    """A path finding's node pair and traffic (for the diagnosis), and who observed the failure:
    ``observed_by: objects`` (a Service or NetworkPolicy verdict from the cluster objects, which no node
    pair explains) or ``probe`` with the probe pod's status (``probe_status``: timeout, refused, ...)."""
    out = dict(traffic["dns" if name == "dns" else "path"], layer=name)
    out["observed_by"] = "probe" if "probe" in layer else "objects"
    if "probe" in layer:
        out["probe_status"] = layer["probe"]
    return out


def with_mesh(paths_result, mesh_task):
    """The ``paths`` check result of the app paths joined with the live pod mesh's (``mesh_task``: the
    registered result of mesh_probe: its ``check``; a failed task is a failed check with its message; a
    skipped task, or none, leaves ``paths_result`` as it is)."""
    mesh_task = mesh_task or {}
    check = mesh_task.get("check")
    if not check and mesh_task.get("failed"):
        check = {"status": "failed", "msg": "mesh: %s" % (mesh_task.get("msg") or "the mesh probe failed"),
                 "findings": [], "evidence": {"mesh": [], "paths": []}}
    if not check or check.get("status") == "skipped" or mesh_task.get("skipped"):
        return paths_result
    return mesh.combine(paths_result, check)


def check_result(results, findings):
    """The ``paths`` check result (CONTRACT shape), for the static verdicts."""
    blocked = [r for r in results if r["verdict"] == "blocked"]
    unknown = [r for r in results if r["verdict"] == "unknown"]
    if blocked:
        msg = "paths: %d of %d path(s) blocked" % (len(blocked), len(results))
    else:
        msg = "paths: %d path(s) open%s" % (len(results) - len(unknown), ", %d undetermined without a probe"
                                            % len(unknown) if unknown else "")
    return {"status": "failed" if any(f["severity"] == "error" for f in findings) else "passed", "msg": msg,
            "findings": findings, "evidence": {"mesh": [], "paths": results}}


# -- probe pods (the live dns and connect layers) -------------------------------------------------
PROBE_FORMAT = "pathprobe/1"


def probe_script(host, port, protocol="TCP", timeout=3, resolve=True, message="/dev/termination-log"):
    """A POSIX sh script (busybox) that resolves ``host`` (unless ``resolve`` is false) and connects to
    ``port``, writing ``dns <status> <address>`` and ``connect <status>`` to /dev/termination-log.

    Every step is bounded by busybox ``timeout``; the lookup is the DNS probe pods' (``dns.lookup_lines``:
    it resends every half second and gives up after ``timeout`` rounded up). Statuses: ok, nxdomain,
    timeout, refused, error, skipped; UDP has no handshake, so its connect status is ``sent`` (not proof of
    delivery)."""
    bound = max(2, int(round(float(timeout)))) + 2
    wait = max(1, int(round(float(timeout))))
    lines = [
        "m=%s" % message,
        "echo %s > $m" % PROBE_FORMAT,
        "h=%s" % host,
        "a=$h",
    ]
    if resolve:
        lines += lookup_lines('"$h"', timeout) + [
            "echo \"dns $s ${a:--}\" >> $m",
            "if [ $s != ok ]; then echo 'connect skipped' >> $m; exit 1; fi",
        ]
    else:
        lines.append("echo 'dns skipped -' >> $m")
    if str(protocol).upper() == "UDP":
        lines += ["echo x | timeout %d nc -u -w %d \"$a\" %d >/dev/null 2>&1" % (bound, wait, int(port)),
                  "echo 'connect sent' >> $m", "exit 0"]
    else:
        lines += [
            # -e true: exit as soon as the connection is up (works with busybox's small and full nc; -e comes last)
            "out=$(timeout %d nc -w %d \"$a\" %d -e true 2>&1); r=$?" % (bound, wait, int(port)),
            "if [ $r -eq 0 ]; then s=ok",
            "elif [ $r -eq 143 ] || [ $r -eq 124 ]; then s=timeout",
            "elif echo \"$out\" | grep -qi 'refused'; then s=refused",
            "elif echo \"$out\" | grep -qiE 'timed out|timeout'; then s=timeout",
            "else s=error; fi",
            "echo \"connect $s\" >> $m",
            "[ $s = ok ]",
        ]
    return "\n".join(lines)


def parse_probe_message(text):
    """A probe pod's termination message -> {dns: {status, answer}, connect: {status}} (raises ValueError)."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    if not lines or lines[0] != PROBE_FORMAT:
        raise ValueError("not a %s message: %r" % (PROBE_FORMAT, (text or "")[:120]))
    out = {}
    for line in lines[1:]:
        parts = line.split()
        if parts[0] == "dns" and len(parts) >= 2:
            out["dns"] = {"status": parts[1], "answer": parts[2] if len(parts) > 2 and parts[2] != "-" else ""}
        elif parts[0] == "connect" and len(parts) >= 2:
            out["connect"] = {"status": parts[1]}
        else:
            raise ValueError("bad probe line %r" % line)
    if "connect" not in out:
        raise ValueError("probe message without a connect line: %r" % (text or "")[:120])
    return out


def probe_target(path):
    """(host the probe connects to, port, resolve?) for a parsed path."""
    t = path["target"]
    if t["kind"] == "service":
        return t["fqdn"], t["port"], True
    return t["host"], t["port"], not t["ip"]


def probe_pod_manifest(path, image, run_id, timeout=3):
    """A pod in the source namespace with the source workload's labels (so NetworkPolicies select it as
    they select the app) that never becomes Ready (so the app's Services never send it traffic)."""
    host, port, resolve = probe_target(path)
    labels = dict(path["source_labels"])
    labels["kubeadm-ec2/path-probe-run"] = run_id
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "path-probe-%d-" % path["index"], "namespace": path["from"]["namespace"],
                     "labels": labels,
                     "annotations": {"kubeadm-ec2/path": "%s -> %s/%s" % (
                         path["from"]["workload"], path["to"], path["protocol"])}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": False,
            "containers": [{
                "name": "probe", "image": image,
                "command": ["sh", "-c", probe_script(host, port, path["protocol"], timeout, resolve)],
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "readinessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 3600},
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}},
            }],
        },
    }


NOT_ENFORCED = "NetworkPolicies are not enforced here (the CNI does not implement them)"


def apply_probe(result, probe):
    """Merge one probe outcome ({outcome, detail, results, pod}) into a judged path (in place): the live
    dns and connect layers; a static NetworkPolicy deny contradicted by a live connect becomes the
    "not enforced" verdict instead of two contradicting ones."""
    layers = result["layers"]
    if not probe or probe.get("outcome") != "finished":
        layers["connect"] = _layer("unknown", "the probe pod gave no result: %s" % (
            (probe or {}).get("detail") or (probe or {}).get("outcome") or "not run"), "pod %s" % (probe or {}).get("pod"))
    else:
        res = probe.get("results") or {}
        dns = res.get("dns") or {"status": "skipped"}
        conn = res.get("connect") or {"status": "skipped"}
        where = "probe pod %s" % probe.get("pod")
        if dns["status"] not in ("ok", "skipped") and layers["dns"]["status"] != "failed":
            layers["dns"] = _layer("failed", "the probe could not resolve the name: %s" % dns["status"], where,
                                   "check cluster DNS from namespace %s (see the dns check)" % result["from"]["namespace"],
                                   cat.validate_cli("dns"), probe=dns["status"])
        elif dns["status"] == "ok" and layers["dns"]["status"] == "unknown":
            layers["dns"] = _layer("ok", "resolved to %s" % dns["answer"], where)
        status = conn["status"]
        if status == "ok":
            layers["connect"] = _layer("ok", "connected from the source namespace", where)
            if layers["netpol"]["status"] == "failed":
                layers["netpol"] = _layer("not-enforced", "%s: the policies deny this connection (%s) but it "
                                                          "succeeded" % (NOT_ENFORCED, layers["netpol"]["detail"]),
                                          layers["netpol"]["object"],
                                          "use a CNI that enforces NetworkPolicy (Calico does), or treat these "
                                          "policies as documentation only")
            if layers["netpol"]["status"] == "unknown":
                layers["netpol"] = _layer("ok", "the connection succeeded", where)
        elif status == "sent":
            layers["connect"] = _layer("unknown", "UDP datagram sent; UDP has no handshake to prove delivery", where)
        elif status == "skipped":
            layers["connect"] = _layer("skipped", "not attempted: the name did not resolve", where)
        else:
            layers["connect"] = _layer("failed", "the connection from the source namespace gave %s" % status, where,
                                       "see the failing layers above; with every layer ok, check the node path "
                                       "(node_reachability) between the source and destination nodes",
                                       cat.validate_cli("node_reachability"), probe=status)
    statuses = [layers[name]["status"] for name in LAYERS]
    result["verdict"] = "blocked" if "failed" in statuses else (
        "unknown" if "unknown" in statuses else "ok")
    return result
