# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The live pod mesh (pure, no I/O): probe pod manifests and script, the pod-level matrix, its findings.

One probe pod per node (``pods_per_node`` more for same-node cells) listens on a TCP and a UDP port.
Once every pod runs, the mesh_probe module writes the list of targets into the pods' annotation
``kubeadm-ec2/mesh-peers``; a downwardAPI volume exposes it to the pod as ``/etc/mesh/peers`` (the
kubelet refreshes such volumes when the annotation changes). Each pod then connects to every target
at once:

* every other probe pod's IP, TCP and UDP (pod-to-pod, same node and across nodes);
* the kube-dns ClusterIP on TCP 53 (the Service path through kube-proxy);
* the external endpoint (egress and NAT), when one is given.

It reports started (startupProbe) once its own listeners answer, keeps listening, turns Ready
(readinessProbe on a file) when its own connects are done, and exits
with one status letter per target in its termination message when the module sets the annotation
``kubeadm-ec2/mesh-stop`` (every pod listens until every pod has probed).

``matrix()`` turns the pods' messages into the rows of ``evidence.mesh`` (the ``paths`` check):
``{src_pod, src_node, dst, dst_pod?, dst_node?, kind: pod|service|external, proto, port, ok, reason}``.
``findings()`` states only what was observed: POD_PATH_BLOCKED per node pair and protocol,
SERVICE_PATH_BLOCKED / EGRESS_BLOCKED per source node, MESH_PROBE_FAILED per probe pod that did not
report; the diagnosis links them to the node pairs. A cell NetworkPolicies deny is judged with the
engine (analysis/netpol.py): denied and connected is NETPOL_NOT_ENFORCED (one warning; the other denied
cells are then judged as the network, since the policies do nothing); denied and blocked while no denied
cell connects is the policy at work (MESH_NETPOL_DENIED, warning): never two contradicting verdicts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import netpol
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import WARNING, finding

PROBE_FORMAT = "meshprobe/1"
PEERS_ANNOTATION = "kubeadm-ec2/mesh-peers"
STOP_ANNOTATION = "kubeadm-ec2/mesh-stop"
RUN_LABEL = "kubeadm-ec2/mesh-run"
NAME_LABEL = "mesh-probe"
TCP_PORT = 7946
UDP_PORT = 7947
DOWNWARD_DIR = "/etc/mesh"
WORK_DIR = "/tmp"
STATUS = {"o": "ok", "t": "timeout", "r": "refused", "n": "unresolved", "e": "error", "s": "skipped"}
KINDS = ("pod", "service", "external")
# the one command that shows whether Calico NATs pod traffic leaving the cluster
EGRESS_CLI = "kubectl get ippools.crd.projectcalico.org -o custom-columns=NAME:.metadata.name,NAT:.spec.natOutgoing"


def parse_external(value):
    """``host:port`` -> (host, port); "" / None -> None; ValueError otherwise."""
    if not value:
        return None
    host, sep, port = str(value).strip().rpartition(":")
    valid = sep and host and port.isdigit() and 0 < int(port) < 65536 and re.match(r"^[A-Za-z0-9.-]+$", host)
    if not valid:
        raise ValueError("expected host:port (e.g. kubernetes.io:443), got %r" % (value,))
    return host, int(port)


