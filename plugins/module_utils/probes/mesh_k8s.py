# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The live pod mesh through the Kubernetes API (the I/O of the mesh_probe module).

``read_state(api, p)``: nodes, the kube-dns Service and the nodes of its endpoints, and what the
NetworkPolicy engine needs (policies, namespaces, the CoreDNS pods).

``run_mesh(api, p, tlist_fn)``: one probe pod per node (``pods_per_node``), pinned by nodeName, then
  1. wait (bounded by ``start_timeout``) until each runs with a pod IP and has started (its startupProbe
     saw its listeners answer), or fails;
  2. write the targets into every running pod's annotation (analysis/mesh.py PEERS_ANNOTATION), which a
     downwardAPI volume exposes to the pod;
  3. wait (bounded by ``probe_timeout``) until every pod is Ready (its connects are done) or ends;
  4. set the stop annotation and wait (bounded by ``stop_timeout``) for the termination messages;
and ALWAYS delete every pod created, on success, failure, timeout or an API error.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time
import uuid

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import mesh
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes.k8s import FATAL_WAITING, delete_pods


def read_state(api, p):
    """The cluster objects the mesh needs, as the API serves them."""
    ns, name = p["dns_namespace"], p["dns_service"]
    service, slices, service_pods = None, [], []
    if name:
        service = api.read("/api/v1/namespaces/%s/services/%s" % (ns, name), "read service %s/%s" % (ns, name))
        slices = api.list("/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices" % ns,
                          "list %s EndpointSlices" % name, labelSelector="kubernetes.io/service-name=%s" % name)
        selector = ((service or {}).get("spec") or {}).get("selector") or {}
        if selector:
            service_pods = api.list("/api/v1/namespaces/%s/pods" % ns, "list %s pods" % name,
                                    labelSelector=",".join("%s=%s" % kv for kv in sorted(selector.items())))
    endpoint_nodes = sorted({e.get("nodeName") for s in slices for e in s.get("endpoints") or []
                             if e.get("nodeName") and (e.get("conditions") or {}).get("ready", True)})
    return {
        "nodes": [n["metadata"]["name"] for n in api.list("/api/v1/nodes", "list nodes")],
        "service": service,
        "endpoint_nodes": endpoint_nodes,
        "network_policies": api.list("/apis/networking.k8s.io/v1/networkpolicies", "list NetworkPolicies"),
        "namespaces": api.list("/api/v1/namespaces", "list namespaces"),
        "service_pods": service_pods,
    }


def _container_state(pod):
    status = pod.get("status") or {}
    return status, ((status.get("containerStatuses") or [{}])[0]).get("state") or {}


def _ended(pod):
    """(outcome, detail, letters) once the pod ended or cannot start, else None."""
    status, state = _container_state(pod)
    phase = status.get("phase") or "Pending"
    if phase in ("Succeeded", "Failed") or state.get("terminated"):
        term = state.get("terminated") or {}
        message = term.get("message") or ""
        try:
            return "finished", phase, mesh.parse_probe_message(message)
        except ValueError as exc:
            return "failed", "%s (%s, exit %s): %s" % (phase, term.get("reason") or "terminated", term.get("exitCode"),
                                                       message.strip()[:300] or str(exc)), ""
    waiting = state.get("waiting") or {}
    if waiting.get("reason") in FATAL_WAITING:
        return "failed", "%s: %s" % (waiting["reason"], waiting.get("message") or ""), ""
    return None


def _ready(pod):
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _waiting_text(pod):
    status, state = _container_state(pod)
    waiting = (state.get("waiting") or {}).get("reason")
    return "phase %s%s" % (status.get("phase") or "unknown", ", waiting: %s" % waiting if waiting else "")


