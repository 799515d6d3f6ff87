# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cluster DNS through the Kubernetes API: the objects the DNS analysis reads, and the probe pods.

* ``read_cluster(api, p)``: CoreDNS pods, the kube-dns Service and EndpointSlices, the coredns
  ConfigMap, nodes, namespaces, pods, Services and NetworkPolicies, as the API serves them;
* ``run_pods(p, api, plan)``: one short-lived probe pod per node (pinned by nodeName) that resolves
  the planned names and reports through its termination message (served by the API even when the
  kubelet port is unreachable); the wait is bounded and the pods are always deleted.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time
import uuid

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import dns as dnscheck
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes.k8s import FATAL_WAITING, delete_pods


# -- cluster state ------------------------------------------------------------------------------
def read_cluster(api, p):
    """The DNS-relevant objects as the API serves them (``p``: the dns_cluster_info settings)."""
    ns = p["dns_namespace"]
    return {
        "dns_service": api.read("/api/v1/namespaces/%s/services/%s" % (ns, p["dns_service"]),
                                "read service %s/%s" % (ns, p["dns_service"])),
        "coredns_configmap": api.read("/api/v1/namespaces/%s/configmaps/%s" % (ns, p["coredns_configmap"]),
                                      "read configmap %s/%s" % (ns, p["coredns_configmap"])),
        "coredns_pods": api.list("/api/v1/namespaces/%s/pods" % ns, "list CoreDNS pods",
                                 labelSelector="k8s-app=kube-dns"),
        "dns_slices": api.list("/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices" % ns,
                               "list kube-dns EndpointSlices",
                               labelSelector="kubernetes.io/service-name=%s" % p["dns_service"]),
        "nodes": api.list("/api/v1/nodes", "list nodes"),
        "namespaces": api.list("/api/v1/namespaces", "list namespaces"),
        "pods": api.list("/api/v1/pods", "list pods"),
        "services": api.list("/api/v1/services", "list services"),
        "network_policies": api.list("/apis/networking.k8s.io/v1/networkpolicies", "list NetworkPolicies"),
    }


# -- pod path -------------------------------------------------------------------------------------
def _pod_outcome(pod):
    """(outcome, detail, results) for a pod's API JSON, or None while it is still running."""
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    cstat = (status.get("containerStatuses") or [{}])[0]
    state = cstat.get("state") or {}
    if phase in ("Succeeded", "Failed") or state.get("terminated"):
        term = state.get("terminated") or {}
        message = term.get("message") or ""
        try:
            return "finished", phase, dnscheck.parse_probe_message(message)
        except ValueError:
            detail = "%s (%s, exit %s): %s" % (phase, term.get("reason") or "terminated", term.get("exitCode"),
                                               message.strip()[:300] or "no termination message")
            return "failed", detail, []
    waiting = (state.get("waiting") or {}).get("reason")
    if waiting in FATAL_WAITING:
        return "failed", "%s: %s" % (waiting, (state.get("waiting") or {}).get("message") or ""), []
    return None


def run_pods(p, api, plan):
    """One probe pod per node (nodeName), results from the termination messages, bounded wait, always deleted.

    ``p``: names of the settings as the dns_probe_pods module takes them. Returns (pod results, cleanup errors).
    """
    nodes = p["probe_nodes"] or [n["metadata"]["name"] for n in api.list("/api/v1/nodes", "list nodes")]
    run_id = uuid.uuid4().hex[:8]
    ns = p["probe_namespace"]
    created, results = {}, {}
    deadline = time.monotonic() + p["probe_timeout"]
    last_seen = {}
    try:
        for node in nodes:
            manifest = dnscheck.probe_pod_manifest(node, plan, p["probe_image"], ns, p["timeout"])
            manifest["metadata"]["labels"]["kubeadm-ec2/dns-probe-run"] = run_id
            pod = api.request("POST", "/api/v1/namespaces/%s/pods" % ns, "create probe pod on %s" % node,
                              body=manifest)
            created[pod["metadata"]["name"]] = node
        pending = dict(created)
        delay = 0.2  # the pods finish within a few seconds: poll soon, then four times a second
        while pending:
            listed = api.list("/api/v1/namespaces/%s/pods" % ns, "list probe pods",
                              labelSelector="kubeadm-ec2/dns-probe-run=%s" % run_id)
            for pod in listed:
                name = pod["metadata"]["name"]
                if name not in pending:
                    continue
                last_seen[name] = pod
                outcome = _pod_outcome(pod)
                if outcome:
                    results[name] = {"node": pending.pop(name), "pod": name, "outcome": outcome[0],
                                     "detail": outcome[1], "results": outcome[2], "image": p["probe_image"]}
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(min(delay, max(0.05, deadline - time.monotonic())))
            delay = min(0.25, delay * 1.5)
        for name, node in pending.items():
            status = (last_seen.get(name) or {}).get("status") or {}
            cstat = (status.get("containerStatuses") or [{}])[0]
            waiting = ((cstat.get("state") or {}).get("waiting") or {}).get("reason")
            detail = "did not finish within %.0fs (phase %s%s)" % (
                p["probe_timeout"], status.get("phase") or "unknown", ", waiting: %s" % waiting if waiting else "")
            results[name] = {"node": node, "pod": name, "outcome": "timeout", "detail": detail, "results": [],
                             "image": p["probe_image"]}
    finally:
        cleanup_errors = delete_pods(api, ns, list(created))
    order = {n: i for i, n in enumerate(nodes)}
    return sorted(results.values(), key=lambda r: order.get(r["node"], 0)), cleanup_errors
