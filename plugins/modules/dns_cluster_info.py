#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: dns_cluster_info
short_description: Read the DNS-relevant state of a Kubernetes cluster
version_added: "0.2.0"
description:
  - Reads, through the C(kubernetes) client, the CoreDNS pods, the kube-dns Service and EndpointSlices,
    the coredns ConfigMap, NetworkPolicies, Services, pods and nodes.
  - Returns the DNS endpoints (IP and node) for the node-side host path (M(kubeadm_ec2.cluster.node_probe))
    and the findings the API alone supports (DNS_NO_ENDPOINTS, COREDNS_NOT_READY, NETPOL_BLOCKS_DNS,
    SVC_NO_ENDPOINTS). M(kubeadm_ec2.cluster.dns_report) combines them with the node and pod results.
  - Reports only, it does not fail on findings.
extends_documentation_fragment:
  - kubeadm_ec2.cluster.k8s_auth
author:
  - kubeadm_ec2 maintainers (@kubeadm-ec2)
options:
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
  coredns_configmap:
    description: Name of the ConfigMap holding the Corefile.
    type: str
    default: coredns
requirements:
  - kubernetes
notes:
  - Supports check mode (it only reads).
"""

EXAMPLES = r"""
- name: Read cluster DNS state on the controller
  kubeadm_ec2.cluster.dns_cluster_info:
    kubeconfig: ~/.kube/config
  delegate_to: localhost
  run_once: true
  register: dns_cluster
"""

RETURN = r"""
findings:
  description: Problems the API alone shows; each has id, severity, where, observed, why, remediation.
  returned: always
  type: list
  elements: dict
cluster_state:
  description: The DNS-relevant cluster state (service IP, endpoints, CoreDNS pods, Corefile, nodes).
  returned: success
  type: dict
service_ip:
  description: The kube-dns Service clusterIP (empty when not found).
  returned: success
  type: str
  sample: 10.96.0.10
endpoints:
  description: Ready CoreDNS endpoints from the EndpointSlices, with their node.
  returned: success
  type: list
  elements: dict
  sample: [{ip: 192.168.1.10, node: node1, pod: coredns-7db6d8ff4d-abcde}]
nodes:
  description: Node names and InternalIPs.
  returned: success
  type: list
  elements: dict
elapsed:
  description: Seconds the reads took.
  returned: always
  type: float
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import dns as dnscheck
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import summary_message
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes import k8s

CHECK = "dns_check"


def main():
    module = AnsibleModule(
        argument_spec=dict(
            k8s.AUTH_ARGUMENT_SPEC,
            cluster_domain=dict(type="str", default="cluster.local"),
            dns_namespace=dict(type="str", default="kube-system"),
            dns_service=dict(type="str", default="kube-dns"),
            coredns_configmap=dict(type="str", default="coredns"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    api = k8s.module_api(module, "%s (cluster reads)" % CHECK, findings=[])
    # imported here: it needs the kubernetes library
    from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes.dns_k8s import read_cluster

    started = time.monotonic()
    try:
        objs = read_cluster(api, p)
    except k8s.K8sError as exc:
        module.fail_json(msg="%s (cluster reads): %s" % (CHECK, exc), findings=[],
                         elapsed=round(time.monotonic() - started, 3))
    state = dnscheck.summarize_cluster(objs, p["cluster_domain"])
    findings = dnscheck.cluster_findings(objs, state, p["dns_namespace"])
    ok_text = "kube-dns %s with %d ready endpoint(s)" % (state["service_ip"], len(state["endpoints"]))
    module.exit_json(changed=False, cluster_state=state, service_ip=state["service_ip"], endpoints=state["endpoints"],
                     nodes=state["nodes"], findings=findings, msg=summary_message(CHECK, findings, ok_text),
                     elapsed=round(time.monotonic() - started, 3))


if __name__ == "__main__":
    main()
