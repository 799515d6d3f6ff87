#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: node_probe
short_description: Everything validate runs on a node, in one task (peer reachability and the DNS host path)
version_added: "0.2.0"
description:
  - Runs on every node of the cluster at the same time (one task of a play over the nodes) and reports
    what this node observed. The controller combines the reports of every node
    (M(kubeadm_ec2.cluster.reachability_report), M(kubeadm_ec2.cluster.dns_report)).
  - With I(reachability), it opens raw listeners for UDP and IP protocol 4 first, then probes every
    peer at once. TCP checks need no listener (a RST proves the path, a timeout means it was dropped).
    UDP 4789 (VXLAN) and IP-in-IP packets carry a magic payload with I(reachability.run_id) and are
    re-sent through a bounded window (I(reachability.packet_window)) until the peer acknowledges them,
    so that peers that start a little later still overlap. The node keeps listening until every packet
    it expects arrived or the window (plus a grace of 3 I(reachability.packet_interval)) passed. Once a
    probe from a peer is heard, the node re-sends to that peer and listens 8 intervals more, so that a
    peer that started late is still measured (never past twice the window plus the grace).
  - Ports per peer depend on roles. kubelet 10250, BGP 179, VXLAN, IP-in-IP and an ephemeral port to
    every peer, API 6443 to control planes, etcd 2379-2380 between control planes, Typha 5473 with
    I(reachability.typha=true).
  - With I(dns), it queries the cluster DNS service IP and each CoreDNS endpoint directly (plain DNS
    A queries over UDP, TCP when the answer is truncated; no DNS library needed), in parallel, each
    query bounded by I(dns.timeout), and reads the resolv.conf kubelet hands to pods.
  - The listener and the IP-in-IP sender need root (CAP_NET_RAW), use C(become).
author:
  - kubeadm_ec2 maintainers (@kubeadm-ec2)
options:
  node:
    description: Name of this node (its inventory hostname); with I(reachability), a key of I(reachability.nodes).
    type: str
    required: true
  reachability:
    description: Probe every peer (omit to skip).
    type: dict
    suboptions:
      run_id:
        description: Identifier shared by every node of one run. Probe packets carry it, other runs' packets are ignored.
        type: str
        required: true
      nodes:
        description: Every node of the cluster, inventory hostname to private IPv4 address.
        type: dict
        required: true
      control_planes:
        description: Names of the control plane nodes (receive 6443, and 2379-2380 from other control planes).
        type: list
        elements: str
        default: []
      typha:
        description: Also probe Calico Typha (tcp 5473) on every peer.
        type: bool
        default: false
      ephemeral_port:
        description:
          - The "all traffic" probe port. It must lie outside the NodePort range 30000-32767 and outside
            the ports of the other checks, so that only a self-referencing (all traffic) rule allows it.
        type: int
        default: 40123
      probe_timeout:
        description: Seconds each TCP probe waits for an answer (all probes of a node run in parallel).
        type: float
        default: 2.0
      packet_window:
        description:
          - Seconds during which unacknowledged UDP 4789 and IP-in-IP probes are re-sent. It must cover the
            spread of the nodes' start times (every node must run this task at the same time, so
            Ansible's C(forks) must be at least the number of nodes).
        type: float
        default: 3.0
      packet_interval:
        description:
          - Seconds between two sends of an unacknowledged UDP 4789 or IP-in-IP probe. After the window the
            node listens 3 intervals more (at least 0.3 s) for its peers' last packets.
          - The controller calls a silence a drop only when at least 3 packets went out while the peer
            listened, so the window must exceed the spread of the nodes' start times by 2 intervals.
        type: float
        default: 0.1
  dns:
    description: Query cluster DNS from this node (omit to skip).
    type: dict
    suboptions:
      service_ip:
        description: The cluster DNS service IP (kubelet clusterDNS).
        type: str
        required: true
      endpoints:
        description: The CoreDNS endpoints to query directly (M(kubeadm_ec2.cluster.dns_cluster_info) returns them).
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
        description: This node's Kubernetes node name (to tell same-node from cross-node endpoints).
        type: str
        default: ""
      node_ip:
        description: This node's private IP, used to map it to a Kubernetes node when names differ.
        type: str
        default: ""
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
      cluster_domain:
        description: The cluster DNS domain.
        type: str
        default: cluster.local
      timeout:
        description: Per-query DNS timeout in seconds.
        type: float
        default: 2.0
      port:
        description: DNS port of the service and endpoints.
        type: int
        default: 53
      resolv_conf:
        description: The resolv.conf kubelet gives pods. Default is the C(resolvConf) of I(dns.kubelet_config), else C(/etc/resolv.conf).
        type: path
      kubelet_config:
        description: The kubelet configuration file read for C(resolvConf).
        type: path
        default: /var/lib/kubelet/config.yaml
