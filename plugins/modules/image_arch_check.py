#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: image_arch_check
short_description: Check that container images offer a platform for every node architecture
version_added: "0.1.0"
description:
  - Resolves image references through the registry API (OCI image index, Docker manifest list, or a
    single manifest whose config names its architecture) and compares the platforms offered with the
    architectures of the nodes each workload can land on.
  - Catches an image pushed only for arm64 (built on Apple Silicon) that is scheduled on amd64 EC2 nodes,
    which fails with C(ErrImagePull) "no match for platform in manifest".
  - Images come from O(images), from workload manifests in O(manifests) (Deployments, StatefulSets,
    DaemonSets, ReplicaSets, Jobs, CronJobs, Pods, init containers included) and/or from the running
    cluster through O(kubeconfig).
  - Node architectures come from the cluster (C(status.nodeInfo.architecture)), from O(nodes) or from
    O(node_arches); Ansible fact spellings (C(x86_64), C(aarch64)) are normalised to C(amd64), C(arm64).
  - A workload's C(nodeSelector) and required node affinity on C(kubernetes.io/arch) restrict the node
    architectures it is checked against.
  - What containerd does on each node architecture decides the finding. An index (OCI image index or
    Docker manifest list) without the node's platform fails the pull ("no match for platform in manifest").
    A single manifest is pulled without a platform check, so a wrong architecture fails only when the
    container starts ("exec format error", CrashLoopBackOff). Buildx attestation entries
    (C(unknown/unknown)) are never a platform.
  - Pod statuses and events with C(ErrImagePull)/C(ImagePullBackOff) "no match for platform", and
    containers whose start failed with "exec format error", are linked to the image's finding.
  - Distinct images are resolved concurrently (bounded by O(max_workers)) with results cached per digest.
  - Returns findings with id C(IMAGE_ARCH_MISMATCH) (an index lacks a node's platform; platforms offered,
    node architectures lacking one, affected workloads, the C(docker buildx) fix or a C(nodeSelector) pin),
    C(IMAGE_EXEC_FORMAT) (a single manifest of another architecture, which pulls and fails at start),
    C(IMAGE_PLATFORM_FALLBACK) (a warning; only a 32-bit build containerd falls back to, such as
    C(linux/arm/v7) on arm64 nodes) or C(IMAGE_UNREACHABLE) (the HTTP status of the registry, or the
    connection error).
  - The module only reads; it never changes anything.
author:
  - kubeadm_ec2 maintainers (@kubeadm-ec2)
