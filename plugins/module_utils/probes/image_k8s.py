# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes reads for the image architecture check (the I/O side).

Raw REST calls by path through ``module_utils/probes/k8s.py`` (the shared client helper), so the
objects stay the plain API JSON that ``_checks/image.py`` also reads from manifest files, and
no typed API class is imported (in recent ``kubernetes`` releases that import alone costs
seconds). Every request has a timeout.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.arch import normalize_arch
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.image import (
    is_probe_pod,
    without_probe_events,
)
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes.k8s import (  # noqa: F401
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    K8s,
    api_client,
)

# HAS_KUBERNETES / KUBERNETES_IMPORT_ERROR are re-exported for the module's dependency check
__all__ = ["ClusterReader", "HAS_KUBERNETES", "KUBERNETES_IMPORT_ERROR", "WORKLOAD_KINDS", "is_probe_pod"]

# kind -> (API prefix, plural) of everything the check reads
_PATHS = {
    "Deployment": ("/apis/apps/v1", "deployments"),
    "StatefulSet": ("/apis/apps/v1", "statefulsets"),
    "DaemonSet": ("/apis/apps/v1", "daemonsets"),
    "ReplicaSet": ("/apis/apps/v1", "replicasets"),
    "Job": ("/apis/batch/v1", "jobs"),
    "CronJob": ("/apis/batch/v1", "cronjobs"),
    "Pod": ("/api/v1", "pods"),
    "Event": ("/api/v1", "events"),
}
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")


class ClusterReader:
    """Lists nodes, workloads, pods and events as plain dicts, without the collection's probe pods
    (analysis/image.py ``is_probe_pod``) and the events about them (``without_probe_events``)."""

    listed_pods = None  # every pod listed so far, probe pods included (what events are judged against)

    def __init__(self, kubeconfig=None, context=None, timeout=10.0):
        self.k8s = K8s(api_client(kubeconfig, context), timeout)
        self.timeout = timeout

    def _items(self, kind, namespaces):
        prefix, plural = _PATHS[kind]
        paths = ["%s/%s" % (prefix, plural)] if not namespaces else [
            "%s/namespaces/%s/%s" % (prefix, ns, plural) for ns in namespaces]
        out = []
        if kind == "Pod" and self.listed_pods is None:
            self.listed_pods = []
        for path in paths:
            for item in self.k8s.list(path, "list %s" % plural):
                if kind == "Pod":
                    self.listed_pods.append(item)
                    if is_probe_pod(item):
                        continue
                item["kind"] = kind
                out.append(item)
        return out

    def nodes(self):
        return self.k8s.list("/api/v1/nodes", "list nodes")

    def node_arches(self):
        """{architecture: [node names]} from status.nodeInfo.architecture (label as fallback)."""
        out = {}
        for node in self.nodes():
            meta = node.get("metadata") or {}
            arch = ((node.get("status") or {}).get("nodeInfo") or {}).get("architecture") \
                or (meta.get("labels") or {}).get("kubernetes.io/arch")
            if not arch:
                continue
            out.setdefault(normalize_arch(arch), []).append(meta.get("name"))
        return out

    def workload_objects(self, namespaces=None):
        out = []
        for kind in WORKLOAD_KINDS:
            out.extend(self._items(kind, namespaces))
        return out

    def pods(self, namespaces=None):
        return self._items("Pod", namespaces)

    def events(self, namespaces=None):
        """The events of ``namespaces``, less those about probe pods (the pods are listed first when they
        have not been)."""
        if self.listed_pods is None:
            self.pods(namespaces)
        return without_probe_events(self._items("Event", namespaces), self.listed_pods)
