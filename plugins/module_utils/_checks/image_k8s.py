# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes reads for the image architecture check (the I/O side).

Uses the official ``kubernetes`` client with ``_preload_content=False`` so the
objects stay the plain API JSON that ``_checks/image.py`` also reads from
manifest files. Every request has a timeout.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils._checks.arch import normalize_arch

try:
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - reported by the module
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = _exc


class ClusterReader:
    """Lists nodes, workloads, pods and events as plain dicts."""

    def __init__(self, kubeconfig=None, context=None, timeout=10.0):
        self.api = k8s_config.new_client_from_config(config_file=kubeconfig, context=context)
        self.timeout = timeout
        self.core = k8s_client.CoreV1Api(self.api)
        self.apps = k8s_client.AppsV1Api(self.api)
        self.batch = k8s_client.BatchV1Api(self.api)

    def _items(self, all_ns, namespaced, namespaces):
        kwargs = {"_preload_content": False, "_request_timeout": self.timeout}
        calls = [lambda: all_ns(**kwargs)] if not namespaces else [
            (lambda ns=ns: namespaced(ns, **kwargs)) for ns in namespaces]
        out = []
        for call in calls:
            data = json.loads(call().data.decode("utf-8"))
            kind = (data.get("kind") or "").replace("List", "")
            for item in data.get("items") or []:
                item.setdefault("kind", kind)
                out.append(item)
        return out

    def nodes(self):
        resp = self.core.list_node(_preload_content=False, _request_timeout=self.timeout)
        return json.loads(resp.data.decode("utf-8")).get("items") or []

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
        for kind, all_ns, namespaced in (
                ("Deployment", self.apps.list_deployment_for_all_namespaces, self.apps.list_namespaced_deployment),
                ("StatefulSet", self.apps.list_stateful_set_for_all_namespaces,
                 self.apps.list_namespaced_stateful_set),
                ("DaemonSet", self.apps.list_daemon_set_for_all_namespaces, self.apps.list_namespaced_daemon_set),
                ("ReplicaSet", self.apps.list_replica_set_for_all_namespaces,
                 self.apps.list_namespaced_replica_set),
                ("Job", self.batch.list_job_for_all_namespaces, self.batch.list_namespaced_job),
                ("CronJob", self.batch.list_cron_job_for_all_namespaces, self.batch.list_namespaced_cron_job),
                ("Pod", self.core.list_pod_for_all_namespaces, self.core.list_namespaced_pod)):
            for item in self._items(all_ns, namespaced, namespaces):
                item["kind"] = kind
                out.append(item)
        return out

    def pods(self, namespaces=None):
        return [dict(p, kind="Pod") for p in self._items(self.core.list_pod_for_all_namespaces,
                                                         self.core.list_namespaced_pod, namespaces)]

    def events(self, namespaces=None):
        return self._items(self.core.list_event_for_all_namespaces, self.core.list_namespaced_event, namespaces)