notes:
  - Supports check mode, the probes change nothing on the nodes.
  - Every wait is bounded, the task ends after at most about max(I(reachability.probe_timeout),
    2 * I(reachability.packet_window) + 3 * I(reachability.packet_interval)) seconds (the grace is at
    least 0.3 s) and I(dns.timeout) per query.
seealso:
  - module: kubeadm_ec2.cluster.reachability_report
  - module: kubeadm_ec2.cluster.dns_report
  - module: kubeadm_ec2.cluster.sg_audit
"""

EXAMPLES = r"""
- name: Probe from every node (run on every node at once; forks >= number of nodes)
  kubeadm_ec2.cluster.node_probe:
    node: "{{ inventory_hostname }}"
    reachability:
      run_id: "{{ run_id }}"
      nodes: "{{ dict(groups['k8s_cluster'] | zip(groups['k8s_cluster'] | map('extract', hostvars, 'private_ip_address'))) }}"
      control_planes: "{{ groups['control_plane'] }}"
    dns:
      service_ip: 10.96.0.10
      endpoints: [{ip: 192.168.1.10, node: node1}]
      node_name: "{{ inventory_hostname }}"
      external_name: example.com
  become: true
  register: probe
"""

RETURN = r"""
node:
  description: This node's name.
  returned: always
  type: str
  sample: node1