options:
  images:
    description:
      - Image references to check against every node architecture, for example C(nginx),
        C(registry.example.com:5000/shop/marketplace:v1) or C(repo@sha256:...).
    type: list
    elements: str
    default: []
  manifests:
    description:
      - Kubernetes manifest files or directories (searched recursively for C(.yml), C(.yaml), C(.json)),
        multi-document YAML and C(List) objects included.
    type: list
    elements: path
    default: []
  kubeconfig:
    description:
      - Kubeconfig of the running cluster. When set, O(cluster_reads) are read from the cluster.
    type: path
  context:
    description:
      - Kubeconfig context to use; the current context when omitted.
    type: str
  cluster_reads:
    description:
      - What to read from the cluster when O(kubeconfig) is set.
      - V(nodes) adds the nodes' architectures, V(workloads) the images of controllers and bare pods,
        V(events) pull failures from pod statuses and events.
    type: list
    elements: str
    choices: [nodes, workloads, events]
    default: [nodes, workloads, events]
  namespaces:
    description:
      - Namespaces to read workloads and events from; all namespaces when empty.
    type: list
    elements: str
    default: []
  node_arches:
    description:
      - Node architectures given directly, in Kubernetes (C(amd64)) or Ansible fact (C(x86_64)) spelling.
    type: list
    elements: str
    default: []
  nodes:
    description:
      - Nodes with their architecture, for example built from the C(ansible_facts.architecture) of the
        hosts in group C(k8s_cluster). Node names appear in the findings.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Node or inventory host name.
        type: str
        required: true
      architecture:
        description: Architecture, C(x86_64)/C(amd64) or C(aarch64)/C(arm64).
        type: str
        required: true
  registry_credentials:
    description:
      - Credentials per registry host (Basic auth, or the user for the Bearer token flow).
      - They win over entries of O(docker_config) for the same registry.
    type: list
    elements: dict
    default: []
    suboptions:
      registry:
        description: Registry host as in the image reference, for example C(docker.io) or C(127.0.0.1:5000).
        type: str
        required: true
      username:
        description: User name.
        type: str
        required: true
      password:
        description: Password or access token.
        type: str
        required: true
  docker_config:
    description:
      - Path to a docker C(config.json) (or the directory holding it) whose C(auths) entries give
        registry credentials. Credential helpers are not supported.
    type: path
  insecure_registries:
    description:
      - Registry hosts (C(host) or C(host:port)) spoken to over plain HTTP instead of HTTPS.
    type: list
    elements: str
    default: []
  timeout:
    description:
      - Timeout in seconds for each registry and Kubernetes API request.
    type: float
    default: 10
  max_workers:
    description:
      - How many images are resolved concurrently.
    type: int
    default: 8
  fail_on_findings:
    description:
      - Fail the task when error findings exist. With V(false) the findings are only returned.
    type: bool
    default: true
  stop:
    description:
      - Why the check cannot run, known before it starts. A message, or a check result with C(msg) and
        C(findings) (for example the C(API_UNREACHABLE) of a Kubernetes API that does not answer).
      - When set, nothing is checked and the task fails with it (the action plugin of this module does
        this, before the module would start). Started in the background by playbook
        C(kubeadm_ec2.cluster.validate), the action starts nothing and hands it to the report as the
        check's result.
    type: raw
notes:
  - Supports check mode; the module is read-only and never reports a change.
  - Registry requests go to the registry's v2 API; C(docker.io) is served by C(registry-1.docker.io) and
    one-component repositories get the C(library/) prefix.
requirements:
  - kubernetes (Python library), only when O(kubeconfig) is used
  - PyYAML, only when O(manifests) are read
attributes:
  check_mode:
    support: full
    description: Read-only; check mode runs the same checks.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no diff.
"""

EXAMPLES = r"""
- name: Check the shop manifests against the cluster's nodes
  kubeadm_ec2.cluster.image_arch_check:
    manifests:
      - "{{ playbook_dir }}/manifests/shop"
    kubeconfig: /etc/kubernetes/admin.conf

- name: Check two images against amd64 EC2 nodes with a private registry
  kubeadm_ec2.cluster.image_arch_check:
    images:
      - registry.example.com/shop/marketplace:v1
      - nginx:1.27
    node_arches: [x86_64]
    registry_credentials:
      - registry: registry.example.com
        username: ci
        password: "{{ vault_registry_password }}"

- name: Node architectures from the gathered facts of the cluster hosts, findings only returned
  kubeadm_ec2.cluster.image_arch_check:
    manifests: [manifests/]
    node_arches: "{{ groups['k8s_cluster'] | map('extract', hostvars, ['ansible_facts', 'architecture']) | list }}"
    fail_on_findings: false
  register: images_report
"""

RETURN = r"""
msg:
  description: Summary; on failure every error finding with its fix.
  returned: always
  type: str
  sample: "image_arch_check: 3 image(s) offer a platform for every node architecture"
findings:
  description: Findings, each with id, severity, where, observed, why, remediation and details.
  returned: always
  type: list
  elements: dict
  sample:
    - id: IMAGE_ARCH_MISMATCH
      severity: error
      where: 127.0.0.1:5000/marketplace:v1
      observed: "image 127.0.0.1:5000/marketplace:v1 offers linux/arm64; no platform for node
        architecture(s) amd64 (node-1); used by Deployment/shop/marketplace"
      why: "the kubelet on a amd64 node picks the manifest for its own platform and finds none"
      remediation: "docker buildx build --platform linux/amd64,linux/arm64 -t 127.0.0.1:5000/marketplace:v1
        --push DIR"
      details:
        image: 127.0.0.1:5000/marketplace:v1
        platforms: [linux/arm64]
        missing_arches: [amd64]
        node_arches: [amd64]
        workloads: [Deployment/shop/marketplace]
        pull_errors: []
