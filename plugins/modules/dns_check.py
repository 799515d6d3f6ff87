#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: dns_check
short_description: Find where and why cluster DNS is broken
version_added: 0.1.0
description:
  - Checks cluster DNS of a kubeadm cluster in four modes that a playbook combines
    (the C(validate_dns) role does this).
  - C(mode=cluster) runs on the controller and reads, through the C(kubernetes) client, the CoreDNS pods,
    the kube-dns Service and EndpointSlices, the coredns ConfigMap, NetworkPolicies, Services, pods and
    nodes. It returns the DNS endpoints (IP and node) for the host path and the findings the API alone
    supports (DNS_NO_ENDPOINTS, COREDNS_NOT_READY, NETPOL_BLOCKS_DNS, SVC_NO_ENDPOINTS).
  - C(mode=host) runs on each node with C(dnspython) and queries the DNS service IP for
    C(kubernetes.default.svc.<domain>), the given service names and an external name, then queries each
    CoreDNS endpoint IP directly (the cluster name and the external name), all in parallel with a
    per-query timeout. It also reports the
    nameservers of the resolv.conf kubelet hands to pods.
  - C(mode=pods) runs on the controller and starts one short-lived probe pod per node (pinned by
    C(nodeName)) that resolves the same names and reports through its termination message, which the API
    serves even when kubelet logs (port 10250) are unreachable. The wait is bounded and the probe pods are
    always deleted.
  - C(mode=analyze) combines the results of the other modes (it knows which endpoint lives on which node),
    fails with every finding (what, where, why, fix) or passes with a short per-node summary.
  - Without I(fail_on_findings) the C(host), C(cluster) and C(pods) modes only report.
author:
  - kubeadm_ec2 maintainers (@kubeadm-ec2)
options:
  mode:
    description: Which part of the check to run (see the description).
    type: str
    required: true
    choices: [host, cluster, pods, analyze]
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
    description: Per-query DNS timeout in seconds (host and pod paths).
    type: float
    default: 2.0
  fail_on_findings:
    description: Fail when error findings exist. Defaults to true for C(analyze), false otherwise.
    type: bool
  service_ip:
    description: (host) The cluster DNS service IP (kubelet clusterDNS).
    type: str
    default: 10.96.0.10
  port:
    description: (host) DNS port of the service and endpoints.
    type: int
    default: 53
  endpoints:
    description: (host) The CoreDNS endpoints to query directly; C(mode=cluster) returns this list.
    type: list
    elements: dict
    default: []
    suboptions:
      ip:
        description: Endpoint (pod) IP.
        type: str
        required: true
      node:
        description: Name of the node the endpoint runs on.
        type: str
        default: ""
      pod:
        description: Name of the CoreDNS pod (informational).
        type: str
        default: ""
  node_name:
    description: (host) This node's Kubernetes node name (to tell same-node from cross-node endpoints).
    type: str
    default: ""
  node_ip:
    description: (host) This node's private IP, used to map it to a Kubernetes node when names differ.
    type: str
    default: ""
  resolv_conf:
    description:
      - (host) The resolv.conf kubelet gives pods. Default is the C(resolvConf) of I(kubelet_config),
        else C(/etc/resolv.conf).
    type: path
  kubelet_config:
    description: (host) The kubelet configuration file read for C(resolvConf).
    type: path
    default: /var/lib/kubelet/config.yaml
  kubeconfig:
    description: (cluster, pods) Path to a kubeconfig; default is the usual kubeconfig lookup.
    type: path
  context:
    description: (cluster, pods) The kubeconfig context to use.
    type: str
  api_timeout:
    description: (cluster, pods) Timeout in seconds of each Kubernetes API request.
    type: float
    default: 10.0
  dns_namespace:
    description: (cluster) Namespace of CoreDNS and the DNS Service.
    type: str
    default: kube-system
  dns_service:
    description: (cluster) Name of the DNS Service.
    type: str
    default: kube-dns
  coredns_configmap:
    description: (cluster) Name of the ConfigMap holding the Corefile.
    type: str
    default: coredns
  probe_nodes:
    description: (pods) Nodes to start a probe pod on; default every node of the cluster.
    type: list
    elements: str
    default: []
  probe_image:
    description: (pods) A small multi-arch image with C(sh) and busybox C(nslookup).
    type: str
    default: docker.io/library/busybox:1.36.1
  probe_namespace:
    description: (pods, analyze) Namespace of the probe pods.
    type: str
    default: default
  probe_timeout:
    description: (pods) How long to wait, in seconds, for all probe pods to finish.
    type: float
    default: 60.0
  cluster_result:
    description: (analyze) The registered result of C(mode=cluster).
    type: dict
    default: {}
  host_results:
    description: (analyze) The registered results of C(mode=host), one per node.
    type: list
    elements: dict
    default: []
  pod_result:
    description: (analyze) The registered result of C(mode=pods).
    type: dict
    default: {}