class _Run:
    def __init__(self, api, ns, run_id):
        self.api, self.ns, self.run_id = api, ns, run_id
        self.pods = {}  # name -> {pod, node, ip, outcome, detail, letters, object}

    def list(self):
        return [p for p in self.api.list("/api/v1/namespaces/%s/pods" % self.ns, "list mesh probe pods",
                                         labelSelector="%s=%s" % (mesh.RUN_LABEL, self.run_id))
                if p["metadata"]["name"] in self.pods]

    def wait(self, deadline, done):
        """Poll until ``done(pod)`` holds for every pod still open (no outcome), or the deadline."""
        while True:
            for pod in self.list():
                rec = self.pods[pod["metadata"]["name"]]
                if rec["outcome"]:
                    continue
                rec["object"] = pod
                rec["ip"] = rec["ip"] or (pod.get("status") or {}).get("podIP") or ""
                ended = _ended(pod)
                if ended and (ended[0] == "failed" or done is _finished):
                    rec["outcome"], rec["detail"], rec["letters"] = ended
                elif ended:
                    rec["outcome"], rec["detail"], rec["letters"] = "failed", "ended early: %s" % ended[1], ""
                elif done(pod):
                    rec["pass"] = True
            open_ = [r for r in self.pods.values() if not r["outcome"] and not r.get("pass")]
            if not open_ or time.monotonic() >= deadline:
                for r in self.pods.values():
                    r.pop("pass", None)
                return open_
            time.sleep(min(0.5, max(0.05, deadline - time.monotonic())))

    def annotate(self, names, key, value):
        for name in names:
            self.api.request("PATCH", "/api/v1/namespaces/%s/pods/%s" % (self.ns, name),
                             "annotate mesh probe pod %s/%s" % (self.ns, name),
                             body={"metadata": {"annotations": {key: value}}})


def _running(pod):
    """Running with a pod IP, and started: its startupProbe saw both listeners answer."""
    status, state = _container_state(pod)
    cstat = (status.get("containerStatuses") or [{}])[0]
    return status.get("phase") == "Running" and bool(status.get("podIP")) and "running" in state and \
        cstat.get("started", True) is True


def _finished(pod):
    return False  # only an end counts


def run_mesh(api, p, tlist_fn):
    """Start, feed, collect and delete the mesh's probe pods.

    ``tlist_fn(running)`` -> the target list for the running pods ([{pod, node, ip}]). Returns
    (pod results [{pod, node, ip, outcome, detail, letters, object}], targets, cleanup errors, timings)."""
    nodes = p["probe_nodes"] or p["_nodes"]
    ns = p["probe_namespace"]
    run = _Run(api, ns, uuid.uuid4().hex[:8])
    tlist, timings = [], {}
    started = time.monotonic()
    linger = int(p["start_timeout"] + p["probe_timeout"] + p["stop_timeout"])
    try:
        for node in nodes:
            for k in range(p["pods_per_node"]):
                manifest = mesh.probe_pod_manifest(node, k, p["probe_image"], ns, run.run_id, p["connect_timeout"],
                                                   linger)
                pod = api.request("POST", "/api/v1/namespaces/%s/pods" % ns, "create mesh probe pod on %s" % node,
                                  body=manifest)
                run.pods[pod["metadata"]["name"]] = {"pod": pod["metadata"]["name"], "node": node, "ip": "",
                                                     "outcome": "", "detail": "", "letters": "", "object": pod}
        # 1. running, with a pod IP
        for rec in run.wait(started + p["start_timeout"], _running):
            rec["outcome"], rec["detail"] = "timeout", "not running within %.0fs (%s)" % (
                p["start_timeout"], _waiting_text(rec["object"]))
        timings["running"] = round(time.monotonic() - started, 3)
        live = [r for r in run.pods.values() if not r["outcome"]]
        if live:
            # 2. the targets, through the annotation the downwardAPI volume exposes
            tlist = tlist_fn([{"pod": r["pod"], "node": r["node"], "ip": r["ip"]} for r in live])
            run.annotate([r["pod"] for r in live], mesh.PEERS_ANNOTATION, mesh.peers_text(tlist))
            # 3. every pod Ready: its own connects are done (the others still listen)
            t3 = time.monotonic()
            late = run.wait(t3 + p["probe_timeout"], _ready)
            timings["probed"] = round(time.monotonic() - started, 3)
            # 4. stop: the pods exit with their results in the termination message
            live = [r for r in run.pods.values() if not r["outcome"]]
            run.annotate([r["pod"] for r in live], mesh.STOP_ANNOTATION, "1")
            for rec in run.wait(time.monotonic() + p["stop_timeout"], _finished):
                rec["outcome"] = "timeout"
                if rec in late:
                    rec["detail"] = "did not finish its connects within %.0fs (%s)" % (
                        p["probe_timeout"], _waiting_text(rec["object"]))
                else:
                    rec["detail"] = "did not exit within %.0fs of the stop annotation (%s)" % (
                        p["stop_timeout"], _waiting_text(rec["object"]))
            timings["finished"] = round(time.monotonic() - started, 3)
    finally:
        cleanup = delete_pods(api, ns, list(run.pods), "mesh probe pod")
    order = dict((n, i) for i, n in enumerate(nodes))
    results = sorted(run.pods.values(), key=lambda r: (order.get(r["node"], 0), r["pod"]))
    return results, tlist, cleanup, timings