# -- the probe pod ----------------------------------------------------------------------------------
def probe_script(connect_timeout=2, linger=120, tcp_port=TCP_PORT, udp_port=UDP_PORT):
    """The probe pod's POSIX sh script (busybox: nc, udpsvd, timeout, sleep).

    The first three lines name the downward volume, the work directory and the termination log, so a
    lab kubelet can point them elsewhere. ``linger`` bounds each wait (peers, stop) in seconds."""
    wait = max(1, int(round(float(connect_timeout))))
    bound = wait + 2
    return "\n".join([
        "d=%s" % DOWNWARD_DIR,
        "w=%s" % WORK_DIR,
        "m=/dev/termination-log",
        "nc -ll -p %d -e true </dev/null >/dev/null 2>&1 &" % int(tcp_port),
        "udpsvd 0 %d echo ok </dev/null >/dev/null 2>&1 &" % int(udp_port),
        # the startupProbe passes once both listeners answer here: the module writes the targets only then
        "n=0",
        "until timeout 3 nc -w 1 127.0.0.1 %d -e true >/dev/null 2>&1 && [ \"$(echo x | timeout 3 nc -u -w 1 "
        "127.0.0.1 %d 2>/dev/null)\" = ok ]; do n=$((n+1))" % (int(tcp_port), int(udp_port)),
        "  if [ $n -gt 30 ]; then printf '%s\\nerror listeners-not-up\\n' > $m; exit 1; fi; sleep 1; done"
        % PROBE_FORMAT,
        "touch $w/mesh-listening",
        "n=0",
        "while [ ! -s $d/peers ]; do n=$((n+1)); if [ $n -gt %d ]; then" % int(linger),
        "  printf '%s\\nerror no-peers-annotation\\n' > $m; exit 1; fi; sleep 1; done" % PROBE_FORMAT,
        "i=0; pids=",
        "while read k p a port rest; do",
        "  [ -n \"$k\" ] || continue",
        "  i=$((i+1))",
        "  if [ \"$a\" = \"$POD_IP\" ]; then echo s > $w/r.$i; continue; fi",
        "  ( if [ \"$p\" = udp ]; then",
        # UDP has no handshake: one datagram a second until an answer, within the connect timeout
        "      s=t; u=0",
        "      while [ $u -lt %d ]; do u=$((u+1))" % wait,
        "        out=$(echo x | timeout 3 nc -u -w 1 \"$a\" \"$port\" 2>/dev/null)",
        "        case \"$out\" in *ok*) s=o; break;; esac",
        "      done",
        "    else",
        "      out=$(timeout %d nc -w %d \"$a\" \"$port\" -e true 2>&1); r=$?" % (bound, wait),
        "      if [ $r -eq 0 ]; then s=o",
        "      elif [ $r -eq 143 ] || [ $r -eq 124 ]; then s=t",
        "      elif echo \"$out\" | grep -qi refused; then s=r",
        "      elif echo \"$out\" | grep -qiE 'timed out|timeout'; then s=t",
        "      elif echo \"$out\" | grep -qiE 'bad address|resolve|unknown host'; then s=n",
        "      else s=e; fi",
        "    fi",
        "    echo $s > $w/r.$i ) &",
        "  pids=\"$pids $!\"",
        "done < $d/peers",
        "[ -z \"$pids\" ] || wait $pids",
        "res=; j=1",
        "while [ $j -le $i ]; do res=\"$res$(cat $w/r.$j 2>/dev/null || echo e)\"; j=$((j+1)); done",
        "echo \"$res\" > $w/mesh-result; touch $w/mesh-done",
        "n=0",
        "while [ ! -s $d/stop ] && [ $n -lt %d ]; do n=$((n+1)); sleep 1; done" % int(linger),
        "printf '%s\\n%%s\\n' \"$res\" > $m" % PROBE_FORMAT,
        "exit 0",
    ])


def probe_pod_manifest(node, index, image, namespace, run_id, connect_timeout=2, linger=120):
    """Probe pod ``index`` (0-based) on ``node``: nodeName, every toleration, never restarted."""
    safe = re.sub(r"[^a-z0-9-]", "-", node.lower())[:40]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "mesh-probe-%s-%s" % (safe, "%d-" % index if index else ""),
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": NAME_LABEL, "app.kubernetes.io/managed-by": "kubeadm_ec2.mesh_probe",
                       RUN_LABEL: run_id},
        },
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{
                "name": "probe",
                "image": image,
                "command": ["sh", "-c", probe_script(connect_timeout, linger)],
                "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                "ports": [{"name": "mesh-tcp", "containerPort": TCP_PORT, "protocol": "TCP"},
                          {"name": "mesh-udp", "containerPort": UDP_PORT, "protocol": "UDP"}],
                "startupProbe": {"exec": {"command": ["test", "-f", "%s/mesh-listening" % WORK_DIR]},
                                 "periodSeconds": 1, "failureThreshold": 60},
                "readinessProbe": {"exec": {"command": ["test", "-f", "%s/mesh-done" % WORK_DIR]},
                                   "periodSeconds": 1, "failureThreshold": 1},
                "volumeMounts": [{"name": "mesh", "mountPath": DOWNWARD_DIR, "readOnly": True}],
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}},
            }],
            "volumes": [{"name": "mesh", "downwardAPI": {"items": [
                {"path": "peers", "fieldRef": {"fieldPath": "metadata.annotations['%s']" % PEERS_ANNOTATION}},
                {"path": "stop", "fieldRef": {"fieldPath": "metadata.annotations['%s']" % STOP_ANNOTATION}},
            ]}}],
        },
    }


