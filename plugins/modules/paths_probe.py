#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: paths_probe
short_description: Resolve and connect from each application path's source namespace with a probe pod
version_added: 0.2.0
description:
  - Starts one short-lived probe pod per path of I(paths), in the source namespace and with the source
    workload's labels, so NetworkPolicies select it exactly as they select the application. The pod never
    becomes Ready, so the application's own Services never send it traffic.
  - The pod resolves the target name (Service or host) and connects to its port (TCP; for UDP a datagram is
    sent, which proves nothing), and reports through its termination message.
  - The wait is bounded by I(probe_timeout) and every probe pod is deleted, also on failure.
  - Check mode starts no pod.
  - Give the result (C(probe_results)) to M(kubeadm_ec2.cluster.paths_check), which merges it with the
    static verdicts.
extends_documentation_fragment:
  - kubeadm_ec2.cluster.k8s_auth
author:
  - kubeadm_ec2 maintainers (@kubeadm-ec2)
options:
  paths:
    description: The paths, as for M(kubeadm_ec2.cluster.paths_check).
    type: raw
    required: true
  paths_var:
    description: The name bad input is reported under.
    type: str
    default: paths
  cluster_domain:
    description: The cluster DNS domain.
    type: str
    default: cluster.local
  probe_image:
    description: A small image with busybox C(sh), C(nslookup), C(nc) and C(timeout).
    type: str
    default: docker.io/library/busybox:1.36.1
  probe_timeout:
    description: How long to wait, in seconds, for all probe pods to finish.
    type: float
    default: 60.0
  connect_timeout:
    description: Timeout in seconds of the lookup (rounded up to whole seconds, resent every 0.5 s) and of the connection inside the pod.
    type: float
    default: 3.0
requirements:
  - kubernetes
"""

EXAMPLES = r"""
- name: Probe the paths from their source namespaces
  kubeadm_ec2.cluster.paths_probe:
    paths:
      - from: {namespace: shop, selector: {app: marketplace}}
        to: recommendations.shop:50051
  delegate_to: localhost
  run_once: true
  register: paths_probe
"""

RETURN = r"""
probe_results:
  description: One entry per path that was probed.
  returned: always
  type: list
  elements: dict
  sample:
    - index: 0
      pod: shop/path-probe-0-x7k2p
      node: node2
      outcome: finished
      detail: Succeeded
      results: {dns: {status: ok, answer: 10.96.12.7}, connect: {status: ok}}
cleanup_errors:
  description: Probe pods that could not be deleted.
  returned: always
  type: list
  elements: str
"""

import uuid

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import paths as pathcheck
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes.k8s import K8sError, module_api
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes.paths import ARGUMENT_SPEC, read_objects, run_probes


def main():
    module = AnsibleModule(
        argument_spec=dict(
            ARGUMENT_SPEC,
            probe_image=dict(type="str", default="docker.io/library/busybox:1.36.1"),
            probe_timeout=dict(type="float", default=60.0),
            connect_timeout=dict(type="float", default=3.0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    for key in ("probe_timeout", "connect_timeout"):
        if p[key] <= 0:
            module.fail_json(msg="%s must be > 0 (got %s)" % (key, p[key]))
    if module.check_mode:
        module.exit_json(changed=False, probe_results=[], cleanup_errors=[],
                         msg="paths_probe: check mode, no probe pod started")
    api = module_api(module, "paths_probe")
    try:
        objs = read_objects(api)
        parsed = pathcheck.parse_paths(p["paths"], objs, p["paths_var"], p["cluster_domain"])
        run_id = uuid.uuid4().hex[:8]
        manifests = {path["index"]: pathcheck.probe_pod_manifest(path, p["probe_image"], run_id, p["connect_timeout"])
                     for path in parsed}
        results, cleanup = run_probes(api, manifests, run_id, p["probe_timeout"])
    except (K8sError, pathcheck.PathInputError) as exc:
        module.fail_json(msg="paths_probe: %s" % exc)
    out = [dict(results[i], index=i) for i in sorted(results)]
    module.exit_json(changed=bool(out), probe_results=out, cleanup_errors=cleanup,
                     msg="paths_probe: %d probe pod(s), %d finished" % (
                         len(out), sum(1 for r in out if r["outcome"] == "finished")))


if __name__ == "__main__":
    main()
