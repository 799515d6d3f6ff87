# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cluster I/O of the paths check: the objects the static verdicts need, and the probe pods.

* ``read_objects(api)``: namespaces, pods, Services, EndpointSlices, NetworkPolicies and workloads as
  API JSON (through ``probes/k8s.py``);
* ``run_probes(api, pods, timeout)``: create one probe pod per path, wait (bounded) for each to
  terminate, read its termination message, and always delete every pod created.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import paths as pathcheck
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes.k8s import AUTH_ARGUMENT_SPEC, K8sError

READS = (
    ("namespaces", "/api/v1/namespaces"),
    ("pods", "/api/v1/pods"),
    ("services", "/api/v1/services"),
    ("endpointslices", "/apis/discovery.k8s.io/v1/endpointslices"),
    ("network_policies", "/apis/networking.k8s.io/v1/networkpolicies"),
    ("deployments", "/apis/apps/v1/deployments"),
    ("statefulsets", "/apis/apps/v1/statefulsets"),
    ("daemonsets", "/apis/apps/v1/daemonsets"),
)
# The options paths_check and paths_probe share (the paths and how to reach the API).
ARGUMENT_SPEC = dict(
    AUTH_ARGUMENT_SPEC,
    # raw: the analysis checks the shape and names the variable (a list of mappings), where type=list would
    # turn a string into a one-item list and reject a mapping without naming it
    paths=dict(type="raw", required=True),
    paths_var=dict(type="str", default="paths"),
    cluster_domain=dict(type="str", default="cluster.local"),
)
FATAL_WAITING = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
                 "CreateContainerError", "RunContainerError")


def read_objects(api):
    return {key: api.list(path, "list %s" % key) for key, path in READS}


def pod_outcome(pod):
    """(outcome, detail, results) of a probe pod's API JSON, or None while it still runs."""
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    state = ((status.get("containerStatuses") or [{}])[0]).get("state") or {}
    if phase in ("Succeeded", "Failed") or state.get("terminated"):
        term = state.get("terminated") or {}
        message = term.get("message") or ""
        try:
            return "finished", phase, pathcheck.parse_probe_message(message)
        except ValueError:
            return "failed", "%s (%s, exit %s): %s" % (phase, term.get("reason") or "terminated", term.get("exitCode"),
                                                       message.strip()[:300] or "no termination message"), {}
    waiting = state.get("waiting") or {}
    if waiting.get("reason") in FATAL_WAITING:
        return "failed", "%s: %s" % (waiting["reason"], waiting.get("message") or ""), {}
    return None


def run_probes(api, manifests, run_id, timeout):
    """Create every manifest ({index: pod}), wait up to ``timeout`` seconds, delete them all.

    Returns ({index: {pod, node, outcome, detail, results}}, [cleanup errors]); node is where the pod was
    scheduled ("" if it never was)."""
    created, results, cleanup = {}, {}, []
    deadline = time.monotonic() + timeout
    try:
        for index, manifest in sorted(manifests.items()):
            ns = manifest["metadata"]["namespace"]
            pod = api.request("POST", "/api/v1/namespaces/%s/pods" % ns, "create path probe pod in %s" % ns,
                              body=manifest)
            created[(ns, pod["metadata"]["name"])] = index
        pending = dict(created)
        last = {}
        while pending:
            for ns in sorted({k[0] for k in pending}):
                for pod in api.list("/api/v1/namespaces/%s/pods" % ns, "list path probe pods",
                                    labelSelector="kubeadm-ec2/path-probe-run=%s" % run_id):
                    key = (ns, pod["metadata"]["name"])
                    if key not in pending:
                        continue
                    last[key] = pod
                    outcome = pod_outcome(pod)
                    if outcome:
                        results[pending.pop(key)] = {"pod": "%s/%s" % key, "outcome": outcome[0],
                                                     "detail": outcome[1], "results": outcome[2],
                                                     "node": (pod.get("spec") or {}).get("nodeName") or ""}
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
        for key, index in pending.items():
            phase = ((last.get(key) or {}).get("status") or {}).get("phase") or "unknown"
            results[index] = {"pod": "%s/%s" % key, "outcome": "timeout", "results": {},
                              "node": ((last.get(key) or {}).get("spec") or {}).get("nodeName") or "",
                              "detail": "did not finish within %.0fs (phase %s)" % (timeout, phase)}
    finally:
        for (ns, name) in created:
            try:
                api.request("DELETE", "/api/v1/namespaces/%s/pods/%s" % (ns, name), "delete path probe pod %s/%s"
                            % (ns, name), query={"gracePeriodSeconds": 0})
            except K8sError as exc:
                if exc.status != 404:
                    cleanup.append(str(exc))
    return results, cleanup
