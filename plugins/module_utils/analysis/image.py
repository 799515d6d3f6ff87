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
* pull failures ("no match for platform") from pod statuses and events;
* the findings IMAGE_ARCH_MISMATCH and IMAGE_UNREACHABLE.

The registry I/O lives in ``_checks/registry.py``; ``evaluate()`` takes the
resolved results as plain data.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.arch import normalize_arch
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import (
    WARNING,
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


def manifest_target(ref):
    """What to ask the registry for: the digest when pinned, otherwise the tag."""
    return ref["digest"] or ref["tag"]


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


def available_arches(platforms):
    """Normalised architectures offered for linux."""
    return sorted({_arch(p.get("architecture")) for p in platforms if (p.get("os") or "linux") == "linux"})


def missing_arches(platforms, node_arches):
    """Node architectures for which the image offers no linux platform."""
    have = set(available_arches(platforms))
    return sorted({_arch(a) for a in node_arches} - have)


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


def pull_errors_from_pods(pods):
    """Containers waiting in ErrImagePull/ImagePullBackOff because of the platform."""
    out = []
    for pod in flatten_objects(pods):
        meta = pod.get("metadata") or {}
        where = "Pod/%s/%s" % (meta.get("namespace") or "default", meta.get("name"))
        status = pod.get("status") or {}
        for key in ("initContainerStatuses", "containerStatuses"):
            for cs in status.get(key) or []:
                waiting = ((cs.get("state") or {}).get("waiting")) or {}
                msg = waiting.get("message") or ""
                if waiting.get("reason") in _PULL_ERR_REASONS and _PLATFORM_ERR_RE.search(msg):
                    image = cs.get("image") or ""
                    m = _EVENT_IMAGE_RE.search(msg)
                    out.append({"pod": where, "image": m.group(1) if m else image,
                                "reason": waiting.get("reason"), "message": msg})
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


def mismatch_finding(ref, platforms, node_arches, missing, workloads, pull_errors, nodes_by_arch=None):
    have = available_arches(platforms)
    plats = ", ".join(platform_string(p) for p in platforms) or "none"
    lacking = []
    for arch in missing:
        names = (nodes_by_arch or {}).get(arch) or []
        lacking.append("%s (%s)" % (arch, ", ".join(sorted(names))) if names else arch)
    observed = "image %s offers %s; no platform for node architecture(s) %s" % (
        short_name(ref), plats, ", ".join(lacking))
    if workloads:
        observed += "; used by %s" % ", ".join(workloads)
    if pull_errors:
        observed += "; pull failed for %s" % ", ".join(sorted({e["pod"] for e in pull_errors}))
    why = ("the kubelet on a %s node picks the manifest for its own platform and finds none: "
           "ErrImagePull / ImagePullBackOff \"no match for platform in manifest\"" % "/".join(missing))
    fix = buildx_command(ref, set(have) | set(missing) if have else missing)
    pin = sorted(set(have) & set(_arch(a) for a in node_arches))
    if pin:
        fix += ", or pin the workload to %s nodes with nodeSelector kubernetes.io/arch: %s" % (
            "/".join(pin), pin[0])
    return finding("IMAGE_ARCH_MISMATCH", observed, why, fix, where=short_name(ref),
                   image=ref["name"], platforms=[platform_string(p) for p in platforms],
                   node_arches=sorted(set(_arch(a) for a in node_arches)), missing_arches=list(missing),
                   workloads=list(workloads), pull_errors=list(pull_errors))


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
        fix = ("create a pull secret (kubectl create secret docker-registry regcred --docker-server=%s "
               "--docker-username=USER --docker-password=PASS) and list it in the pod's imagePullSecrets; "
               "give this check registry_credentials or docker_config" % ref["registry"])
    elif status == 404:
        why = "the repository or tag does not exist in the registry, so no node can pull it"
        fix = "push the image (docker buildx build --platform linux/amd64,linux/arm64 -t %s --push DIR) " \
              "or correct the reference" % short_name(ref)
    elif status:
        why = "the registry fails the request, so pulls fail too"
        fix = "check the registry's health and the reference %s" % short_name(ref)
    else:
        why = "the registry is unreachable (network, DNS, TLS or timeout), so nodes cannot pull either"
        fix = ("allow egress from the nodes to %s (tcp 443, or its port); for a plain-HTTP registry add it "
               "to insecure_registries" % ref["registry"])
    return finding("IMAGE_UNREACHABLE", observed, why, fix, where=short_name(ref), image=ref["name"],
                   status=status, error=error or "", workloads=list(workloads), pull_errors=list(pull_errors))


def stale_pull_error_finding(ref, platforms, pull_errors):
    observed = "%s still report %s, but image %s now offers %s" % (
        ", ".join(sorted({e["pod"] for e in pull_errors})), pull_errors[0]["reason"], short_name(ref),
        ", ".join(platform_string(p) for p in platforms))
    return finding("IMAGE_ARCH_MISMATCH", observed,
                   "the pods failed before the image was fixed and are backing off",
                   "delete the pods so they pull again (kubectl delete pod ...)",
                   severity=WARNING, where=short_name(ref), image=ref["name"],
                   platforms=[platform_string(p) for p in platforms], pull_errors=list(pull_errors))


def invalid_reference_finding(text, error, workloads):
    observed = error + (("; used by %s" % ", ".join(workloads)) if workloads else "")
    return finding("INPUT_INVALID", observed, "the kubelet cannot parse this image reference either",
                   "fix the image field (registry/repository:tag or @sha256:digest)", where=str(text),
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


def evaluate(images, workloads, node_arches, resolved, pull_errors=(), nodes_by_arch=None):
    """Findings for every distinct image.

    ``resolved``: {canonical name: {"platforms": [...]} or {"status": int|None, "error": str}}
    as returned by ``registry.resolve_many``.
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
        wl_ids = [u for u in users if u]
        perrs = errors_by_image.get(name, [])
        if res.get("platforms") is None:
            findings.append(unreachable_finding(ref, res.get("status"), res.get("error"), wl_ids, perrs))
            continue
        platforms = res["platforms"]
        missing = set()
        affected = []
        if None in users:
            missing |= set(missing_arches(platforms, node_arches))
        for wl_id in wl_ids:
            landing = schedulable_arches(by_id[wl_id]["pod_spec"], node_arches)
            wl_missing = missing_arches(platforms, landing)
            if wl_missing:
                missing |= set(wl_missing)
                affected.append(wl_id)
        if missing:
            findings.append(mismatch_finding(ref, platforms, node_arches, sorted(missing), affected, perrs,
                                             nodes_by_arch))
        elif perrs:
            findings.append(stale_pull_error_finding(ref, platforms, perrs))
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
            "platforms": [platform_string(p) for p in res.get("platforms") or []],
            "status": res.get("status"),
            "error": res.get("error"),
        })
    return out