reachability:
  description:
    - What this node sent and received. C(results) has one C([peer, check, status, detail]) per probe with
      status C(ok), C(blocked) or C(sent) (packet checks, judged by the peer's C(received)).
    - C(listen) and C(send) are the wall-clock intervals (epoch seconds) of listening and sending.
  returned: with reachability
  type: dict
  sample:
    node: node1
    ip: 10.0.1.11
    results: [["node2", "kubelet", "ok", "refused (port 10250 reached, nothing listening)"]]
    sent: [["node2", "vxlan", 2, true]]
    received: [["10.0.1.12", "vxlan", 2]]
    listen: [1767225600.1, 1767225600.9]
    send: [1767225600.1, 1767225600.3]
    listener_error: ""
    seconds: 0.82
dns:
  description: What this node got for each DNS query (the DNS analysis reads it).
  returned: with dns
  type: dict
  sample:
    node: node1
    node_ip: 10.231.0.11
    service_ip: 10.96.0.10
    resolv_conf: {path: /etc/resolv.conf, nameservers: [10.231.0.200]}
    queries:
      - {target: service, server: 10.96.0.10, endpoint_node: "", name: kubernetes.default.svc.cluster.local,
         kind: cluster, status: ok, answers: [10.96.0.1], ms: 1.2, error: ""}
    elapsed: 0.01
seconds:
  description: Wall time of the task on the node.
  returned: always
  type: float
  sample: 0.9
"""

import ipaddress
import threading
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import resolv as dnscheck
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import node_plan as reach
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes import dns as dnsprobe
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes import net

RESERVED_PORTS = (22, 179, 2379, 2380, 4789, 5473, 6443, 10250)


def check_reachability(module, node, opts):
    msg = reach.validate_nodes(opts["nodes"])
    if msg:
        module.fail_json(msg="reachability.%s" % msg)
    if node not in opts["nodes"]:
        module.fail_json(msg="node: %r is not a key of reachability.nodes (%s)" % (node, ", ".join(sorted(opts["nodes"]))))
    unknown = [c for c in opts["control_planes"] if c not in opts["nodes"]]
    if unknown:
        module.fail_json(msg="reachability.control_planes: %s not in nodes" % ", ".join(unknown))
    port = opts["ephemeral_port"]
    if not 1 <= port <= 65535 or 30000 <= port <= 32767 or port in RESERVED_PORTS:
        module.fail_json(msg="reachability.ephemeral_port: %d must be a port outside 30000-32767 and not one of "
                             "the other checks' ports" % port)
    for name in ("probe_timeout", "packet_window", "packet_interval"):
        if opts[name] <= 0:
            module.fail_json(msg="reachability.%s: must be > 0 (got %s)" % (name, opts[name]))


def check_dns(module, opts):
    if opts["timeout"] <= 0:
        module.fail_json(msg="dns.timeout must be > 0 (got %s)" % opts["timeout"])
    if not 0 < opts["port"] < 65536:
        module.fail_json(msg="dns.port must be 1-65535 (got %s)" % opts["port"])
    for field in ("service_ip", "node_ip"):
        if opts[field]:
            try:
                ipaddress.ip_address(opts[field])
            except ValueError:
                module.fail_json(msg="dns.%s must be an IP address (got %r)" % (field, opts[field]))
    for i, ep in enumerate(opts["endpoints"]):
        try:
            ipaddress.ip_address(ep["ip"])
        except ValueError:
            module.fail_json(msg="dns.endpoints[%d].ip must be an IP address (got %r)" % (i, ep["ip"]))
    try:
        return dnscheck.query_plan(opts["names"], opts["external_name"], opts["cluster_domain"])
    except ValueError as exc:
        module.fail_json(msg="dns.names: %s" % exc)


def run(module):
    p = module.params
    started = time.time()
    reach_opts, dns_opts = p["reachability"], p["dns"]
    if reach_opts:
        check_reachability(module, p["node"], reach_opts)
    plan = check_dns(module, dns_opts) if dns_opts else None
    out = {"changed": False, "node": p["node"]}
    dns_thread = None
    if dns_opts:
        def dns_part():
            out["dns"] = dnsprobe.host_path(
                plan, dns_opts["service_ip"], dns_opts["endpoints"], dns_opts["timeout"], dns_opts["port"],
                node_name=dns_opts["node_name"], node_ip=dns_opts["node_ip"], resolv_conf=dns_opts["resolv_conf"],
                kubelet_config=dns_opts["kubelet_config"])

        dns_thread = threading.Thread(target=dns_part)
        dns_thread.daemon = True
        dns_thread.start()
    if reach_opts:
        out["reachability"] = net.run_probes(
            p["node"], reach_opts["nodes"], reach_opts["control_planes"], reach_opts["run_id"],
            timeout=reach_opts["probe_timeout"], ephemeral_port=reach_opts["ephemeral_port"],
            typha=reach_opts["typha"], window=reach_opts["packet_window"],
            interval=reach_opts["packet_interval"], grace=max(0.3, 3 * reach_opts["packet_interval"]))
    if dns_thread is not None:
        # every query is bounded by dns.timeout (twice with a TCP retry), plus thread scheduling
        dns_thread.join(2 * dns_opts["timeout"] + 10)
        if "dns" not in out:
            module.fail_json(msg="dns: the queries did not finish within %.0fs" % (2 * dns_opts["timeout"] + 10), **out)
    out["seconds"] = round(time.time() - started, 3)
    module.exit_json(**out)


def main():
    endpoint = dict(ip=dict(type="str", required=True), node=dict(type="str", default=""),
                    pod=dict(type="str", default=""))
    module = AnsibleModule(
        argument_spec=dict(
            node=dict(type="str", required=True),
            reachability=dict(type="dict", options=dict(
                run_id=dict(type="str", required=True),
                nodes=dict(type="dict", required=True),
                control_planes=dict(type="list", elements="str", default=[]),
                typha=dict(type="bool", default=False),
                ephemeral_port=dict(type="int", default=reach.DEFAULT_EPHEMERAL_PORT),
                probe_timeout=dict(type="float", default=2.0),
                packet_window=dict(type="float", default=3.0),
                packet_interval=dict(type="float", default=0.1),
            )),
            dns=dict(type="dict", options=dict(
                service_ip=dict(type="str", required=True),
                endpoints=dict(type="list", elements="dict", default=[], options=endpoint),
                node_name=dict(type="str", default=""),
                node_ip=dict(type="str", default=""),
                names=dict(type="list", elements="str", default=[]),
                external_name=dict(type="str"),
                cluster_domain=dict(type="str", default="cluster.local"),
                timeout=dict(type="float", default=2.0),
                port=dict(type="int", default=53),
                resolv_conf=dict(type="path"),
                kubelet_config=dict(type="path", default="/var/lib/kubelet/config.yaml"),
            )),
        ),
        required_one_of=[("reachability", "dns")],
        supports_check_mode=True,
    )
    try:
        run(module)
    except (OSError, IOError, ValueError) as exc:
        module.fail_json(msg="node_probe on %s failed: %s" % (module.params["node"], exc))


if __name__ == "__main__":
    main()
