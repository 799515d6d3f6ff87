#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: node_reachability
short_description: Node-to-node reachability matrix (kubelet, API, etcd, BGP, Typha, VXLAN, IP-in-IP, all traffic)
version_added: "0.1.0"
description:
  - Builds the full node-to-node reachability matrix of a kubeadm cluster in four phases so that a
    play of N nodes does it in one pass, in parallel, with a bounded timeout per probe.
  - I(phase=listen) (run with C(async) and C(poll=0) on every node) opens raw sockets for UDP and
    IP protocol 4 and records the probe packets of this run that reach the node, until the collect
    phase writes a stop file or I(listen_seconds) passed.
  - I(phase=probe) (every node) probes every peer at once. TCP checks need no listener, a RST
    (connection refused) means the security group let the SYN through and a timeout means it was
    dropped. UDP 4789 (VXLAN) and IP protocol 4 (IP-in-IP) packets carry a magic payload with
    I(run_id) and are judged by the peer's listener.
  - I(phase=collect) (every node) stops the listener and returns what it received.
  - I(phase=analyse) (once, on the controller) combines the probe and collect results of every node
    into the matrix and findings. It fails with one C(NODE_PORT_BLOCKED) finding per node pair, naming
    the blocked ports/protocols and what needs them. Which device dropped them (the security group, a
    network ACL, a host firewall) is decided by the diagnosis of the validate report, from the
    security group as EC2 holds it.
  - Ports per peer depend on roles. kubelet 10250, BGP 179, VXLAN, IP-in-IP and an ephemeral port
    to every peer, API 6443 to control planes, etcd 2379-2380 between control planes, Typha 5473
    with I(typha=true).
  - The listener and the IP-in-IP prober need root (CAP_NET_RAW), use C(become).
author:
  - kubeadm_ec2 maintainers (@kubeadm-ec2)