requirements:
  - dnspython (host mode, on the nodes)
  - kubernetes (cluster and pods modes, on the controller)
notes:
  - Sends DNS queries only to the service IP, the given endpoints and, through them, CoreDNS's upstream.
  - Probe pods are deleted even when the wait times out. Check mode skips creating probe pods.
seealso:
  - name: Failure catalogue
    description: DNS_POD_UNREACHABLE, UPSTREAM_TIMEOUT, COREDNS_NOT_READY and friends, in docs/dns-check.md.
    link: https://example.invalid/kubeadm_ec2/cluster/docs/dns-check.md
"""

EXAMPLES = r"""
- name: Read cluster DNS state on the controller
  kubeadm_ec2.cluster.dns_check:
    mode: cluster
    kubeconfig: ~/.kube/config
  delegate_to: localhost
  run_once: true
  register: dns_cluster

- name: Query the DNS service and each CoreDNS pod from every node
  kubeadm_ec2.cluster.dns_check:
    mode: host
    service_ip: "{{ dns_cluster.service_ip }}"
    endpoints: "{{ dns_cluster.endpoints }}"
    node_name: "{{ inventory_hostname }}"
    names: [web.shop]
    external_name: example.com

- name: Combine and fail with every finding
  kubeadm_ec2.cluster.dns_check:
    mode: analyze
    cluster_result: "{{ dns_cluster }}"
    host_results: "{{ ansible_play_hosts | map('extract', hostvars, 'dns_host') | list }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
findings:
  description: Problems found; each has id, severity, where, observed, why, remediation and optional details.
  returned: always
  type: list
  elements: dict
  sample:
    - id: DNS_POD_UNREACHABLE
      severity: error
      where: node3 -> node1
      observed: "node3 cannot reach CoreDNS pod 192.168.1.10 on node1: timeout"
      why: queries to the kube-dns service IP are spread over all CoreDNS pods ...
      remediation: allow all traffic between the nodes ...
summary:
  description: (analyze) One line per node when the check passes (also returned on failure).
  returned: when mode is analyze
  type: list
  elements: str
  sample: ["node1: 3/3 names via 10.96.0.10, 2/2 CoreDNS endpoints answer (slowest 3 ms)"]
node_result:
  description: (host) What this node got for each query.
  returned: when mode is host
  type: dict
  sample:
    node: node1
    node_ip: 10.231.0.11
    service_ip: 10.96.0.10
    resolv_conf: {path: /etc/resolv.conf, nameservers: [10.231.0.200]}
    queries:
      - {target: service, server: 10.96.0.10, endpoint_node: "", name: kubernetes.default.svc.cluster.local,
         kind: cluster, status: ok, answers: [10.96.0.1], ms: 1.2, error: ""}
cluster_state:
  description: (cluster) The DNS-relevant cluster state (service IP, endpoints, CoreDNS pods, Corefile, nodes).
  returned: when mode is cluster
  type: dict
service_ip:
  description: (cluster) The kube-dns Service clusterIP (empty when not found).
  returned: when mode is cluster
  type: str
  sample: 10.96.0.10