images:
  description: Every distinct image checked, as resolved from the registry.
  returned: always
  type: list
  elements: dict
  contains:
    image:
      description: Canonical reference (registry/repository:tag[@digest]).
      type: str
    digest:
      description: Digest of the manifest or index the reference resolved to.
      type: str
    media_type:
      description: Media type of that manifest or index.
      type: str
    kind:
      description: C(index) (OCI image index or Docker manifest list) or C(manifest) (a single image manifest);
        null when the image could not be resolved.
      type: str
    platforms:
      description: Platforms offered (os/architecture[/variant]).
      type: list
      elements: str
    status:
      description: HTTP status of the manifest request (null when the registry could not be reached).
      type: int
    error:
      description: Error text when the image could not be resolved.
      type: str
evidence:
  description: What the check saw, for the diagnosis (C(images) with ref, platforms, kind index/manifest, node_arches).
  returned: always
  type: dict
  sample: {"images": [{"ref": "127.0.0.1:5000/marketplace:v1", "platforms": ["linux/arm64"], "kind": "index",
                       "node_arches": ["amd64"]}]}
node_arches:
  description: Normalised node architectures the images were checked against.
  returned: always
  type: list
  elements: str
  sample: [amd64]
workloads:
  description: Workloads found in the manifests and the cluster (Kind/namespace/name).
  returned: always
  type: list
  elements: str
  sample: [Deployment/shop/marketplace]