options:
  phase:
    description: Which phase to run (see the description).
    type: str
    required: true
    choices: [listen, probe, collect, analyse]
  run_id:
    description:
      - Identifier shared by all phases of one run (same value on every node). Probe packets carry
        it, listeners ignore packets of other runs.
      - Required for I(phase=listen), I(phase=probe) and I(phase=collect).
    type: str
  node:
    description:
      - Name of this node (its inventory hostname), a key of I(nodes).
      - Required for I(phase=listen), I(phase=probe) and I(phase=collect).
    type: str
  nodes:
    description:
      - Every node of the cluster, inventory hostname to private IPv4 address.
      - Required for I(phase=probe) and I(phase=analyse).
    type: dict
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
    description: Seconds each probe waits for an answer (all probes of a node run in parallel).
    type: float
    default: 2.0
  listen_seconds:
    description: Upper bound of the listener's lifetime, in seconds (it normally stops at I(phase=collect)).
    type: float
    default: 120
  collect_timeout:
    description: Seconds I(phase=collect) waits for the listener's records after signalling it to stop.
    type: float
    default: 10
  job_file:
    description:
      - For I(phase=collect), the listener's async job file (C(results_file) of the registered async
        task). It is removed once the listener ended, so no C(async_status) cleanup task is needed.
    type: path
  state_dir:
    description: Directory on the node for the listener's stop file and records.
    type: path
    default: /tmp
  probes:
    description:
      - For I(phase=analyse), node name to the registered result of I(phase=probe) on that node
        (null when the node did not report).
    type: dict
    default: {}
  listens:
    description:
      - For I(phase=analyse), node name to the registered result of I(phase=collect) on that node
        (null when the node did not report).
    type: dict
    default: {}
  calico_encapsulation:
    description:
      - Encapsulation of the Calico IPPool (the calico role's variable). Decides which of IP-in-IP,
        BGP and VXLAN being blocked is an error; the others are reported as warnings.
    type: str
    default: IPIP
    choices: [IPIP, IPIPCrossSubnet, VXLAN, VXLANCrossSubnet, None]
  security_group_id:
    description: The node security group id, used in the remediation commands (a placeholder otherwise).
    type: str
notes:
  - Supports check mode, the probes change nothing on the nodes.
  - Run the phases with C(strategy=linear) so that every listener is up before any probe starts.
seealso:
  - module: kubeadm_ec2.cluster.sg_audit
"""

EXAMPLES = r"""
# The role kubeadm_ec2.cluster.validate_network (tasks_from: reachability) wires these phases up.
- name: Listen for probe packets (background)
  kubeadm_ec2.cluster.node_reachability:
    phase: listen
    run_id: "{{ run_id }}"
    node: "{{ inventory_hostname }}"
  async: 180
  poll: 0
  become: true
  register: listener

- name: Probe every peer
  kubeadm_ec2.cluster.node_reachability:
    phase: probe
    run_id: "{{ run_id }}"
    node: "{{ inventory_hostname }}"
    nodes: "{{ dict(groups['k8s_cluster'] | zip(groups['k8s_cluster'] | map('extract', hostvars, 'private_ip_address'))) }}"
    control_planes: "{{ groups['control_plane'] }}"
  become: true
  register: probe

- name: Collect what the listener received (and remove its async job file)
  kubeadm_ec2.cluster.node_reachability:
    phase: collect
    run_id: "{{ run_id }}"
    node: "{{ inventory_hostname }}"
    job_file: "{{ listener.results_file }}"
  become: true
  register: collected

- name: Analyse the matrix
  kubeadm_ec2.cluster.node_reachability:
    phase: analyse
    nodes: "{{ dict(groups['k8s_cluster'] | zip(groups['k8s_cluster'] | map('extract', hostvars, 'private_ip_address'))) }}"
    control_planes: "{{ groups['control_plane'] }}"
    probes: "{{ dict(groups['k8s_cluster'] | zip(groups['k8s_cluster'] | map('extract', hostvars) | map(attribute='probe', default=None))) }}"
    listens: "{{ dict(groups['k8s_cluster'] | zip(groups['k8s_cluster'] | map('extract', hostvars) | map(attribute='collected', default=None))) }}"
    calico_encapsulation: IPIP
    security_group_id: sg-0123456789abcdef0
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
phase:
  description: The phase that ran.
  returned: always
  type: str
  sample: probe
node:
  description: This node's name.
  returned: phase is listen, probe or collect
  type: str
  sample: node1
ip:
  description: This node's private IP.
  returned: phase is probe
  type: str
  sample: 10.0.1.11
results:
  description: One C([peer, check, status, detail]) per probe; status C(ok), C(blocked) or C(sent) (packet checks).
  returned: phase is probe
  type: list
  elements: list
  sample: [["node2", "kubelet", "ok", "refused (port 10250 reached, nothing listening)"]]
sent:
  description: Packets sent per C([peer, check, count]) for the UDP 4789 and IP protocol 4 checks.
  returned: phase is probe
  type: list
  elements: list
  sample: [["node2", "ipip", 5]]
received:
  description: Probe packets the listener received, C([source IP, check, count]).
  returned: phase is listen or collect
  type: list
  elements: list
  sample: [["10.0.1.12", "vxlan", 5]]
listener_ready:
  description: Whether this node's own listener was up when the probes started (waits up to 5 seconds for it).
  returned: phase is probe
  type: bool
  sample: true
job_file_removed:
  description: Whether the listener's async job file was removed (only with I(job_file)).
  returned: phase is collect and job_file is set
  type: bool
  sample: true
missing:
  description: True when the listener left no records (never started or died).
  returned: phase is collect
  type: bool
  sample: false
seconds:
  description: Wall time of the phase on the node.
  returned: phase is listen, probe or collect
  type: float
  sample: 2.04
summary:
  description: Counts of the matrix and a one-line text.
  returned: phase is analyse
  type: dict
  sample:
    nodes: 3
    pairs: 6
    probes: 38
    ok: 38
    blocked: 0
    unknown: 0
    probe_seconds_max: 2.05
    text: "3 nodes, 6 directed pairs, 38 probes, 38 passed: tcp/10250 6/6, ..."
matrix:
  description: Source node to destination node to C(ok) or the blocked/unknown checks.
  returned: phase is analyse
  type: dict
  sample: {"node1": {"node2": "blocked: bgp, ipip, kubelet, ephemeral"}}
findings:
  description: Problems found, each with id, severity, where (the node pair), observed, why and remediation.
  returned: phase is analyse
  type: list
  elements: dict
  sample:
    - id: NODE_PORT_BLOCKED
      severity: error
      where: "node1 (10.0.1.11) -> node2 (10.0.1.12)"
      observed: "tcp/10250, tcp/40123 (ephemeral) blocked from node1 to node2"
      why: "probes from node1 to node2 timed out or were rejected on the way; needed by: ..."
      remediation: "if the node security group does not allow them: add the self-referencing rule ... If it does,
        the drop is outside it: the network ACL of the nodes' subnet or the host firewall of node2 ..."
"""

import errno
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import (
    errors,
    summary_message,
)
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import reachability as reach

MAX_MSG_FINDINGS = 12


def _check_args(module):
    p = module.params
    phase = p["phase"]
    if phase in ("listen", "probe", "collect"):
        for name in ("run_id", "node"):
            if not p[name]:
                module.fail_json(msg="%s is required with phase=%s" % (name, phase))
    if phase in ("probe", "analyse"):
        msg = reach.validate_nodes(p["nodes"])
        if msg:
            module.fail_json(msg=msg)
    if phase == "probe" and p["node"] not in p["nodes"]:
        module.fail_json(msg="node: %r is not a key of nodes (%s)" % (p["node"], ", ".join(sorted(p["nodes"]))))
    if p["nodes"]:
        unknown = [c for c in p["control_planes"] if c not in p["nodes"]]
        if unknown:
            module.fail_json(msg="control_planes: %s not in nodes" % ", ".join(unknown))
    if not 1 <= p["ephemeral_port"] <= 65535 or 30000 <= p["ephemeral_port"] <= 32767 or \
            p["ephemeral_port"] in (179, 2379, 2380, 4789, 5473, 6443, 10250, 22):
        module.fail_json(msg="ephemeral_port: %d must be a port outside 30000-32767 and not one of the other checks' ports"
                         % p["ephemeral_port"])
    for name in ("probe_timeout", "listen_seconds", "collect_timeout"):
        if p[name] <= 0:
            module.fail_json(msg="%s: must be > 0 (got %s)" % (name, p[name]))
    if phase in ("listen", "probe", "collect") and not os.path.isdir(p["state_dir"]):
        module.fail_json(msg="state_dir: %s is not a directory" % p["state_dir"])


def run(module):
    p = module.params
    phase = p["phase"]
    if phase == "listen":
        stop_path, result_path, ready_path = reach.state_paths(p["state_dir"], p["run_id"], p["node"])
        for path in (stop_path, result_path, ready_path):
            if os.path.exists(path):
                os.remove(path)
        try:
            socks = reach.open_listeners()
        except (OSError, IOError) as exc:
            hint = " (raw sockets need root/CAP_NET_RAW: use become)" if exc.errno in (errno.EPERM, errno.EACCES) else ""
            module.fail_json(msg="listen: cannot open raw sockets: %s%s" % (exc, hint))
        res = reach.listen(p["run_id"], p["listen_seconds"], stop_path, result_path, socks=socks, ready_path=ready_path)
        module.exit_json(changed=False, phase=phase, node=p["node"], **res)
    if phase == "probe":
        # our own listener started with the peers' ones: once it is up, theirs are too (give or take),
        # and the packet probes are re-sent for a while anyway
        listener_ready = reach.wait_ready(p["state_dir"], p["run_id"], p["node"], min(5.0, p["collect_timeout"]))
        res = reach.probe(p["node"], p["nodes"], p["control_planes"], p["run_id"], timeout=p["probe_timeout"],
                          ephemeral_port=p["ephemeral_port"], typha=p["typha"])
        module.exit_json(changed=False, phase=phase, listener_ready=listener_ready, **res)
    if phase == "collect":
        res = reach.collect(p["state_dir"], p["run_id"], p["node"], p["collect_timeout"], job_file=p["job_file"])
        module.exit_json(changed=False, phase=phase, node=p["node"], **res)
    # analyse
    probes = dict((k, _usable(v)) for k, v in p["probes"].items())
    listens = dict((k, _usable(v)) for k, v in p["listens"].items())
    findings, summary, matrix = reach.analyse(
        p["nodes"], p["control_planes"], probes, listens, calico_encapsulation=p["calico_encapsulation"],
        typha=p["typha"], sg_id=p["security_group_id"], ephemeral_port=p["ephemeral_port"])
    table = reach.matrix_table(p["nodes"], matrix)
    secs = [v["seconds"] for v in probes.values() if v and "seconds" in v]
    summary["probe_seconds_max"] = max(secs) if secs else None
    errs = errors(findings)
    if errs:
        shown = [f for f in findings if f["severity"] == "error"][:MAX_MSG_FINDINGS]
        msg = summary_message("node_reachability", shown, summary["text"])
        if len(errs) > MAX_MSG_FINDINGS:
            msg += "\n... and %d more finding(s), see 'findings'" % (len(errs) - MAX_MSG_FINDINGS)
        msg += "\nmatrix: " + summary["text"]
        module.fail_json(msg=msg, findings=findings, summary=summary, matrix=table, phase=phase)
    module.exit_json(changed=False, msg=summary_message("node_reachability", findings, summary["text"]),
                     findings=findings, summary=summary, matrix=table, phase=phase)


def _usable(result):
    """A registered result counts only when the task ran and succeeded."""
    if not isinstance(result, dict) or result.get("failed") or result.get("skipped") or result.get("unreachable"):
        return None
    if "results" not in result and "received" not in result:
        return None
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            phase=dict(type="str", required=True, choices=["listen", "probe", "collect", "analyse"]),
            run_id=dict(type="str"),
            node=dict(type="str"),
            nodes=dict(type="dict"),
            control_planes=dict(type="list", elements="str", default=[]),
            typha=dict(type="bool", default=False),
            ephemeral_port=dict(type="int", default=reach.DEFAULT_EPHEMERAL_PORT),
            probe_timeout=dict(type="float", default=2.0),
            listen_seconds=dict(type="float", default=120),
            collect_timeout=dict(type="float", default=10),
            state_dir=dict(type="path", default="/tmp"),
            job_file=dict(type="path"),
            probes=dict(type="dict", default={}),
            listens=dict(type="dict", default={}),
            calico_encapsulation=dict(type="str", default="IPIP", choices=list(reach.ENCAPSULATIONS)),
            security_group_id=dict(type="str"),
        ),
        required_if=[
            ("phase", "probe", ("nodes",)),
            ("phase", "analyse", ("nodes",)),
        ],
        supports_check_mode=True,
    )
    _check_args(module)
    try:
        run(module)
    except (OSError, IOError, ValueError) as exc:
        module.fail_json(msg="node_reachability phase=%s failed: %s" % (module.params["phase"], exc))


if __name__ == "__main__":
    main()
