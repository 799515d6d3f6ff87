#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: paths_check
short_description: Judge application paths (pod to Service or host) layer by layer from the cluster objects
version_added: 0.2.0
description:
  - Reads, through the C(kubernetes) client, the namespaces, pods, workloads (Deployments, StatefulSets,
    DaemonSets), Services, EndpointSlices and NetworkPolicies, and gives each path of I(paths) a verdict
    per layer, without starting any pod.
  - C(dns) - the Service exists (its name resolves) and the source may send DNS to CoreDNS.
  - C(service) - the Service has the port, ready endpoints, and its targetPort is a containerPort of the pods
    it selects.
  - C(netpol) - the egress policies of the source and the ingress policies of the destination pods allow the
    connection, judged on the pods the Service selects (after DNAT) by the NetworkPolicy engine.
  - C(connect) - from the probe pods of M(kubeadm_ec2.cluster.paths_probe) when I(probe_results) is given,
    else skipped (static verdicts only).
  - Returns the C(paths) check result (C(status), C(msg), C(findings), C(evidence)); one C(PATH_BLOCKED)
    finding per blocked path names the layer, the deciding object and a fix ready to apply.
extends_documentation_fragment:
  - kubeadm_ec2.cluster.k8s_auth
author:
  - kubeadm_ec2 maintainers (@kubeadm-ec2)
options:
  paths:
    description:
      - The paths to judge. C(to) is C(service.namespace:port), C(service:port) (in the source namespace),
        C(service.namespace.svc[.domain]:port), or C(host:port) for anything else (an address or a name
        outside the cluster).
      - A list of mappings; anything else fails naming I(paths_var).
    type: raw
    required: true
  paths_var:
    description: The name bad input is reported under (the role passes C(validate_paths)).
    type: str
    default: paths
  cluster_domain:
    description: The cluster DNS domain.
    type: str
    default: cluster.local
  dns_namespace:
    description: Namespace of CoreDNS and the DNS Service.
    type: str
    default: kube-system
  dns_service:
    description: Name of the DNS Service.
    type: str
    default: kube-dns
  fail_on_findings:
    description: Fail when a path is blocked; C(false) only reports.
    type: bool
    default: true
  probe_results:
    description:
      - The C(probe_results) of M(kubeadm_ec2.cluster.paths_probe). Given, they set the C(dns) and C(connect)
        layers from what the probe pods saw; a live connection the policies deny is reported as
        NETPOL_NOT_ENFORCED instead of a contradicting verdict. Omitted, the verdicts are static.
    type: list
    elements: dict
  mesh_result:
    description:
      - The registered result of M(kubeadm_ec2.cluster.mesh_probe) (the live pod mesh). Given, the returned
        C(paths) check result holds both (C(evidence.mesh) and C(evidence.paths), one C(NETPOL_NOT_ENFORCED) at
        most); a failed mesh task makes the check fail with its message; a skipped one is left out.
    type: dict
requirements:
  - kubernetes
notes:
  - Reads only; starts no pod, so check mode runs the same analysis.
seealso:
  - name: NetworkPolicy engine
    description: The semantics the netpol layer follows, in docs/network-policies.md.
    link: https://example.invalid/kubeadm_ec2/cluster/docs/network-policies.md
"""

EXAMPLES = r"""
- name: Can marketplace reach recommendations:50051?
  kubeadm_ec2.cluster.paths_check:
    kubeconfig: ~/.kube/config
    paths:
      - from: {namespace: shop, selector: {app: marketplace}}
        to: recommendations.shop:50051
        protocol: tcp
  delegate_to: localhost
  run_once: true
  register: paths_result
"""

RETURN = r"""
status:
  description: C(passed) or C(failed).
  returned: always
  type: str
msg:
  description: A one-line summary, then every blocked path (what, why, fix).
  returned: always
  type: str
findings:
  description: PATH_BLOCKED findings, one per blocked path (id, severity, where, observed, why, remediation, details).
  returned: always
  type: list
  elements: dict
evidence:
  description: The C(paths) check evidence; C(paths) has one entry per path with its layers and verdict.
  returned: always
  type: dict
  sample:
    mesh: []
    paths:
      - from: {namespace: shop, selector: {matchLabels: {app: marketplace}}, workload: deployment shop/marketplace}
        to: recommendations.shop:50051
        protocol: tcp
        verdict: blocked
        layers:
          dns: {status: ok, detail: "recommendations.shop.svc.cluster.local resolves through kube-system/kube-dns", object: "", fix: ""}
          service: {status: ok, detail: "Service shop/recommendations TCP/50051 -> targetPort grpc, 1 ready endpoint(s)",
                    object: service shop/recommendations, fix: ""}
          netpol: {status: failed, detail: "...", object: networkpolicy shop/deny-all, fix: "kubectl apply -f - ..."}
          connect: {status: skipped, detail: "validate_paths_probe is false: static verdicts only", object: "", fix: ""}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import paths as pathcheck
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import format_finding
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes.k8s import K8sError, module_api
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes.paths import ARGUMENT_SPEC, read_objects


def main():
    module = AnsibleModule(
        argument_spec=dict(
            ARGUMENT_SPEC,
            dns_namespace=dict(type="str", default="kube-system"),
            dns_service=dict(type="str", default="kube-dns"),
            fail_on_findings=dict(type="bool", default=True),
            probe_results=dict(type="list", elements="dict"),
            mesh_result=dict(type="dict"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    api = module_api(module, "paths_check", findings=[])
    try:
        objs = read_objects(api)
        parsed = pathcheck.parse_paths(p["paths"], objs, p["paths_var"], p["cluster_domain"])
    except K8sError as exc:
        module.fail_json(msg="paths_check: %s" % exc, findings=[])
    except pathcheck.PathInputError as exc:
        module.fail_json(msg="paths_check: %s" % exc, findings=[])
    probes = None if p["probe_results"] is None else {int(r.get("index", -1)): r for r in p["probe_results"]}
    results, findings = pathcheck.judge(parsed, objs, probes, p["dns_namespace"], p["dns_service"])
    out = pathcheck.check_result(results, findings)
    if findings:
        out["msg"] = "\n".join([out["msg"]] + [format_finding(f) for f in findings])
    out = pathcheck.with_mesh(out, p["mesh_result"])
    if p["fail_on_findings"] and out["status"] == "failed":
        module.fail_json(changed=False, **out)
    module.exit_json(changed=False, **out)


if __name__ == "__main__":
    main()