"""

import os
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.arch import normalize_arch
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import (
    errors,
    summary_message,
)
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.image import (
    is_top_level,
    pull_errors_from_events,
    pull_errors_from_pods,
    start_errors_from_pods,
    workloads_from_objects,
)
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes.registry import (
    RegistryClient,
    check_images,
)

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover
    HAS_YAML = False

CHECK = "image_arch_check"
_EXTS = (".yml", ".yaml", ".json")


def load_manifests(module, paths):
    files = []
    for path in paths:
        if os.path.isdir(path):
            for root, _dirs, names in sorted(os.walk(path)):
                files.extend(os.path.join(root, n) for n in sorted(names) if n.endswith(_EXTS))
        elif os.path.isfile(path):
            files.append(path)
        else:
            module.fail_json(msg="%s: manifest path %s does not exist" % (CHECK, path))
    objs = []
    for name in files:
        try:
            with open(name) as fh:
                objs.extend(d for d in yaml.safe_load_all(fh) if d)
        except (OSError, yaml.YAMLError) as exc:
            module.fail_json(msg="%s: cannot read manifest %s: %s" % (CHECK, name, exc))
    return objs


def run(module):
    p = module.params
    nodes_by_arch = {}
    try:
        for arch in p["node_arches"]:
            nodes_by_arch.setdefault(normalize_arch(arch), [])
        for node in p["nodes"]:
            nodes_by_arch.setdefault(normalize_arch(node["architecture"]), []).append(node["name"])
    except ValueError as exc:
        module.fail_json(msg="%s: %s" % (CHECK, exc))

    workloads, pull_errors = [], []
    if p["manifests"]:
        if not HAS_YAML:
            module.fail_json(msg=missing_required_lib("PyYAML"))
        workloads.extend(workloads_from_objects(load_manifests(module, p["manifests"]), "manifest"))

    if p["kubeconfig"]:
        from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes import image_k8s

        if not image_k8s.HAS_KUBERNETES:
            module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(image_k8s.KUBERNETES_IMPORT_ERROR))
        reads = set(p["cluster_reads"])
        namespaces = p["namespaces"] or None
        try:
            reader = image_k8s.ClusterReader(p["kubeconfig"], p["context"], p["timeout"])
            if "nodes" in reads:
                for arch, names in reader.node_arches().items():
                    nodes_by_arch.setdefault(arch, []).extend(names)
            objs = reader.workload_objects(namespaces) if "workloads" in reads else []
            workloads.extend(workloads_from_objects([o for o in objs if is_top_level(o)], "cluster"))
            if "events" in reads:
                pods = [o for o in objs if o.get("kind") == "Pod"] if objs else reader.pods(namespaces)
                pull_errors.extend(pull_errors_from_pods(pods))
                pull_errors.extend(start_errors_from_pods(pods))
                pull_errors.extend(pull_errors_from_events(reader.events(namespaces)))
        except Exception as exc:  # pylint: disable=broad-except
            module.fail_json(msg="%s: reading the cluster through %s failed: %s" % (CHECK, p["kubeconfig"], exc))

    # a node known both from facts and from the cluster is listed once
    nodes_by_arch = dict((arch, sorted(set(names))) for arch, names in nodes_by_arch.items())
    if not nodes_by_arch:
        module.fail_json(msg="%s: no node architectures: give node_arches or nodes, or a kubeconfig with "
                             "cluster_reads including nodes" % CHECK)
    if not p["images"] and not workloads:
        module.fail_json(msg="%s: no images to check: give images, manifests or a kubeconfig" % CHECK)

    credentials = {c["registry"]: (c["username"], c["password"]) for c in p["registry_credentials"]}
    try:
        client = RegistryClient(credentials=credentials, docker_config=p["docker_config"],
                                insecure_registries=p["insecure_registries"], timeout=p["timeout"],
                                max_workers=p["max_workers"])
    except (OSError, ValueError) as exc:
        module.fail_json(msg="%s: cannot read docker_config %s: %s" % (CHECK, p["docker_config"], exc))
    findings, report = check_images(client, p["images"], workloads, list(nodes_by_arch), pull_errors,
                                    nodes_by_arch)
    result = {
        "changed": False,
        "findings": findings,
        "images": report,
        "node_arches": sorted(nodes_by_arch),
        "workloads": [w["id"] for w in workloads],
    }
    result["evidence"] = {"images": [
        {"ref": r.get("image"), "platforms": r.get("platforms") or [],
         "kind": "index" if ("index" in (r.get("media_type") or "") or "list" in (r.get("media_type") or ""))
         else "manifest", "node_arches": sorted(nodes_by_arch)} for r in report]}
    ok_text = "%d image(s) offer a platform for every node architecture" % len(report)
    result["msg"] = summary_message(CHECK, findings, ok_text)
    if errors(findings) and p["fail_on_findings"]:
        module.fail_json(**result)
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            images=dict(type="list", elements="str", default=[]),
            manifests=dict(type="list", elements="path", default=[]),
            kubeconfig=dict(type="path"),
            context=dict(type="str"),
            cluster_reads=dict(type="list", elements="str", choices=["nodes", "workloads", "events"],
                               default=["nodes", "workloads", "events"]),
            namespaces=dict(type="list", elements="str", default=[]),
            node_arches=dict(type="list", elements="str", default=[]),
            nodes=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str", required=True),
                architecture=dict(type="str", required=True),
            )),
            registry_credentials=dict(type="list", elements="dict", default=[], options=dict(
                registry=dict(type="str", required=True),
                username=dict(type="str", required=True),
                password=dict(type="str", required=True, no_log=True),
            )),
            docker_config=dict(type="path"),
            insecure_registries=dict(type="list", elements="str", default=[]),
            timeout=dict(type="float", default=10),
            max_workers=dict(type="int", default=8),
            fail_on_findings=dict(type="bool", default=True),
            stop=dict(type="raw"),
        ),
        supports_check_mode=True,
    )
    try:
        run(module)
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg="%s: unexpected error: %s" % (CHECK, exc), exception=traceback.format_exc())


if __name__ == "__main__":
    main()
