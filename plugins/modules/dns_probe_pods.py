#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: dns_probe_pods
short_description: Resolve cluster names from one short-lived probe pod per node
version_added: "0.2.0"
description:
  - Starts one probe pod per node (pinned by C(nodeName)) that resolves C(kubernetes.default), the given
    service names and an external name through the cluster DNS, and reports through its termination
    message, which the API serves even when kubelet logs (port 10250) are unreachable.
  - The wait is bounded by I(probe_timeout) and the probe pods are always deleted.
    M(kubeadm_ec2.cluster.dns_report) turns the results into findings.
extends_documentation_fragment:
  - kubeadm_ec2.cluster.k8s_auth
author:
  - kubeadm_ec2 maintainers (@kubeadm-ec2)
options:
  cluster_domain:
    description: The cluster DNS domain.
    type: str
    default: cluster.local
  names:
    description:
      - Service names to resolve in addition to C(kubernetes.default). C(svc) means C(svc.default),
        C(svc.ns) means C(svc.ns.svc.<cluster_domain>); fully qualified names are kept.
    type: list
    elements: str
    default: []
  external_name:
    description: A name outside the cluster, resolved through CoreDNS's upstream. Omit to skip.
    type: str
  timeout:
    description:
      - DNS timeout in seconds of each lookup inside the probe pods, rounded up to whole seconds.
      - Within it the pod's C(nslookup) resends unanswered queries every 0.5 s (C(-timeout=T -retry=2T)).
    type: float
    default: 2.0
  probe_nodes:
    description: Nodes to start a probe pod on; default every node of the cluster.
    type: list
    elements: str
    default: []
  probe_image:
    description:
      - A small multi-arch image with C(sh), C(timeout) and an C(nslookup) that takes C(-timeout) and C(-retry)
        (busybox's, checked with 1.35, or bind's).
    type: str
    default: docker.io/library/busybox:1.36.1
  probe_namespace:
    description: Namespace of the probe pods.
    type: str
    default: default
  probe_timeout:
    description: How long to wait, in seconds, for all probe pods to finish.
    type: float
    default: 60.0
requirements:
  - kubernetes
notes:
  - Check mode starts no probe pod.
"""

EXAMPLES = r"""
- name: Resolve from one probe pod per node
  kubeadm_ec2.cluster.dns_probe_pods:
    kubeconfig: ~/.kube/config
    names: [web.shop]
    external_name: example.com
  delegate_to: localhost
  run_once: true
  register: dns_pods
"""

RETURN = r"""
pod_results:
  description: One entry per probe pod, outcome finished/timeout/failed and the per-name results.
  returned: always
  type: list
  elements: dict
  sample:
    - node: node1
      pod: dns-probe-node1-x7k2p
      outcome: finished
      detail: Succeeded
      results: [{name: kubernetes.default.svc.cluster.local, kind: cluster, status: ok, answer: 10.96.0.1}]
cleanup_errors:
  description: Probe pods that could not be deleted (normally empty).
  returned: always
  type: list
  elements: str
elapsed:
  description: Seconds the probe pods took.
  returned: always
  type: float
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import dns as dnscheck
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes import k8s

CHECK = "dns_check"


def main():
    module = AnsibleModule(
        argument_spec=dict(
            k8s.AUTH_ARGUMENT_SPEC,
            cluster_domain=dict(type="str", default="cluster.local"),
            names=dict(type="list", elements="str", default=[]),
            external_name=dict(type="str"),
            timeout=dict(type="float", default=2.0),
            probe_nodes=dict(type="list", elements="str", default=[]),
            probe_image=dict(type="str", default="docker.io/library/busybox:1.36.1"),
            probe_namespace=dict(type="str", default="default"),
            probe_timeout=dict(type="float", default=60.0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    for name in ("timeout", "probe_timeout"):
        if p[name] <= 0:
            module.fail_json(msg="%s must be > 0 (got %s)" % (name, p[name]))
    try:
        plan = dnscheck.query_plan(p["names"], p["external_name"], p["cluster_domain"])
    except ValueError as exc:
        module.fail_json(msg="names: %s" % exc)
    if module.check_mode:
        module.exit_json(changed=False, pod_results=[], cleanup_errors=[], elapsed=0.0,
                         msg="%s: check mode, probe pods not started" % CHECK)
    api = k8s.module_api(module, "%s (probe pods)" % CHECK, pod_results=[])
    # imported here: it needs the kubernetes library
    from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes.dns_k8s import run_pods

    started = time.monotonic()
    try:
        pod_results, cleanup_errors = run_pods(p, api, plan)
    except k8s.K8sError as exc:
        module.fail_json(msg="%s (probe pods): %s" % (CHECK, exc), pod_results=[],
                         elapsed=round(time.monotonic() - started, 3))
    module.exit_json(changed=False, pod_results=pod_results, cleanup_errors=cleanup_errors,
                     elapsed=round(time.monotonic() - started, 3),
                     msg="%s: %d probe pod(s) finished" % (CHECK, len(pod_results)))


if __name__ == "__main__":
    main()
