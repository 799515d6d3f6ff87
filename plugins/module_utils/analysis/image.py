# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image architecture check: pure logic, no I/O.

* image reference parsing with Docker's normalisation rules (docker.io default
  registry, ``library/`` prefix for official images, ``latest`` default tag,
  digests, registry hosts with ports);
* manifest walking: Docker manifest list, OCI image index, single manifests whose
  config names the architecture;
* which node architectures a pod spec can land on (``nodeSelector`` and required
  node affinity on ``kubernetes.io/arch``);
* workloads and their images from manifests or API objects (init containers too);
* what containerd does with an image on a node (``platform_verdict``), modelled on
  containerd 1.6's platform matcher: an index entry must match the node's platform
  (os/architecture/variant after normalisation) or one containerd falls back to
  (amd64 -> 386, arm64 -> arm/v8..v5, arm/vN -> arm/vN-1..v5); an index without
  either fails the pull ("no match for platform in manifest"); a single manifest
  is pulled without any platform check and a wrong architecture fails only when
  the container starts ("exec format error", CrashLoopBackOff);
* pull failures ("no match for platform") and start failures ("exec format
  error") from pod statuses and events, leaving out the collection's own probe
  pods and the events about them (``is_probe_pod``, ``without_probe_events``);
* the findings IMAGE_ARCH_MISMATCH, IMAGE_EXEC_FORMAT, IMAGE_PLATFORM_FALLBACK and
  IMAGE_UNREACHABLE.

The registry I/O lives in ``probes/registry.py``; ``evaluate()`` takes the
resolved results as plain data.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.arch import normalize_arch
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import (
    WARNING,
    errors,
    finding,
)

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
LEGACY_DEFAULT_REGISTRIES = ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")
ARCH_LABELS = ("kubernetes.io/arch", "beta.kubernetes.io/arch")

MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_DOCKER_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
INDEX_TYPES = (MT_DOCKER_LIST, MT_OCI_INDEX)
MANIFEST_TYPES = (MT_DOCKER_MANIFEST, MT_OCI_MANIFEST)
ACCEPT = (MT_OCI_INDEX, MT_DOCKER_LIST, MT_OCI_MANIFEST, MT_DOCKER_MANIFEST)

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO_RE = re.compile(r"^%s(?:/%s)*$" % (_COMPONENT, _COMPONENT))
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?$")

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")

_PULL_ERR_REASONS = ("ErrImagePull", "ImagePullBackOff")
_PLATFORM_ERR_RE = re.compile(
    r"no match for platform in manifest|no matching manifest for \S+ in the manifest list", re.IGNORECASE
)
_EVENT_IMAGE_RE = re.compile(r'image "([^"]+)"')
_EXEC_ERR_RE = re.compile(r"exec format error", re.IGNORECASE)

# platform_verdict() results
PULL_OK = "ok"
NO_MATCH = "no_match"  # an index without the node's platform: the pull fails
EXEC_FORMAT = "exec_format"  # a single manifest of another architecture: pulled, fails at start
FALLBACK = "fallback"  # only a platform containerd falls back to (32-bit on a 64-bit node)


# --------------------------------------------------------------------------- references


def _is_registry_host(component):
    return "." in component or ":" in component or component == "localhost" or component.startswith("[")


def parse_reference(text):
    """Split an image reference into registry, repository, tag and digest.

    Raises ValueError with a message naming the problem.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty image reference")
    ref = text.strip()
    if ref != text or any(c.isspace() for c in ref):
        raise ValueError("invalid image reference %r: contains whitespace" % (text,))
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise ValueError("invalid image reference %r: bad digest %r" % (text, digest))
    registry = DEFAULT_REGISTRY
    first, sep, rest = ref.partition("/")
    if sep and _is_registry_host(first):
        if not _HOST_RE.match(first):
            raise ValueError("invalid image reference %r: bad registry host %r" % (text, first))
        registry = first
        remainder = rest
    else:
        remainder = ref
    if registry in LEGACY_DEFAULT_REGISTRIES:
        registry = DEFAULT_REGISTRY
    tag = None
    last_slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > last_slash:
        remainder, tag = remainder[:colon], remainder[colon + 1:]
        if not _TAG_RE.match(tag):
            raise ValueError("invalid image reference %r: bad tag %r" % (text, tag))
    repository = remainder
    if not repository:
        raise ValueError("invalid image reference %r: repository is missing" % (text,))
    if not _REPO_RE.match(repository):
        raise ValueError(
            "invalid image reference %r: repository %r must be lowercase letters, digits and separators"
            % (text, repository)
        )
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = "library/" + repository
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return {"registry": registry, "repository": repository, "tag": tag, "digest": digest,
            "name": canonical_name(registry, repository, tag, digest)}


def canonical_name(registry, repository, tag=None, digest=None):
    out = "%s/%s" % (registry, repository)
    if tag:
        out += ":" + tag
    if digest:
        out += "@" + digest
    return out


def short_name(ref):
    """The reference the way people write it (docker.io/library/ dropped)."""
    repo = ref["repository"]
    if ref["registry"] == DEFAULT_REGISTRY:
        if repo.startswith("library/"):
            repo = repo[len("library/"):]
        out = repo
    else:
        out = "%s/%s" % (ref["registry"], repo)
    if ref.get("tag"):
        out += ":" + ref["tag"]
    if ref.get("digest"):
        out += "@" + ref["digest"]
    return out


# --------------------------------------------------------------------------- platforms


def _arch(name):
    try:
        return normalize_arch(name)
    except ValueError:
        return str(name or "unknown").strip().lower()


def platform_string(platform):
    os_name = platform.get("os") or "unknown"
    arch = platform.get("architecture") or "unknown"
    out = "%s/%s" % (os_name, arch)
    if platform.get("variant"):
        out += "/" + platform["variant"]
    return out


def parse_platform(text):
    """'linux/arm64/v8' -> {'os': 'linux', 'architecture': 'arm64', 'variant': 'v8'}."""
    parts = str(text).strip().split("/")
    if len(parts) < 2 or not all(parts[:2]):
        raise ValueError("invalid platform %r (expected os/arch[/variant])" % (text,))
    out = {"os": parts[0], "architecture": parts[1]}
    if len(parts) > 2 and parts[2]:
        out["variant"] = parts[2]
    return out


def classify_manifest(media_type, doc):
    """Walk one manifest document.

    Returns ``("index", entries)`` where each entry is ``{"digest", "media_type",
    "platform"}`` (platform may be None), or ``("image", config_descriptor)``.
    Attestation entries (``unknown/unknown``, buildx provenance) are dropped.
    Raises ValueError for documents that are neither.
    """
    if not isinstance(doc, dict):
        raise ValueError("manifest is not a JSON object")
    mt = media_type or doc.get("mediaType") or ""
    mt = mt.split(";")[0].strip()
    if mt in INDEX_TYPES or (not mt and "manifests" in doc):
        entries = []
        for desc in doc.get("manifests") or []:
            annotations = desc.get("annotations") or {}
            if annotations.get("vnd.docker.reference.type") == "attestation-manifest":
                continue
            platform = desc.get("platform")
            if platform and platform.get("os") == "unknown" and platform.get("architecture") == "unknown":
                continue
            entries.append({"digest": desc.get("digest"), "media_type": desc.get("mediaType"),
                            "platform": platform or None})
        return "index", entries
    if mt in MANIFEST_TYPES or (not mt and "config" in doc):
        config = doc.get("config")
        if not isinstance(config, dict) or not config.get("digest"):
            raise ValueError("image manifest has no config descriptor")
        return "image", config
    if mt == MT_DOCKER_V1_SIGNED or doc.get("schemaVersion") == 1:
        return "v1", {"os": "linux", "architecture": doc.get("architecture") or "unknown"}
    raise ValueError("unsupported manifest media type %r" % (mt,))


def platform_from_config(config):
    """The platform an image config (the config blob) names."""
    if not isinstance(config, dict) or not config.get("architecture"):
        raise ValueError("image config names no architecture")
    out = {"os": config.get("os") or "linux", "architecture": config["architecture"]}
    if config.get("variant"):
        out["variant"] = config["variant"]
    return out


# containerd 1.6's spelling of architectures and variants (platforms.Normalize): these aliases
# also reset the variant; armhf/armel name one
_CTR_ARCH = {"i386": ("386", ""), "x86_64": ("amd64", ""), "x86-64": ("amd64", ""),
             "armhf": ("arm", "v7"), "armel": ("arm", "v6")}


def normalize_platform(platform):
    """A platform as containerd compares it: lowercase os, canonical architecture and variant
    (arm64 v8 is the default and spelled empty; plain arm is arm/v7)."""
    os_name = str(platform.get("os") or "").strip().lower()
    arch = str(platform.get("architecture") or "").strip().lower()
    variant = str(platform.get("variant") or "").strip().lower()
    if arch in _CTR_ARCH:
        arch, variant = _CTR_ARCH[arch]
    elif arch in ("arm64", "aarch64"):
        arch = "arm64"
        if variant in ("8", "v8"):
            variant = ""
    elif arch == "arm":
        if variant in ("", "7"):
            variant = "v7"
        elif variant in ("5", "6", "8"):
            variant = "v" + variant
    return {"os": os_name, "architecture": arch, "variant": variant}


def node_platform(arch):
    """The platform of a Linux node of architecture ``arch`` (arm nodes are arm/v7)."""
    return normalize_platform({"os": "linux", "architecture": _arch(arch)})


def _arm_down(os_name, version):
    return [{"os": os_name, "architecture": "arm", "variant": "v%d" % v} for v in range(version, 4, -1)]


def compatible_platforms(node):
    """The platforms containerd accepts for a node, best first (platforms.Only): the node's own,
    then 386 on amd64, the older arm variants on arm, and 32-bit arm (v8 down to v5) on arm64."""
    node = normalize_platform(node)
    out = [node]
    arch, os_name = node["architecture"], node["os"]
    if arch == "amd64":
        out.append({"os": os_name, "architecture": "386", "variant": ""})
    elif arch == "arm" and re.match(r"^v[0-9]+$", node["variant"]):
        out.extend(_arm_down(os_name, int(node["variant"][1:]) - 1))
    elif arch == "arm64":
        out.extend(_arm_down(os_name, 8))
    return out


def platform_rank(node, platform):
    """0 when ``platform`` is the node's own, n > 0 when containerd falls back to it, None when never."""
    want = normalize_platform(platform)
    for rank, cand in enumerate(compatible_platforms(node)):
        if cand == want:
            return rank
    return None


def resolution_kind(res):
    """``index`` or ``manifest`` for a registry result (``kind``, else its media type; index by default)."""
    kind = res.get("kind")
    if kind in ("index", "manifest"):
        return kind
    media_type = (res.get("media_type") or "").split(";")[0].strip()
    if media_type in MANIFEST_TYPES or media_type == MT_DOCKER_V1_SIGNED:
        return "manifest"
    return "index"


def platform_verdict(res, arch):
    """What containerd does with this image on a node of architecture ``arch``.

    Returns ``(verdict, platform)``: the platform containerd would run (None for NO_MATCH).
    An index is matched entry by entry against the node's platform (exact first, then the
    fallbacks); a single manifest is pulled without a platform check, so its architecture only
    matters when the container starts.
    """
    node = node_platform(arch)
    platforms = res.get("platforms") or []
    ranked = [(platform_rank(node, p), i) for i, p in enumerate(platforms)]
    ranked = sorted((r, i) for r, i in ranked if r is not None)
    if resolution_kind(res) == "manifest":
        if not platforms:
            return EXEC_FORMAT, None
        if not ranked:
            return EXEC_FORMAT, platforms[0]
    elif not ranked:
        return NO_MATCH, None
    rank, index = ranked[0]
    return (PULL_OK if rank == 0 else FALLBACK), platforms[index]


def available_arches(platforms):
    """Normalised architectures offered for linux."""
    return sorted({_arch(p.get("architecture")) for p in platforms if (p.get("os") or "linux") == "linux"})


# --------------------------------------------------------------------------- scheduling


def _expr_allows(expr, arch):
    op = expr.get("operator")
    values = [_arch(v) for v in expr.get("values") or []]
    if op == "In":
        return arch in values
    if op == "NotIn":
        return arch not in values
    if op == "Exists":
        return True
    if op == "DoesNotExist":
        return False
    return True  # Gt/Lt make no sense for arch; do not exclude anything


def arch_allowed(pod_spec, arch):
    """Can a pod with this spec land on a node of architecture ``arch``?

    Only the ``kubernetes.io/arch`` (and beta) label is considered; other
    constraints are assumed satisfiable.
    """
    arch = _arch(arch)
    pod_spec = pod_spec or {}
    selector = pod_spec.get("nodeSelector") or {}
    for label in ARCH_LABELS:
        if label in selector and _arch(selector[label]) != arch:
            return False
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return True
    for term in terms:  # terms are ORed
        exprs = [e for e in (term.get("matchExpressions") or []) if e.get("key") in ARCH_LABELS]
        if all(_expr_allows(e, arch) for e in exprs):  # expressions are ANDed
            return True
    return False


def schedulable_arches(pod_spec, node_arches):
    return sorted({_arch(a) for a in node_arches if arch_allowed(pod_spec, a)})


# --------------------------------------------------------------------------- workloads


def pod_spec_of(obj):
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return ((((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec")) or {}
    return (spec.get("template") or {}).get("spec") or {}


def workload_id(obj):
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace") or "default"
    return "%s/%s/%s" % (obj.get("kind"), ns, meta.get("name") or "?")


def flatten_objects(objs):
    """Expand ``*List`` objects, drop non-dicts."""
    out = []
    for obj in objs or []:
        if not isinstance(obj, dict):
            continue
        if str(obj.get("kind", "")).endswith("List") and isinstance(obj.get("items"), list):
            out.extend(flatten_objects(obj["items"]))
        else:
            out.append(obj)
    return out


def workloads_from_objects(objs, source="manifest"):
    """Workloads (controllers and pods) with their images and pod spec."""
    out = []
    for obj in flatten_objects(objs):
        if obj.get("kind") not in WORKLOAD_KINDS:
            continue
        spec = pod_spec_of(obj)
        images = []
        for key, init in (("initContainers", True), ("containers", False), ("ephemeralContainers", False)):
            for c in spec.get(key) or []:
                if c.get("image"):
                    images.append({"container": c.get("name") or "?", "image": c["image"], "init": init})
        out.append({"id": workload_id(obj), "kind": obj.get("kind"), "source": source,
                    "pod_spec": spec, "images": images})
    return out


def is_top_level(obj):
    """Skip objects a controller manages (pods of a ReplicaSet, jobs of a CronJob...)."""
    return not (obj.get("metadata") or {}).get("ownerReferences")


# --------------------------------------------------------------------------- pull failures


def _container_statuses(pods):
    """(where, container status) of every init and app container of the pods."""
    for pod in flatten_objects(pods):
        meta = pod.get("metadata") or {}
        where = "Pod/%s/%s" % (meta.get("namespace") or "default", meta.get("name"))
        status = pod.get("status") or {}
        for key in ("initContainerStatuses", "containerStatuses"):
            for cs in status.get(key) or []:
                yield where, cs


def pull_errors_from_pods(pods):
    """Containers waiting in ErrImagePull/ImagePullBackOff because of the platform."""
    out = []
    for where, cs in _container_statuses(pods):
        waiting = ((cs.get("state") or {}).get("waiting")) or {}
        msg = waiting.get("message") or ""
        if waiting.get("reason") in _PULL_ERR_REASONS and _PLATFORM_ERR_RE.search(msg):
            image = cs.get("image") or ""
            m = _EVENT_IMAGE_RE.search(msg)
            out.append({"pod": where, "image": m.group(1) if m else image,
                        "reason": waiting.get("reason"), "message": msg})
    return out


def start_errors_from_pods(pods):
    """Containers whose start failed with "exec format error": the image was pulled, its binaries
    are for another architecture (CrashLoopBackOff / RunContainerError, the last termination
    StartError or Error)."""
    out = []
    for where, cs in _container_statuses(pods):
        state = cs.get("state") or {}
        waiting = state.get("waiting") or {}
        ended = state.get("terminated") or (cs.get("lastState") or {}).get("terminated") or {}
        for reason, msg in ((waiting.get("reason"), waiting.get("message")),
                            (ended.get("reason"), ended.get("message"))):
            if msg and _EXEC_ERR_RE.search(msg):
                out.append({"pod": where, "image": cs.get("image") or "",
                            "reason": waiting.get("reason") or reason or "Error", "message": msg})
                break
    return out


# The collection's own short-lived probe pods (dns_probe_pods, paths_probe, mesh_probe): no workload of the
# cluster, and validate.yml may run them while the image check reads. Each run labels its pods
# kubeadm-ec2/<kind>-run (dns-probe-run, path-probe-run, mesh-run), and their names come from these
# generateName prefixes.
PROBE_LABEL_PREFIX, PROBE_LABEL_SUFFIX = "kubeadm-ec2/", "-run"
PROBE_POD_NAME_RE = re.compile(r"^(?:dns|path|mesh)-probe-[a-z0-9.-]+$")


def is_probe_pod(pod):
    """A pod the collection's probes made: it carries a probe run's label."""
    return any(k.startswith(PROBE_LABEL_PREFIX) and k.endswith(PROBE_LABEL_SUFFIX)
               for k in ((pod.get("metadata") or {}).get("labels") or {}))


def without_probe_events(events, pods):
    """``events`` less those about the collection's probe pods, judged against ``pods`` (the pods of the
    same namespaces as listed, probe pods included): an event whose object is a Pod that is listed with a
    probe label (by uid, else namespace and name), or that is no longer listed and is named as the probes
    name their pods (probe pods are deleted when their run ends; their events stay an hour). A listed pod
    of that name without a probe label is the cluster's own: its events stay."""
    listed, probes = {}, set()
    for pod in pods or []:
        meta = pod.get("metadata") or {}
        key = (meta.get("namespace") or "default", meta.get("name"))
        listed[key] = pod
        if is_probe_pod(pod):
            probes.add(key)
            if meta.get("uid"):
                probes.add(meta["uid"])
    out = []
    for ev in flatten_objects(events):
        obj = ev.get("involvedObject") or ev.get("regarding") or {}
        key = (obj.get("namespace") or "default", obj.get("name"))
        if (obj.get("kind") or "Pod") == "Pod" and (
                (obj.get("uid") and obj["uid"] in probes) or key in probes
                or (key not in listed and PROBE_POD_NAME_RE.match(obj.get("name") or ""))):
            continue
        out.append(ev)
    return out


def pull_errors_from_events(events):
    out = []
    for ev in flatten_objects(events):
        msg = ev.get("message") or ""
        if not _PLATFORM_ERR_RE.search(msg):
            continue
        m = _EVENT_IMAGE_RE.search(msg)
        if not m:
            continue
        obj = ev.get("involvedObject") or ev.get("regarding") or {}
        where = "%s/%s/%s" % (obj.get("kind") or "Pod", obj.get("namespace") or "default", obj.get("name"))
        out.append({"pod": where, "image": m.group(1), "reason": ev.get("reason") or "Failed", "message": msg})
    return out


# --------------------------------------------------------------------------- findings


def buildx_command(ref, arches):
    plats = ",".join("linux/%s" % a for a in sorted(set(arches)))
    return "docker buildx build --platform %s -t %s --push DIR" % (plats, short_name(ref))


def _nodes_text(arches, nodes_by_arch):
    out = []
    for arch in arches:
        names = (nodes_by_arch or {}).get(arch) or []
        out.append("%s (%s)" % (arch, ", ".join(sorted(names))) if names else arch)
    return ", ".join(out)


def _build_cli(ref, have, lacking):
    """The one buildx command that builds every offered architecture plus the lacking ones."""
    return buildx_command(ref, set(have) | set(lacking) if have else lacking)


def _fix(ref, have, lacking, ok_arches):
    """The buildx command for every architecture offered plus the lacking ones (every node
    architecture without a build of its own), and the nodeSelector pin to the architectures that
    already run the image, when there are some."""
    fix = _build_cli(ref, have, lacking)
    pin = sorted(ok_arches)
    if pin:
        fix += ", or pin the workload to %s nodes with nodeSelector kubernetes.io/arch: %s" % (
            "/".join(pin), pin[0])
    return fix


def _users(observed, workloads, errs, what):
    if workloads:
        observed += "; used by %s" % ", ".join(workloads)
    if errs:
        observed += "; %s failed for %s" % (what, ", ".join(sorted({e["pod"] for e in errs})))
    return observed


def mismatch_finding(ref, platforms, node_arches, missing, workloads, pull_errors, nodes_by_arch=None,
                     ok_arches=None, build=None):
    """An index without the node's platform: containerd fails the pull. ``build``: the architectures
    the fix builds for besides the offered ones (default ``missing``)."""
    have = available_arches(platforms)
    plats = ", ".join(platform_string(p) for p in platforms) or "none"
    node_arches = sorted(set(_arch(a) for a in node_arches))
    observed = "image %s offers %s; no platform for node architecture(s) %s" % (
        short_name(ref), plats, _nodes_text(missing, nodes_by_arch))
    observed = _users(observed, workloads, pull_errors, "pull")
    why = ("the kubelet on a %s node picks the manifest for its own platform and finds none: "
           "ErrImagePull / ImagePullBackOff \"no match for platform in manifest\"" % "/".join(missing))
    if ok_arches is None:
        ok_arches = set(have) & set(node_arches)
    fix = _fix(ref, have, build or missing, ok_arches)
    return finding("IMAGE_ARCH_MISMATCH", observed, why, fix, where=short_name(ref),
                   cli=_build_cli(ref, have, build or missing),
                   image=ref["name"], platforms=[platform_string(p) for p in platforms],
                   node_arches=node_arches, missing_arches=list(missing),
                   workloads=list(workloads), pull_errors=list(pull_errors))


def exec_format_finding(ref, platform, node_arches, exec_arches, workloads, start_errors, nodes_by_arch=None,
                        ok_arches=(), build=None):
    """A single manifest of another architecture: pulled without a platform check, fails at start."""
    plat = platform_string(platform) if platform else "an image whose config names no architecture"
    have = available_arches([platform]) if platform else []
    observed = ("image %s is a single %s manifest (no index), so nodes of architecture(s) %s pull it and "
                "cannot run it" % (short_name(ref), plat, _nodes_text(exec_arches, nodes_by_arch)))
    observed = _users(observed, workloads, start_errors, "start")
    why = ("a single manifest lists no platforms, so containerd pulls it on every node without a platform check; "
           "the pull succeeds and the %s kernel refuses the image's %s binaries when the container starts: "
           "\"exec format error\", CrashLoopBackOff" % ("/".join(exec_arches), "/".join(have) or "unknown"))
    return finding("IMAGE_EXEC_FORMAT", observed, why, _fix(ref, have, build or exec_arches, ok_arches),
                   where=short_name(ref), cli=_build_cli(ref, have, build or exec_arches), image=ref["name"], platforms=[plat] if platform else [],
                   node_arches=sorted(set(_arch(a) for a in node_arches)), exec_arches=list(exec_arches),
                   workloads=list(workloads), start_errors=list(start_errors))


def fallback_finding(ref, platforms, node_arches, fallback, workloads, nodes_by_arch=None, ok_arches=(),
                     build=None):
    """Only a platform containerd falls back to (a 32-bit build for a 64-bit node): a warning."""
    used = ", ".join("%s -> %s" % (_nodes_text([arch], nodes_by_arch), platform_string(fallback[arch]))
                     for arch in sorted(fallback))
    observed = "image %s offers %s and no build for node architecture(s) %s; containerd falls back to %s" % (
        short_name(ref), ", ".join(platform_string(p) for p in platforms), ", ".join(sorted(fallback)), used)
    observed = _users(observed, workloads, (), "")
    why = ("containerd accepts a 32-bit build on a 64-bit node; it starts only where the CPU and kernel run "
           "32-bit code, elsewhere the container fails with \"exec format error\"")
    return finding("IMAGE_PLATFORM_FALLBACK", observed, why,
                   _fix(ref, available_arches(platforms), build or sorted(fallback), ok_arches), severity=WARNING,
                   where=short_name(ref), image=ref["name"], platforms=[platform_string(p) for p in platforms],
                   node_arches=sorted(set(_arch(a) for a in node_arches)),
                   fallback={a: platform_string(p) for a, p in fallback.items()}, workloads=list(workloads))


def unreachable_finding(ref, status, error, workloads, pull_errors=()):
    if status:
        observed = "registry %s answered HTTP %s for %s" % (ref["registry"], status, short_name(ref))
    else:
        observed = "registry %s could not be reached for %s" % (ref["registry"], short_name(ref))
    if error:
        observed += " (%s)" % error
    if workloads:
        observed += "; used by %s" % ", ".join(workloads)
    if status in (401, 403):
        why = "the registry refuses the pull without credentials; nodes without a pull secret fail the same way"
        cli = ("kubectl create secret docker-registry regcred --docker-server=%s --docker-username=USER "
               "--docker-password=PASS" % ref["registry"])
        fix = ("create a pull secret (%s) and list it in the pod's imagePullSecrets; give this check "
               "registry_credentials or docker_config" % cli)
    elif status == 404:
        why = "the repository or tag does not exist in the registry, so no node can pull it"
        cli = "docker buildx build --platform linux/amd64,linux/arm64 -t %s --push DIR" % short_name(ref)
        fix = "push the image (%s) or correct the reference" % cli
    elif status:
        why = "the registry fails the request, so pulls fail too"
        fix = "check the registry's health and the reference %s" % short_name(ref)
        cli = "curl -sS -o /dev/null -w '%%{http_code}' https://%s/v2/" % ref["registry"]
    else:
        why = "the registry is unreachable (network, DNS, TLS or timeout), so nodes cannot pull either"
        fix = ("allow egress from the nodes to %s (tcp 443, or its port); for a plain-HTTP registry add it "
               "to insecure_registries" % ref["registry"])
        cli = "curl -sS -o /dev/null -w '%%{http_code}' https://%s/v2/" % ref["registry"]
    return finding("IMAGE_UNREACHABLE", observed, why, fix, where=short_name(ref), image=ref["name"], cli=cli,
                   status=status, error=error or "", workloads=list(workloads), pull_errors=list(pull_errors))


def stale_pull_error_finding(ref, platforms, pull_errors):
    observed = "%s still report %s, but image %s now offers %s" % (
        ", ".join(sorted({e["pod"] for e in pull_errors})), pull_errors[0]["reason"], short_name(ref),
        ", ".join(platform_string(p) for p in platforms))
    fid = "IMAGE_EXEC_FORMAT" if all(_EXEC_ERR_RE.search(e.get("message") or "") for e in pull_errors) \
        else "IMAGE_ARCH_MISMATCH"
    return finding(fid, observed,
                   "the pods failed before the image was fixed and are backing off",
                   "delete the pods so they pull again (kubectl delete pod ...)",
                   severity=WARNING, where=short_name(ref), image=ref["name"],
                   platforms=[platform_string(p) for p in platforms], pull_errors=list(pull_errors))


def invalid_reference_finding(text, error, workloads):
    observed = error + (("; used by %s" % ", ".join(workloads)) if workloads else "")
    return finding("INPUT_INVALID", observed, "the kubelet cannot parse this image reference either",
                   "fix the image field (registry/repository:tag or @sha256:digest)", where=str(text),
                   cli="kubectl get pods -A -o jsonpath='{..image}'",
                   workloads=list(workloads))


# --------------------------------------------------------------------------- evaluation


def collect_images(images=(), workloads=()):
    """Distinct references -> usage. Returns (refs, usage, invalid).

    refs: {canonical name: parsed ref}; usage: {canonical name: [workload ids]} (None for
    images given directly, they are checked against every node architecture);
    invalid: {text: (error, [workload ids])}.
    """
    refs, usage, invalid = {}, {}, {}
    for text in images or ():
        try:
            ref = parse_reference(text)
        except ValueError as exc:
            invalid.setdefault(text, (str(exc), []))
            continue
        refs.setdefault(ref["name"], ref)
        if None not in usage.setdefault(ref["name"], []):
            usage[ref["name"]].append(None)
    for wl in workloads or ():
        for img in wl["images"]:
            try:
                ref = parse_reference(img["image"])
            except ValueError as exc:
                invalid.setdefault(img["image"], (str(exc), []))[1].append(wl["id"])
                continue
            refs.setdefault(ref["name"], ref)
            if wl["id"] not in usage.setdefault(ref["name"], []):
                usage[ref["name"]].append(wl["id"])
    return refs, usage, invalid


def _split_errors(errs):
    """(pull errors, start errors) of one image."""
    start = [e for e in errs if _EXEC_ERR_RE.search(e.get("message") or "")]
    return [e for e in errs if e not in start], start


def judge_image(ref, res, usage, by_id, node_arches, errs=(), nodes_by_arch=None):
    """The findings for one resolved image: for every node architecture one of its users can land on,
    what containerd does (``platform_verdict``)."""
    platforms = res["platforms"]
    verdicts = {arch: platform_verdict(res, arch) for arch in node_arches}
    bad = {NO_MATCH: set(), EXEC_FORMAT: set(), FALLBACK: set()}
    affected = {NO_MATCH: [], EXEC_FORMAT: [], FALLBACK: []}
    if None in usage:
        for arch in node_arches:
            if verdicts[arch][0] != PULL_OK:
                bad[verdicts[arch][0]].add(arch)
    for wl_id in [u for u in usage if u]:
        hit = set()
        for arch in schedulable_arches(by_id[wl_id]["pod_spec"], node_arches):
            verdict = verdicts[arch][0]
            if verdict != PULL_OK:
                bad[verdict].add(arch)
                hit.add(verdict)
        for verdict in sorted(hit):
            affected[verdict].append(wl_id)
    ok_arches = {a for a, v in verdicts.items() if v[0] == PULL_OK}
    build = sorted(bad[NO_MATCH] | bad[EXEC_FORMAT] | bad[FALLBACK])  # one fix builds for all of them
    pull_errs, start_errs = _split_errors(errs)
    out = []
    if bad[NO_MATCH]:
        out.append(mismatch_finding(ref, platforms, node_arches, sorted(bad[NO_MATCH]), affected[NO_MATCH],
                                    pull_errs, nodes_by_arch, ok_arches, build))
    if bad[EXEC_FORMAT]:
        out.append(exec_format_finding(ref, platforms[0] if platforms else None, node_arches,
                                       sorted(bad[EXEC_FORMAT]), affected[EXEC_FORMAT], start_errs,
                                       nodes_by_arch, ok_arches, build))
    if bad[FALLBACK]:
        out.append(fallback_finding(ref, platforms, node_arches, {a: verdicts[a][1] for a in bad[FALLBACK]},
                                    affected[FALLBACK], nodes_by_arch, ok_arches, build))
    stale = [e for e in pull_errs if not bad[NO_MATCH]] + [e for e in start_errs if not bad[EXEC_FORMAT]]
    if stale and not errors(out):
        out.append(stale_pull_error_finding(ref, platforms, stale))
    return out


def evaluate(images, workloads, node_arches, resolved, pull_errors=(), nodes_by_arch=None):
    """Findings for every distinct image.

    ``resolved``: {canonical name: {"platforms": [...], "kind": "index"|"manifest"} or
    {"status": int|None, "error": str}} as returned by ``registry.resolve_many``.
    ``pull_errors``: pull failures (``pull_errors_from_*``) and start failures
    (``start_errors_from_pods``) seen in the cluster.
    """
    node_arches = sorted({_arch(a) for a in node_arches})
    refs, usage, invalid = collect_images(images, workloads)
    by_id = {wl["id"]: wl for wl in workloads or ()}
    errors_by_image = {}
    for err in pull_errors or ():
        try:
            name = parse_reference(err["image"])["name"]
        except ValueError:
            continue
        errors_by_image.setdefault(name, []).append(err)
    findings = []
    for text in sorted(invalid):
        err, wls = invalid[text]
        findings.append(invalid_reference_finding(text, err, wls))
    for name in sorted(refs):
        ref = refs[name]
        res = resolved.get(name) or {"status": None, "error": "not resolved"}
        users = usage.get(name) or []
        perrs = errors_by_image.get(name, [])
        if res.get("platforms") is None:
            findings.append(unreachable_finding(ref, res.get("status"), res.get("error"), [u for u in users if u],
                                                perrs))
            continue
        findings.extend(judge_image(ref, res, users, by_id, node_arches, perrs, nodes_by_arch))
    return findings


def image_report(refs, resolved):
    """Per-image summary returned by the module."""
    out = []
    for name in sorted(refs):
        res = resolved.get(name) or {}
        out.append({
            "image": name,
            "digest": res.get("digest"),
            "media_type": res.get("media_type"),
            "kind": resolution_kind(res) if res.get("platforms") is not None else None,
            "platforms": [platform_string(p) for p in res.get("platforms") or []],
            "status": res.get("status"),
            "error": res.get("error"),
        })
    return out