def targets(pods, service=None, external=None):
    """The target list every pod gets, in order: each running pod TCP and UDP, the Service, the external.

    ``pods``: [{pod, node, ip}]; ``service``: {ip, port, name} or None; ``external``: (host, port) or None."""
    out = []
    for p in pods:
        out.append({"kind": "pod", "proto": "tcp", "dst": p["ip"], "port": TCP_PORT, "dst_pod": p["pod"],
                    "dst_node": p["node"]})
        out.append({"kind": "pod", "proto": "udp", "dst": p["ip"], "port": UDP_PORT, "dst_pod": p["pod"],
                    "dst_node": p["node"]})
    if service and service.get("ip"):
        out.append({"kind": "service", "proto": "tcp", "dst": service["ip"], "port": int(service.get("port") or 53),
                    "service": service.get("name") or ""})
    if external:
        out.append({"kind": "external", "proto": "tcp", "dst": external[0], "port": int(external[1])})
    return out


def peers_text(tlist):
    """The annotation value: one ``kind proto address port`` line per target."""
    return "".join("%s %s %s %d\n" % (t["kind"], t["proto"], t["dst"], t["port"]) for t in tlist)


def parse_probe_message(text):
    """A probe pod's termination message -> the status letters (raises ValueError)."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    if not lines or lines[0] != PROBE_FORMAT:
        raise ValueError("not a %s message: %r" % (PROBE_FORMAT, (text or "")[:120]))
    if len(lines) > 1 and lines[1].startswith("error"):
        raise ValueError("the probe pod reported: %s" % lines[1])
    letters = lines[1] if len(lines) > 1 else ""
    if any(ch not in STATUS for ch in letters):
        raise ValueError("bad status letters %r" % letters[:120])
    return letters


# -- the matrix -------------------------------------------------------------------------------------
def _reason(status, t, connect_timeout):
    if status == "ok":
        return "connected" if t["proto"] == "tcp" else "answered"
    if status == "timeout":
        return ("no answer within %ss" % connect_timeout) if t["proto"] == "udp" else \
            "connect timed out after %ss" % connect_timeout
    return {"refused": "connection refused", "unresolved": "name did not resolve",
            "error": "connect failed"}.get(status, status)


def _policy_verdict(src, t, pods_by_ip, policy_state):
    """NetworkPolicy verdict ({allowed, reason, deciding}) of a cell, or None when no policy set applies."""
    if not policy_state or not policy_state.get("network_policies"):
        return None
    dst = None
    if t["kind"] == "pod":
        dst = pods_by_ip.get(t["dst"])
    elif t["kind"] == "service":
        dst = policy_state.get("service")
    elif re.match(r"^\d+\.\d+\.\d+\.\d+$", t["dst"]):
        dst = t["dst"]
    if dst is None or src is None:
        return None
    try:
        return netpol.allowed(src, dst, t["port"], t["proto"].upper(), policy_state["network_policies"],
                              policy_state.get("namespaces") or [], policy_state.get("pods") or [])
    except (ValueError, KeyError, TypeError):
        return None


def matrix(pod_results, tlist, connect_timeout=2, policy_state=None):
    """The rows of ``evidence.mesh`` from the pods' results ({pod, node, ip, outcome, detail, letters, object}).

    A pod that did not finish gives no row (MESH_PROBE_FAILED says why); self cells are left out.
    ``policy_state``: {network_policies, namespaces, pods, service} to judge each cell with the engine."""
    pods_by_ip = dict((r["ip"], r.get("object")) for r in pod_results if r.get("ip") and r.get("object"))
    rows = []
    for res in pod_results:
        if res.get("outcome") != "finished":
            continue
        letters = res.get("letters") or ""
        for i, t in enumerate(tlist):
            status = STATUS.get(letters[i], "error") if i < len(letters) else "error"
            if status == "skipped" or (t["kind"] == "pod" and t["dst"] == res.get("ip")):
                continue
            row = {"src_pod": res["pod"], "src_node": res["node"], "dst": "%s:%d" % (t["dst"], t["port"]),
                   "kind": t["kind"], "proto": t["proto"], "port": t["port"], "ok": status == "ok",
                   "reason": _reason(status, t, connect_timeout) if i < len(letters) else "no status reported"}
            if t["kind"] == "pod":
                row["dst_pod"], row["dst_node"] = t["dst_pod"], t["dst_node"]
            if t.get("service"):
                row["service"] = t["service"]
            verdict = _policy_verdict(res.get("object"), t, pods_by_ip, policy_state)
            if verdict is not None and not verdict["allowed"]:
                row["netpol"] = {"allowed": False, "deciding": list(verdict.get("deciding") or []),
                                 "reason": verdict["reason"]}
                row["reason"] += ("; denied by NetworkPolicy %s" % ", ".join(verdict.get("deciding") or ["?"]))
            rows.append(row)
    return rows


# -- findings ---------------------------------------------------------------------------------------
def _cells_text(cells, limit=3):
    parts = ["%s -> %s (%s)" % (c["src_pod"], c.get("dst_pod") or c["dst"], c["reason"]) for c in cells[:limit]]
    if len(cells) > limit:
        parts.append("... (%d more)" % (len(cells) - limit))
    return "; ".join(parts)


def _status_of(cells):
    """refused when every cell was refused (the packets arrived: no node pair's doing), else timeout."""
    return "refused" if all(c["reason"].startswith("connection refused") for c in cells) else "timeout"


def findings(rows, pod_results, namespace="default", endpoint_nodes=(), external=None):
    """Observed-only findings of the mesh (see the module docstring)."""
    out = []
    for res in pod_results:
        if res.get("outcome") != "finished":
            out.append(finding(
                "MESH_PROBE_FAILED", "mesh probe pod %s/%s on %s: %s" % (
                    namespace, res.get("pod"), res.get("node"), res.get("detail") or res.get("outcome")),
                "the pod paths from and to %s are unverified" % res.get("node"),
                "kubectl -n %s describe pod %s; check the node is Ready, kubelet runs and the probe image can be "
                "pulled (validate_paths_mesh_image), or turn the mesh off (validate_paths_mesh: false)"
                % (namespace, res.get("pod") or "<probe>"),
                where=res.get("node") or "", cli="kubectl -n %s describe pod %s" % (namespace, res.get("pod") or ""),
                src_node=res.get("node"), pod=res.get("pod"), outcome=res.get("outcome")))
    denied_ok = [r for r in rows if r.get("netpol") and r["ok"]]
    denied_blocked = [r for r in rows if r.get("netpol") and not r["ok"]]
    # a policy that lets some denied cell through is not enforced: its other denied cells are judged as the network
    judged = [r for r in rows if not r.get("netpol") or denied_ok]
    if denied_ok:
        denied_blocked = []
    groups = {}
    for r in judged:
        if r["ok"]:
            continue
        if r["kind"] == "pod":
            key = ("pod", r["src_node"], r["dst_node"], r["proto"])
        else:
            key = (r["kind"], r["src_node"], r["dst"], r["proto"])
        groups.setdefault(key, []).append(r)
    for key in sorted(groups):
        cells = groups[key]
        first = cells[0]
        kind, src_node = key[0], key[1]
        if kind == "pod":
            dst_node, proto = key[2], key[3]
            same = src_node == dst_node
            where = "pods on %s -> pods on %s" % (src_node, dst_node)
            out.append(finding(
                "POD_PATH_BLOCKED", "%s/%d: %d of the probe pod pair(s) got no connection: %s"
                % (proto, first["port"], len(cells), _cells_text(cells)),
                ("pods on the same node cannot reach each other: the node's pod networking (CNI, veth, local "
                 "routes) drops it" if same else
                 "pods on %s cannot reach pods on %s, so any workload split across these nodes fails"
                 % (src_node, dst_node)),
                "compare with the node-to-node matrix for %s -> %s (the encapsulation the Calico pool uses must "
                "pass between the nodes); on both nodes: kubectl -n calico-system get pods -o wide; "
                "sudo iptables -S | grep -E 'DROP|REJECT'" % (src_node, dst_node),
                where=where, cli="kubectl -n calico-system get pods -o wide --field-selector spec.nodeName=%s"
                % dst_node, src_node=src_node, dst_node=dst_node, protocol=proto, port=first["port"],
                same_node=same, cells=len(cells), pods=sorted({c["src_pod"] for c in cells}),
                probe_status=_status_of(cells)))
        elif kind == "service":
            out.append(finding(
                "SERVICE_PATH_BLOCKED", "%s/%d to Service %s (%s) from probe pods on %s: %s"
                % (first["proto"], first["port"], first.get("service") or "?", first["dst"], src_node,
                   _cells_text(cells)),
                "pods on %s cannot reach a ClusterIP Service: kube-proxy's DNAT leads to a backend pod they cannot "
                "reach, or no DNAT happens" % src_node,
                "on %s: sudo iptables -t nat -S KUBE-SERVICES | grep %s (kube-proxy's rules); kubectl -n kube-system "
                "get pods -l k8s-app=kube-proxy -o wide; compare with the pod cells towards the nodes running the "
                "Service's pods" % (src_node, first["dst"].rsplit(":", 1)[0]),
                where="pods on %s -> Service %s" % (src_node, first.get("service") or first["dst"]),
                cli="kubectl -n kube-system get pods -l k8s-app=kube-proxy -o wide --field-selector spec.nodeName=%s"
                % src_node,
                src_node=src_node, service=first.get("service") or "", protocol=first["proto"], port=first["port"],
                endpoint_nodes=sorted(set(endpoint_nodes)), dst_nodes=sorted(set(endpoint_nodes)),
                cells=len(cells), probe_status=_status_of(cells)))
        else:
            out.append(finding(
                "EGRESS_BLOCKED", "%s/%d to %s from probe pods on %s: %s"
                % (first["proto"], first["port"], first["dst"], src_node, _cells_text(cells)),
                "pods on %s cannot reach addresses outside the cluster: image pulls from pods, webhooks and "
                "external APIs fail" % src_node,
                "check the pod traffic is NATed to the node address (Calico IPPool natOutgoing: true: kubectl get "
                "ippools.crd.projectcalico.org -o yaml), the node's route to the internet (subnet route table: NAT "
                "or internet gateway) and the node security group's egress rules",
                where="pods on %s -> %s" % (src_node, first["dst"]), cli=EGRESS_CLI, src_node=src_node,
                target=first["dst"],
                protocol=first["proto"], port=first["port"], cells=len(cells)))
    if denied_ok:
        policies = sorted({p for r in denied_ok for p in r["netpol"]["deciding"]})
        out.append(finding(
            "NETPOL_NOT_ENFORCED", "NetworkPolicies are not enforced here (the CNI does not implement them): %d mesh "
            "cell(s) connected although %s deny them, e.g. %s" % (len(denied_ok), ", ".join(policies) or "a policy",
                                                                  _cells_text(denied_ok, 1)),
            "the cluster has NetworkPolicies that would isolate these pods, but the network plugin does not apply "
            "them: the isolation they describe does not exist",
            "use a network plugin that enforces NetworkPolicy (Calico does: check calico-node runs on every node, "
            "kubectl -n calico-system get pods), or drop the policies that are not meant to apply",
            severity=WARNING, where="namespace %s" % namespace, policies=policies, cells=len(denied_ok)))
    if denied_blocked:
        policies = sorted({p for r in denied_blocked for p in r["netpol"]["deciding"]})
        out.append(finding(
            "MESH_NETPOL_DENIED", "%d mesh cell(s) blocked as NetworkPolicies %s say, e.g. %s"
            % (len(denied_blocked), ", ".join(policies) or "?", _cells_text(denied_blocked, 1)),
            "the policies select the mesh probe pods, so these cells show the policies at work and nothing "
            "about the network",
            "run the mesh in a namespace no NetworkPolicy selects (validate_paths_mesh_namespace)",
            severity=WARNING, where="namespace %s" % namespace, policies=policies, cells=len(denied_blocked)))
    return out


def check_result(rows, found, pod_results):
    """The ``paths`` check result (CONTRACT shape) of the mesh alone: evidence {mesh, paths: []}."""
    failed = [r for r in rows if not r["ok"]]
    errors = [f for f in found if f["severity"] == "error"]
    ran = sum(1 for r in pod_results if r.get("outcome") == "finished")
    msg = "paths: pod mesh of %d probe pod(s): %d of %d cell(s) blocked" % (ran, len(failed), len(rows))
    if len(pod_results) > ran:
        msg += ", %d probe pod(s) did not report" % (len(pod_results) - ran)
    return {"status": "failed" if errors else "passed", "msg": msg, "findings": found,
            "evidence": {"mesh": rows, "paths": []}}


def combine(paths_result, mesh_result):
    """One ``paths`` check result from the app paths' result and the mesh's (either may be None).

    NETPOL_NOT_ENFORCED appears once (its observations joined): both say the same thing."""
    parts = [r for r in (paths_result, mesh_result) if r]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    found, seen = [], None
    for r in parts:
        for f in r.get("findings") or []:
            if f["id"] == "NETPOL_NOT_ENFORCED":
                if seen is not None:
                    seen["observed"] += "; " + f["observed"]
                    continue
                f = dict(f)
                seen = f
            found.append(f)
    evidence = {"mesh": list((mesh_result.get("evidence") or {}).get("mesh") or []),
                "paths": list((paths_result.get("evidence") or {}).get("paths") or [])}
    statuses = [r.get("status") for r in parts]
    status = "failed" if "failed" in statuses else "skipped" if set(statuses) == {"skipped"} else "passed"
    return {"status": status, "msg": "; ".join(r.get("msg") or "" for r in parts if r.get("msg")),
            "findings": found, "evidence": evidence}