endpoints:
  description: (cluster) Ready CoreDNS endpoints from the EndpointSlices, with their node.
  returned: when mode is cluster
  type: list
  elements: dict
  sample: [{ip: 192.168.1.10, node: node1, pod: coredns-7db6d8ff4d-abcde}]
nodes:
  description: (cluster) Node names and InternalIPs.
  returned: when mode is cluster
  type: list
  elements: dict
pod_results:
  description: (pods) One entry per probe pod, outcome finished/timeout/failed and the per-name results.
  returned: when mode is pods
  type: list
  elements: dict
  sample:
    - node: node1
      pod: dns-probe-node1-x7k2p
      outcome: finished
      detail: Succeeded
      results: [{name: kubernetes.default.svc.cluster.local, kind: cluster, status: ok, answer: 10.96.0.1}]
cleanup_errors:
  description: (pods) Probe pods that could not be deleted (normally empty).
  returned: when mode is pods
  type: list
  elements: str
elapsed:
  description: Seconds the mode took.
  returned: always
  type: float
"""

import concurrent.futures
import ipaddress
import os
import time
import traceback
import uuid

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import dns as dnscheck
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import (
    errors,
    summary_message,
)

try:
    import dns.exception
    import dns.flags
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype

    HAS_DNSPYTHON = True
    DNSPYTHON_IMPORT_ERROR = None
except ImportError:
    HAS_DNSPYTHON = False
    DNSPYTHON_IMPORT_ERROR = traceback.format_exc()

CHECK = "dns_check"


class _NoApiError(Exception):
    """Stands in for K8sError in the host and analyze modes (they make no API calls)."""


# -- host path -------------------------------------------------------------------------------
def dns_query(server, name, timeout, port=53):
    """One A query; returns (status, answers, error)."""
    msg = dns.message.make_query(name, dns.rdatatype.A)
    try:
        resp = dns.query.udp(msg, server, timeout=timeout, port=port)
        if resp.flags & dns.flags.TC:
            resp = dns.query.tcp(msg, server, timeout=timeout, port=port)
    except dns.exception.Timeout:
        return "timeout", [], "no answer within %.1fs" % timeout
    except ConnectionRefusedError as exc:
        return "refused", [], str(exc)
    except (OSError, dns.exception.DNSException) as exc:
        return "error", [], "%s: %s" % (type(exc).__name__, exc)
    rcode = resp.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return "nxdomain", [], ""
    if rcode != dns.rcode.NOERROR:
        return dns.rcode.to_text(rcode).lower(), [], ""
    answers = [rd.to_text() for rrset in resp.answer for rd in rrset if rrset.rdtype == dns.rdatatype.A]
    return ("ok" if answers else "nodata"), answers, ""


def read_resolv_conf(params):
    path = params["resolv_conf"]
    if not path:
        path = "/etc/resolv.conf"
        try:
            with open(params["kubelet_config"]) as fh:
                path = dnscheck.parse_kubelet_resolv_conf(fh.read()) or path
        except (IOError, OSError):
            pass
    try:
        with open(path) as fh:
            return {"path": path, "nameservers": dnscheck.parse_resolv_conf(fh.read())}
    except (IOError, OSError) as exc:
        return {"path": path, "nameservers": [], "error": str(exc)}


def run_host(module, plan):
    p = module.params
    jobs = [dict(target="service", server=p["service_ip"], endpoint_node="", name=name, kind=kind)
            for name, kind in plan]
    for ep in p["endpoints"]:
        for name, kind in plan:
            if kind in ("cluster", "external"):
                jobs.append(dict(target="endpoint", server=ep["ip"], endpoint_node=ep.get("node") or "",
                                 name=name, kind=kind))

    def one(job):
        start = time.monotonic()
        status, answers, err = dns_query(job["server"], job["name"], p["timeout"], p["port"])
        return dict(job, status=status, answers=answers, error=err,
                    ms=round((time.monotonic() - start) * 1000.0, 1))

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(32, max(1, len(jobs)))) as pool:
        queries = list(pool.map(one, jobs))
    return {
        "node": p["node_name"] or os.uname()[1],
        "node_ip": p["node_ip"],
        "service_ip": p["service_ip"],
        "resolv_conf": read_resolv_conf(p),
        "queries": queries,
    }


# -- cluster state ------------------------------------------------------------------------------
def read_cluster(api, p):
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
FATAL_WAITING = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
                 "CreateContainerError", "RunContainerError")


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


def run_pods(module, api, plan):
    from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes.k8s import K8sError

    p = module.params
    nodes = p["probe_nodes"] or [n["metadata"]["name"] for n in api.list("/api/v1/nodes", "list nodes")]
    run_id = uuid.uuid4().hex[:8]
    ns = p["probe_namespace"]
    created, results, cleanup_errors = {}, {}, []
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
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
        for name, node in pending.items():
            status = (last_seen.get(name) or {}).get("status") or {}
            cstat = (status.get("containerStatuses") or [{}])[0]
            waiting = ((cstat.get("state") or {}).get("waiting") or {}).get("reason")
            detail = "did not finish within %.0fs (phase %s%s)" % (
                p["probe_timeout"], status.get("phase") or "unknown", ", waiting: %s" % waiting if waiting else "")
            results[name] = {"node": node, "pod": name, "outcome": "timeout", "detail": detail, "results": [],
                             "image": p["probe_image"]}
    finally:
        for name in created:
            try:
                api.request("DELETE", "/api/v1/namespaces/%s/pods/%s" % (ns, name),
                            "delete probe pod %s/%s" % (ns, name), query={"gracePeriodSeconds": 0})
            except K8sError as exc:
                if exc.status != 404:
                    cleanup_errors.append(str(exc))
    order = {n: i for i, n in enumerate(nodes)}
    return sorted(results.values(), key=lambda r: order.get(r["node"], 0)), cleanup_errors


# -- main --------------------------------------------------------------------------------------------
def validate(module):
    p = module.params
    if p["timeout"] <= 0:
        module.fail_json(msg="timeout must be > 0 (got %s)" % p["timeout"])
    if p["api_timeout"] <= 0:
        module.fail_json(msg="api_timeout must be > 0 (got %s)" % p["api_timeout"])
    if p["probe_timeout"] <= 0:
        module.fail_json(msg="probe_timeout must be > 0 (got %s)" % p["probe_timeout"])
    if not 0 < p["port"] < 65536:
        module.fail_json(msg="port must be 1-65535 (got %s)" % p["port"])
    for field in ("service_ip", "node_ip"):
        if p[field]:
            try:
                ipaddress.ip_address(p[field])
            except ValueError:
                module.fail_json(msg="%s must be an IP address (got %r)" % (field, p[field]))
    for i, ep in enumerate(p["endpoints"]):
        try:
            ipaddress.ip_address(ep["ip"])
        except ValueError:
            module.fail_json(msg="endpoints[%d].ip must be an IP address (got %r)" % (i, ep["ip"]))
    try:
        return dnscheck.query_plan(p["names"], p["external_name"], p["cluster_domain"])
    except ValueError as exc:
        module.fail_json(msg="names: %s" % exc)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            mode=dict(type="str", required=True, choices=["host", "cluster", "pods", "analyze"]),
            cluster_domain=dict(type="str", default="cluster.local"),
            names=dict(type="list", elements="str", default=[]),
            external_name=dict(type="str"),
            timeout=dict(type="float", default=2.0),
            fail_on_findings=dict(type="bool"),
            service_ip=dict(type="str", default=dnscheck.DEFAULT_SERVICE_IP),
            port=dict(type="int", default=53),
            endpoints=dict(type="list", elements="dict", default=[],
                           options=dict(ip=dict(type="str", required=True), node=dict(type="str", default=""),
                                        pod=dict(type="str", default=""))),
            node_name=dict(type="str", default=""),
            node_ip=dict(type="str", default=""),
            resolv_conf=dict(type="path"),
            kubelet_config=dict(type="path", default="/var/lib/kubelet/config.yaml"),
            kubeconfig=dict(type="path"),
            context=dict(type="str"),
            api_timeout=dict(type="float", default=10.0),
            dns_namespace=dict(type="str", default="kube-system"),
            dns_service=dict(type="str", default="kube-dns"),
            coredns_configmap=dict(type="str", default="coredns"),
            probe_nodes=dict(type="list", elements="str", default=[]),
            probe_image=dict(type="str", default="docker.io/library/busybox:1.36.1"),
            probe_namespace=dict(type="str", default="default"),
            probe_timeout=dict(type="float", default=60.0),
            cluster_result=dict(type="dict", default={}),
            host_results=dict(type="list", elements="dict", default=[]),
            pod_result=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    p = module.params
    mode = p["mode"]
    plan = validate(module)
    started = time.monotonic()
    out = {"changed": False}
    if mode == "host" and not HAS_DNSPYTHON:
        module.fail_json(msg=missing_required_lib("dnspython"), exception=DNSPYTHON_IMPORT_ERROR)
    if mode in ("cluster", "pods"):
        # imported here: the host mode runs on the nodes, which need neither kubernetes nor its import time
        from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes.k8s import (
            HAS_KUBERNETES,
            K8s,
            K8sError,
            KUBERNETES_IMPORT_ERROR,
            api_client,
        )

        if not HAS_KUBERNETES:
            module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(KUBERNETES_IMPORT_ERROR))
    else:
        K8sError = _NoApiError

    try:
        if mode == "host":
            result = run_host(module, plan)
            findings = dnscheck.host_findings([result], None, p["timeout"])
            out.update(node_result=result)
            ok_text = "%s: %s" % (result["node"], dnscheck.node_summary([result])[0].split(": ", 1)[1])
        elif mode == "cluster":
            api = K8s(api_client(p["kubeconfig"], p["context"]), p["api_timeout"])
            objs = read_cluster(api, p)
            state = dnscheck.summarize_cluster(objs, p["cluster_domain"])
            findings = dnscheck.cluster_findings(objs, state, p["dns_namespace"])
            out.update(cluster_state=state, service_ip=state["service_ip"], endpoints=state["endpoints"],
                       nodes=state["nodes"])
            ok_text = "kube-dns %s with %d ready endpoint(s)" % (state["service_ip"], len(state["endpoints"]))
        elif mode == "pods":
            if module.check_mode:
                module.exit_json(changed=False, findings=[], pod_results=[], cleanup_errors=[],
                                 elapsed=0.0, msg="%s: check mode, probe pods not started" % CHECK)
            api = K8s(api_client(p["kubeconfig"], p["context"]), p["api_timeout"])
            pod_results, cleanup_errors = run_pods(module, api, plan)
            findings = dnscheck.pod_findings(pod_results, p["probe_namespace"], p["timeout"])
            out.update(pod_results=pod_results, cleanup_errors=cleanup_errors)
            ok_text = "%d probe pod(s) resolved every name" % len(pod_results)
        else:
            cres = p["cluster_result"] or {}
            hosts = [h.get("node_result") for h in p["host_results"] if isinstance(h, dict) and h.get("node_result")]
            pods = (p["pod_result"] or {}).get("pod_results") or []
            findings = dnscheck.analyze(cres.get("cluster_state") or {}, cres.get("findings") or [], hosts, pods,
                                        p["timeout"], p["dns_namespace"], p["probe_namespace"])
            summary = dnscheck.node_summary(hosts, pods)
            out.update(summary=summary)
            ok_text = "cluster DNS healthy\n" + "\n".join(summary)
    except K8sError as exc:
        module.fail_json(msg="%s (%s mode): %s" % (CHECK, mode, exc), findings=[], elapsed=0.0)
    out["elapsed"] = round(time.monotonic() - started, 3)
    out["findings"] = findings
    out["msg"] = summary_message(CHECK, findings, ok_text)
    fail = p["fail_on_findings"] if p["fail_on_findings"] is not None else mode == "analyze"
    if fail and errors(findings):
        module.fail_json(**out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
