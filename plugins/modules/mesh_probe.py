#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: mesh_probe
short_description: The live pod mesh, one probe pod per node connecting to every other
version_added: "0.3.0"
description:
  - Starts one probe pod per node (pinned by C(nodeName), every toleration) that listens on a TCP and a UDP
    port. Once all run, the targets are written into the pods' annotation C(kubeadm-ec2/mesh-peers), which a
    downwardAPI volume exposes to them (the kubelet refreshes it). Each pod connects to every other probe pod
    (TCP and UDP, same node and across nodes), to the kube-dns ClusterIP on TCP 53 (the Service path through
    kube-proxy) and to I(external) (egress and NAT).
  - Each pod turns Ready when its connects are done and exits with its results in its termination message
    when the stop annotation is set, so no kubelet port (10250) is needed. Every wait is bounded and the
    probe pods are always deleted, also on failure or timeout. Check mode starts none.
  - Returns the C(paths) check result with the pod-level matrix in C(evidence.mesh).
extends_documentation_fragment:
  - kubeadm_ec2.cluster.k8s_auth
author:
  - kubeadm_ec2 maintainers (@kubeadm-ec2)
options:
  external:
    description: C(host:port) outside the cluster every probe pod connects to (TCP); empty skips it.
    type: str
    default: kubernetes.io:443
  probe_nodes:
    description: Nodes to start probe pods on; default every node.
    type: list
    elements: str
    default: []
  pods_per_node:
    description: Probe pods per node; 2 or more add same-node pod-to-pod cells.
    type: int
    default: 1
  probe_image:
    description: A small multi-arch image with busybox C(sh), C(nc), C(udpsvd) and C(timeout).
    type: str
    default: docker.io/library/busybox:1.36.1
  probe_namespace:
    description: Namespace of the probe pods (best one that no NetworkPolicy selects).
    type: str
    default: default
  dns_namespace:
    description: Namespace of the cluster DNS Service.
    type: str
    default: kube-system
  dns_service:
    description: The cluster DNS Service whose ClusterIP the pods connect to on TCP 53; empty skips the Service.
    type: str
    default: kube-dns
  connect_timeout:
    description: Seconds each connect (and each UDP answer) may take inside the pods.
    type: float
    default: 2.0
  start_timeout:
    description: Seconds to wait for every probe pod to run.
    type: float
    default: 60.0
  probe_timeout:
    description: Seconds to wait, once the targets are written, for every pod to finish its connects.
    type: float
    default: 60.0
  stop_timeout:
    description: Seconds to wait, once the stop annotation is set, for every pod to exit with its results.
    type: float
    default: 30.0
requirements:
  - kubernetes
notes:
  - Check mode starts no probe pod and returns a skipped result.
"""

EXAMPLES = r"""
- name: Pod-to-pod, pod-to-Service and egress from one probe pod per node
  kubeadm_ec2.cluster.mesh_probe:
    kubeconfig: ~/.kube/config
    external: kubernetes.io:443
  delegate_to: localhost
  run_once: true
  register: mesh
"""

RETURN = r"""
check:
  description: The C(paths) check result, C(evidence.mesh) holding one row per cell.
  returned: always
  type: dict
  sample:
    status: failed
    msg: "paths: pod mesh of 3 probe pod(s): 12 of 21 cell(s) blocked"
    findings: [{id: POD_PATH_BLOCKED, severity: error, where: pods on node1 -> pods on node2}]
    evidence:
      mesh: [{src_pod: mesh-probe-node1-x7k2p, src_node: node1, dst: "192.168.2.20:7946", dst_pod: mesh-probe-node2-a1b2c,
              dst_node: node2, kind: pod, proto: tcp, port: 7946, ok: false, reason: connect timed out after 2.0s}]
      paths: []
pod_results:
  description: One entry per probe pod (pod, node, ip, outcome finished/failed/timeout, detail).
  returned: always
  type: list
  elements: dict
cleanup_errors:
  description: Probe pods that could not be deleted (normally empty).
  returned: always
  type: list
  elements: str
elapsed:
  description: Seconds the mesh took, and when each stage ended (timings).
  returned: always
  type: float
timings:
  description: Seconds from the start until all pods ran, all probed, all finished.
  returned: always
  type: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import mesh
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes import k8s
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes.mesh_k8s import read_state, run_mesh


def _service(state, p):
    svc = state.get("service") or {}
    ip = (svc.get("spec") or {}).get("clusterIP")
    if not ip or ip == "None":
        return None
    return {"ip": ip, "port": 53, "name": "%s/%s" % (p["dns_namespace"], p["dns_service"])}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            k8s.AUTH_ARGUMENT_SPEC,
            external=dict(type="str", default="kubernetes.io:443"),
            probe_nodes=dict(type="list", elements="str", default=[]),
            pods_per_node=dict(type="int", default=1),
            probe_image=dict(type="str", default="docker.io/library/busybox:1.36.1"),
            probe_namespace=dict(type="str", default="default"),
            dns_namespace=dict(type="str", default="kube-system"),
            dns_service=dict(type="str", default="kube-dns"),
            connect_timeout=dict(type="float", default=2.0),
            start_timeout=dict(type="float", default=60.0),
            probe_timeout=dict(type="float", default=60.0),
            stop_timeout=dict(type="float", default=30.0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    for name in ("connect_timeout", "start_timeout", "probe_timeout", "stop_timeout"):
        if p[name] <= 0:
            module.fail_json(msg="%s must be > 0 (got %s)" % (name, p[name]))
    if not 1 <= p["pods_per_node"] <= 4:
        module.fail_json(msg="pods_per_node must be 1 to 4 (got %s)" % p["pods_per_node"])
    try:
        external = mesh.parse_external(p["external"])
    except ValueError as exc:
        module.fail_json(msg="external: %s" % exc)
    if module.check_mode:
        module.exit_json(changed=False, pod_results=[], cleanup_errors=[], elapsed=0.0, timings={},
                         check={"status": "skipped", "msg": "paths: check mode, no mesh probe pod started",
                                "findings": [], "evidence": {"mesh": [], "paths": []}})
    api = k8s.module_api(module, "mesh_probe")
    started = time.monotonic()
    try:
        state = read_state(api, p)
        service = _service(state, p)
        results, tlist, cleanup, timings = run_mesh(
            api, dict(p, _nodes=state["nodes"]), lambda running: mesh.targets(running, service, external))
    except k8s.K8sError as exc:
        module.fail_json(msg="mesh_probe: %s" % exc, elapsed=round(time.monotonic() - started, 3))
    policy_state = {"network_policies": state["network_policies"], "namespaces": state["namespaces"],
                    "pods": state["service_pods"], "service": state.get("service")}
    rows = mesh.matrix(results, tlist, p["connect_timeout"], policy_state)
    found = mesh.findings(rows, results, p["probe_namespace"], state["endpoint_nodes"], external)
    out = [dict((k, v) for k, v in r.items() if k != "object") for r in results]
    module.exit_json(changed=False, check=mesh.check_result(rows, found, results), pod_results=out,
                     cleanup_errors=cleanup, elapsed=round(time.monotonic() - started, 3), timings=timings)


if __name__ == "__main__":
    main()
