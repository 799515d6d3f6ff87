"""Pure logic of the image architecture check: table-driven, exact messages."""

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import image as img
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes.registry import (
    load_docker_config,
    normalize_registry_host,
)

D = "sha256:" + "a" * 64

# ----------------------------------------------------------------------------- references

REFS = [
    # text, registry, repository, tag, digest, canonical
    ("nginx", "docker.io", "library/nginx", "latest", None, "docker.io/library/nginx:latest"),
    ("nginx:1.27", "docker.io", "library/nginx", "1.27", None, "docker.io/library/nginx:1.27"),
    ("docker.io/nginx", "docker.io", "library/nginx", "latest", None, "docker.io/library/nginx:latest"),
    ("index.docker.io/library/nginx:1", "docker.io", "library/nginx", "1", None, "docker.io/library/nginx:1"),
    ("bitnami/redis:7", "docker.io", "bitnami/redis", "7", None, "docker.io/bitnami/redis:7"),
    ("localhost/app", "localhost", "app", "latest", None, "localhost/app:latest"),
    ("localhost:5000/app:v2", "localhost:5000", "app", "v2", None, "localhost:5000/app:v2"),
    ("127.0.0.1:5000/shop/marketplace:v1", "127.0.0.1:5000", "shop/marketplace", "v1", None,
     "127.0.0.1:5000/shop/marketplace:v1"),
    ("registry.example.com/a/b/c", "registry.example.com", "a/b/c", "latest", None,
     "registry.example.com/a/b/c:latest"),
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/api:2024-01",
     "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "api", "2024-01", None,
     "123456789012.dkr.ecr.eu-west-1.amazonaws.com/api:2024-01"),
    ("nginx@" + D, "docker.io", "library/nginx", None, D, "docker.io/library/nginx@" + D),
    ("nginx:1.27@" + D, "docker.io", "library/nginx", "1.27", D, "docker.io/library/nginx:1.27@" + D),
    ("[::1]:5000/app:v1", "[::1]:5000", "app", "v1", None, "[::1]:5000/app:v1"),
    ("quay.io/prometheus/node-exporter:v1.8.2", "quay.io", "prometheus/node-exporter", "v1.8.2", None,
     "quay.io/prometheus/node-exporter:v1.8.2"),
    ("my_user/my__app-x:tag_1.0-rc", "docker.io", "my_user/my__app-x", "tag_1.0-rc", None,
     "docker.io/my_user/my__app-x:tag_1.0-rc"),
]


@pytest.mark.parametrize("text,registry,repository,tag,digest,canonical", REFS)
def test_parse_reference(text, registry, repository, tag, digest, canonical):
    ref = img.parse_reference(text)
    assert (ref["registry"], ref["repository"], ref["tag"], ref["digest"], ref["name"]) == (
        registry, repository, tag, digest, canonical)


BAD_REFS = [
    ("", "empty image reference"),
    ("Nginx", "invalid image reference 'Nginx': repository 'Nginx' must be lowercase letters, digits and "
              "separators"),
    ("nginx:", "invalid image reference 'nginx:': bad tag ''"),
    ("nginx@sha256:abc", "invalid image reference 'nginx@sha256:abc': bad digest 'sha256:abc'"),
    ("registry.example.com/", "invalid image reference 'registry.example.com/': repository is missing"),
    ("ngi nx", "invalid image reference 'ngi nx': contains whitespace"),
    ("bad_host:x:y/app", "invalid image reference 'bad_host:x:y/app': bad registry host 'bad_host:x:y'"),
    ("app:-bad", "invalid image reference 'app:-bad': bad tag '-bad'"),
]


@pytest.mark.parametrize("text,message", BAD_REFS)
def test_parse_reference_rejects(text, message):
    with pytest.raises(ValueError) as exc:
        img.parse_reference(text)
    assert str(exc.value) == message


@pytest.mark.parametrize("text,short", [
    ("nginx", "nginx:latest"),
    ("docker.io/bitnami/redis:7", "bitnami/redis:7"),
    ("127.0.0.1:5000/marketplace:v1", "127.0.0.1:5000/marketplace:v1"),
    ("nginx@" + D, "nginx@" + D),
])
def test_short_name(text, short):
    assert img.short_name(img.parse_reference(text)) == short


@pytest.mark.parametrize("host,norm", [
    ("https://index.docker.io/v1/", "docker.io"),
    ("registry-1.docker.io", "docker.io"),
    ("127.0.0.1:5000", "127.0.0.1:5000"),
    ("http://127.0.0.1:5000/", "127.0.0.1:5000"),
    ("Registry.Example.com", "registry.example.com"),
])
def test_normalize_registry_host(host, norm):
    assert normalize_registry_host(host) == norm


def test_load_docker_config_auth_and_plain_fields():
    cfg = {"auths": {"https://index.docker.io/v1/": {"auth": "dXNlcjpwYTpzcw=="},  # user:pa:ss
                     "127.0.0.1:5000": {"username": "alice", "password": "pw"},
                     "ghcr.io": {}}}
    assert load_docker_config(cfg) == {"docker.io": ("user", "pa:ss"), "127.0.0.1:5000": ("alice", "pw")}


# ----------------------------------------------------------------------------- manifests

INDEX = {"schemaVersion": 2, "mediaType": img.MT_OCI_INDEX, "manifests": [
    {"mediaType": img.MT_OCI_MANIFEST, "digest": "sha256:1", "platform": {"os": "linux", "architecture": "amd64"}},
    {"mediaType": img.MT_OCI_MANIFEST, "digest": "sha256:2",
     "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
    {"mediaType": img.MT_OCI_MANIFEST, "digest": "sha256:3", "platform": {"os": "unknown", "architecture": "unknown"},
     "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
]}
DLIST = {"schemaVersion": 2, "mediaType": img.MT_DOCKER_LIST, "manifests": [
    {"mediaType": img.MT_DOCKER_MANIFEST, "digest": "sha256:4", "platform": {"os": "linux", "architecture": "arm"}},
    {"mediaType": img.MT_DOCKER_MANIFEST, "digest": "sha256:5"},
]}
SINGLE = {"schemaVersion": 2, "mediaType": img.MT_DOCKER_MANIFEST,
          "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": "sha256:c", "size": 1},
          "layers": []}


@pytest.mark.parametrize("media_type,doc,expected", [
    (img.MT_OCI_INDEX, INDEX, ("index", [
        {"digest": "sha256:1", "media_type": img.MT_OCI_MANIFEST, "platform": {"os": "linux", "architecture": "amd64"}},
        {"digest": "sha256:2", "media_type": img.MT_OCI_MANIFEST,
         "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}])),
    (img.MT_DOCKER_LIST + "; charset=utf-8", DLIST, ("index", [
        {"digest": "sha256:4", "media_type": img.MT_DOCKER_MANIFEST, "platform": {"os": "linux", "architecture": "arm"}},
        {"digest": "sha256:5", "media_type": img.MT_DOCKER_MANIFEST, "platform": None}])),
    (img.MT_DOCKER_MANIFEST, SINGLE, ("image", SINGLE["config"])),
    ("", {"schemaVersion": 2, "config": {"digest": "sha256:c"}}, ("image", {"digest": "sha256:c"})),
    (img.MT_DOCKER_V1_SIGNED, {"schemaVersion": 1, "architecture": "amd64"},
     ("v1", {"os": "linux", "architecture": "amd64"})),
])
def test_classify_manifest(media_type, doc, expected):
    assert img.classify_manifest(media_type, doc) == expected


@pytest.mark.parametrize("media_type,doc,message", [
    ("text/html", {"x": 1}, "unsupported manifest media type 'text/html'"),
    (img.MT_OCI_MANIFEST, {"layers": []}, "image manifest has no config descriptor"),
    (img.MT_OCI_MANIFEST, [], "manifest is not a JSON object"),
])
def test_classify_manifest_rejects(media_type, doc, message):
    with pytest.raises(ValueError) as exc:
        img.classify_manifest(media_type, doc)
    assert str(exc.value) == message


@pytest.mark.parametrize("config,expected", [
    ({"architecture": "arm64", "os": "linux"}, {"os": "linux", "architecture": "arm64"}),
    ({"architecture": "arm", "os": "linux", "variant": "v7"}, {"os": "linux", "architecture": "arm", "variant": "v7"}),
    ({"architecture": "amd64"}, {"os": "linux", "architecture": "amd64"}),
])
def test_platform_from_config(config, expected):
    assert img.platform_from_config(config) == expected


def test_platform_from_config_without_arch():
    with pytest.raises(ValueError) as exc:
        img.platform_from_config({"os": "linux"})
    assert str(exc.value) == "image config names no architecture"


# ----------------------------------------------------------------------------- platform matching

P = img.parse_platform


@pytest.mark.parametrize("platforms,nodes,missing", [
    ([P("linux/arm64")], ["amd64"], ["amd64"]),
    ([P("linux/arm64")], ["x86_64", "aarch64"], ["amd64"]),
    ([P("linux/amd64"), P("linux/arm64/v8")], ["amd64", "arm64"], []),
    ([P("linux/arm/v7")], ["arm64"], ["arm64"]),
    ([P("windows/amd64")], ["amd64"], ["amd64"]),
    ([P("linux/x86_64")], ["amd64"], []),
    ([], ["amd64"], ["amd64"]),
])
def test_missing_arches(platforms, nodes, missing):
    """Node architectures an index offers no build of their own for (arm/v7 is only a fallback on arm64)."""
    res = {"platforms": platforms, "kind": "index"}
    got = sorted({img.normalize_arch(a) for a in nodes if img.platform_verdict(res, a)[0] != img.PULL_OK})
    assert got == missing


def test_parse_platform_rejects():
    with pytest.raises(ValueError) as exc:
        P("arm64")
    assert str(exc.value) == "invalid platform 'arm64' (expected os/arch[/variant])"


# ----------------------------------------------------------------------------- scheduling


def _aff(*terms):
    return {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": list(terms)}}}}


def _expr(op, *values, key="kubernetes.io/arch"):
    out = {"key": key, "operator": op}
    if values:
        out["values"] = list(values)
    return out


SCHED = [
    ("no constraint", {}, ["amd64", "arm64"]),
    ("nodeSelector arm64", {"nodeSelector": {"kubernetes.io/arch": "arm64"}}, ["arm64"]),
    ("beta label", {"nodeSelector": {"beta.kubernetes.io/arch": "amd64"}}, ["amd64"]),
    ("unrelated selector", {"nodeSelector": {"node.kubernetes.io/instance-type": "t3.large"}}, ["amd64", "arm64"]),
    ("affinity In", _aff({"matchExpressions": [_expr("In", "amd64")]}), ["amd64"]),
    ("affinity In facts spelling", _aff({"matchExpressions": [_expr("In", "aarch64")]}), ["arm64"]),
    ("affinity NotIn", _aff({"matchExpressions": [_expr("NotIn", "amd64")]}), ["arm64"]),
    ("terms ORed", _aff({"matchExpressions": [_expr("In", "amd64")]},
                        {"matchExpressions": [_expr("In", "arm64")]}), ["amd64", "arm64"]),
    ("exprs ANDed", _aff({"matchExpressions": [_expr("In", "amd64", "arm64"), _expr("NotIn", "arm64")]}), ["amd64"]),
    ("DoesNotExist", _aff({"matchExpressions": [_expr("DoesNotExist")]}), []),
    ("Exists", _aff({"matchExpressions": [_expr("Exists")]}), ["amd64", "arm64"]),
    ("other key", _aff({"matchExpressions": [_expr("In", "a", key="zone")]}), ["amd64", "arm64"]),
    ("selector and affinity", dict(_aff({"matchExpressions": [_expr("In", "amd64", "arm64")]}),
                                   nodeSelector={"kubernetes.io/arch": "arm64"}), ["arm64"]),
]


@pytest.mark.parametrize("label,spec,expected", SCHED, ids=[s[0] for s in SCHED])
def test_schedulable_arches(label, spec, expected):
    assert img.schedulable_arches(spec, ["amd64", "arm64"]) == expected


# ----------------------------------------------------------------------------- workloads


def _ctrl(kind, name, image, init_image=None, ns="shop", api="apps/v1", spec_extra=None):
    pod = {"containers": [{"name": "app", "image": image}]}
    if init_image:
        pod["initContainers"] = [{"name": "init", "image": init_image}]
    pod.update(spec_extra or {})
    if kind == "Pod":
        spec = pod
    elif kind == "CronJob":
        spec = {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": pod}}}}
    else:
        spec = {"template": {"spec": pod}}
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": ns}, "spec": spec}


def test_workloads_from_objects_all_kinds_and_init_containers():
    objs = [
        _ctrl("Deployment", "web", "web:1", init_image="busybox:1.36"),
        _ctrl("StatefulSet", "db", "postgres:16"),
        _ctrl("DaemonSet", "agent", "agent:2"),
        {"kind": "List", "items": [_ctrl("Job", "migrate", "tools:1", api="batch/v1")]},
        _ctrl("CronJob", "report", "report:3", api="batch/v1"),
        _ctrl("Pod", "debug", "alpine:3"),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}},
        None,
    ]
    got = [(w["id"], [(i["container"], i["image"], i["init"]) for i in w["images"]])
           for w in img.workloads_from_objects(objs)]
    assert got == [
        ("Deployment/shop/web", [("init", "busybox:1.36", True), ("app", "web:1", False)]),
        ("StatefulSet/shop/db", [("app", "postgres:16", False)]),
        ("DaemonSet/shop/agent", [("app", "agent:2", False)]),
        ("Job/shop/migrate", [("app", "tools:1", False)]),
        ("CronJob/shop/report", [("app", "report:3", False)]),
        ("Pod/shop/debug", [("app", "alpine:3", False)]),
    ]


# ----------------------------------------------------------------------------- pull failures

CONTAINERD_MSG = ('failed to pull and unpack image "127.0.0.1:5000/marketplace:v1": no match for platform in '
                  'manifest: not found')
EVENT_MSG = 'Failed to pull image "127.0.0.1:5000/marketplace:v1": ' + CONTAINERD_MSG


def test_pull_errors_from_pods_and_events():
    pod = {"kind": "Pod", "metadata": {"name": "marketplace-1", "namespace": "shop"}, "status": {
        "containerStatuses": [{"name": "app", "image": "127.0.0.1:5000/marketplace:v1",
                               "state": {"waiting": {"reason": "ErrImagePull", "message": CONTAINERD_MSG}}},
                              {"name": "side", "image": "busybox",
                               "state": {"waiting": {"reason": "ImagePullBackOff",
                                                     "message": "Back-off pulling image \"busybox\""}}}]}}
    assert img.pull_errors_from_pods([pod]) == [{"pod": "Pod/shop/marketplace-1",
                                                 "image": "127.0.0.1:5000/marketplace:v1",
                                                 "reason": "ErrImagePull", "message": CONTAINERD_MSG}]
    events = [{"kind": "Event", "reason": "Failed", "message": EVENT_MSG,
               "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "marketplace-1"}},
              {"kind": "Event", "reason": "Failed", "message": "Failed to pull image \"x\": unauthorized",
               "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "x"}},
              {"kind": "Event", "reason": "Failed",
               "message": "Failed to pull image \"web:1\": no matching manifest for linux/amd64 in the manifest "
                          "list entries", "involvedObject": {"kind": "Pod", "namespace": "a", "name": "w"}}]
    assert [(e["pod"], e["image"]) for e in img.pull_errors_from_events(events)] == [
        ("Pod/shop/marketplace-1", "127.0.0.1:5000/marketplace:v1"), ("Pod/a/w", "web:1")]


# ----------------------------------------------------------------------------- evaluation

ARM_ONLY = {"platforms": [P("linux/arm64")], "status": 200, "digest": "sha256:x"}
MULTI = {"platforms": [P("linux/amd64"), P("linux/arm64")], "status": 200, "digest": "sha256:y"}
MK = "127.0.0.1:5000/marketplace:v1"


def _wl(name, image, spec_extra=None):
    return img.workloads_from_objects([_ctrl("Deployment", name, image, spec_extra=spec_extra)])[0]


def test_arm_only_image_on_amd64_nodes_names_the_buildx_fix():
    findings = img.evaluate([], [_wl("marketplace", MK)], ["amd64"], {MK: ARM_ONLY},
                            nodes_by_arch={"amd64": ["node-1", "node-2"]})
    assert len(findings) == 1
    f = findings[0]
    assert f["id"] == "IMAGE_ARCH_MISMATCH"
    assert f["where"] == MK
    assert f["observed"] == ("image 127.0.0.1:5000/marketplace:v1 offers linux/arm64; no platform for node "
                             "architecture(s) amd64 (node-1, node-2); used by Deployment/shop/marketplace")
    assert f["remediation"] == ("docker buildx build --platform linux/amd64,linux/arm64 -t "
                                "127.0.0.1:5000/marketplace:v1 --push DIR")
    assert f["details"]["missing_arches"] == ["amd64"]
    assert f["details"]["platforms"] == ["linux/arm64"]


def test_mixed_nodes_offer_the_nodeselector_pin():
    f = img.evaluate([MK], [], ["amd64", "arm64"], {MK: ARM_ONLY})[0]
    assert f["remediation"] == ("docker buildx build --platform linux/amd64,linux/arm64 -t "
                                "127.0.0.1:5000/marketplace:v1 --push DIR, or pin the workload to arm64 nodes "
                                "with nodeSelector kubernetes.io/arch: arm64")
    assert f["observed"] == ("image 127.0.0.1:5000/marketplace:v1 offers linux/arm64; no platform for node "
                             "architecture(s) amd64")


def test_multi_arch_image_passes():
    assert img.evaluate([MK], [_wl("marketplace", MK)], ["amd64", "arm64"], {MK: MULTI}) == []


def test_workload_pinned_to_arm64_passes_on_mixed_nodes():
    pinned = _wl("marketplace", MK, {"nodeSelector": {"kubernetes.io/arch": "arm64"}})
    assert img.evaluate([], [pinned], ["amd64", "arm64"], {MK: ARM_ONLY}) == []
    unpinned = _wl("other", MK)
    f = img.evaluate([], [pinned, unpinned], ["amd64", "arm64"], {MK: ARM_ONLY})
    assert f[0]["details"]["workloads"] == ["Deployment/shop/other"]


def test_unreachable_hints_by_status():
    wl = [_wl("marketplace", MK)]
    cases = [
        (401, "UNAUTHORIZED: authentication required",
         "registry 127.0.0.1:5000 answered HTTP 401 for 127.0.0.1:5000/marketplace:v1 (UNAUTHORIZED: "
         "authentication required); used by Deployment/shop/marketplace",
         "create a pull secret (kubectl create secret docker-registry regcred --docker-server=127.0.0.1:5000 "
         "--docker-username=USER --docker-password=PASS) and list it in the pod's imagePullSecrets; give this "
         "check registry_credentials or docker_config"),
        (404, "MANIFEST_UNKNOWN: manifest unknown",
         "registry 127.0.0.1:5000 answered HTTP 404 for 127.0.0.1:5000/marketplace:v1 (MANIFEST_UNKNOWN: "
         "manifest unknown); used by Deployment/shop/marketplace",
         "push the image (docker buildx build --platform linux/amd64,linux/arm64 -t "
         "127.0.0.1:5000/marketplace:v1 --push DIR) or correct the reference"),
        (None, "http://127.0.0.1:5000: timed out",
         "registry 127.0.0.1:5000 could not be reached for 127.0.0.1:5000/marketplace:v1 "
         "(http://127.0.0.1:5000: timed out); used by Deployment/shop/marketplace",
         "allow egress from the nodes to 127.0.0.1:5000 (tcp 443, or its port); for a plain-HTTP registry add "
         "it to insecure_registries"),
    ]
    for status, error, observed, fix in cases:
        f = img.evaluate([], wl, ["amd64"], {MK: {"platforms": None, "status": status, "error": error}})[0]
        assert (f["id"], f["observed"], f["remediation"], f["details"]["status"]) == (
            "IMAGE_UNREACHABLE", observed, fix, status)


def test_pull_errors_link_to_the_finding_and_go_stale_after_the_fix():
    perr = [{"pod": "Pod/shop/marketplace-1", "image": MK, "reason": "ErrImagePull", "message": CONTAINERD_MSG}]
    f = img.evaluate([], [_wl("marketplace", MK)], ["amd64"], {MK: ARM_ONLY}, perr)[0]
    assert f["observed"].endswith("; pull failed for Pod/shop/marketplace-1")
    assert f["details"]["pull_errors"] == perr
    stale = img.evaluate([], [_wl("marketplace", MK)], ["amd64"], {MK: MULTI}, perr)
    assert [(s["id"], s["severity"]) for s in stale] == [("IMAGE_ARCH_MISMATCH", "warning")]
    assert stale[0]["remediation"] == "delete the pods so they pull again (kubectl delete pod ...)"


def test_duplicates_and_spellings_collapse_to_one_image():
    refs, usage, invalid = img.collect_images(
        ["nginx", "docker.io/library/nginx:latest", "index.docker.io/nginx"],
        [_wl("a", "nginx:latest"), _wl("b", "NGINX")])
    assert list(refs) == ["docker.io/library/nginx:latest"]
    assert usage["docker.io/library/nginx:latest"] == [None, "Deployment/shop/a"]
    assert list(invalid) == ["NGINX"]
    f = img.evaluate([], [_wl("b", "NGINX")], ["amd64"], {})
    assert [(x["id"], x["where"]) for x in f] == [("INPUT_INVALID", "NGINX")]


# ----------------------------------------------------------------------------- what containerd does


@pytest.mark.parametrize("platform,normal", [
    ({"os": "Linux", "architecture": "x86_64", "variant": "v3"}, ("linux", "amd64", "")),
    ({"os": "linux", "architecture": "amd64", "variant": "v3"}, ("linux", "amd64", "v3")),  # 1.6 keeps it
    ({"os": "linux", "architecture": "aarch64"}, ("linux", "arm64", "")),
    ({"os": "linux", "architecture": "arm64", "variant": "v8"}, ("linux", "arm64", "")),
    ({"os": "linux", "architecture": "arm64", "variant": "8"}, ("linux", "arm64", "")),
    ({"os": "linux", "architecture": "arm"}, ("linux", "arm", "v7")),
    ({"os": "linux", "architecture": "arm", "variant": "6"}, ("linux", "arm", "v6")),
    ({"os": "linux", "architecture": "armhf"}, ("linux", "arm", "v7")),
    ({"os": "linux", "architecture": "armel"}, ("linux", "arm", "v6")),
    ({"os": "linux", "architecture": "i386"}, ("linux", "386", "")),
    ({"os": "unknown", "architecture": "unknown"}, ("unknown", "unknown", "")),
])
def test_normalize_platform_like_containerd(platform, normal):
    got = img.normalize_platform(platform)
    assert (got["os"], got["architecture"], got["variant"]) == normal


@pytest.mark.parametrize("arch,accepted", [
    ("amd64", ["linux/amd64", "linux/386"]),
    ("x86_64", ["linux/amd64", "linux/386"]),
    ("arm64", ["linux/arm64", "linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]),
    ("arm", ["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]),
    ("ppc64le", ["linux/ppc64le"]),
])
def test_compatible_platforms_best_first(arch, accepted):
    assert [img.platform_string(p) for p in img.compatible_platforms(img.node_platform(arch))] == accepted


def _res(kind, *platforms):
    return {"kind": kind, "platforms": [P(p) for p in platforms], "status": 200}


VERDICTS = [
    # label, resolution, node arch, verdict, platform containerd runs
    ("index has the node's platform", _res("index", "linux/amd64", "linux/arm64"), "amd64", img.PULL_OK, "linux/amd64"),
    ("arm64-only index on amd64", _res("index", "linux/arm64"), "amd64", img.NO_MATCH, None),
    ("arm64/v8 entry on arm64", _res("index", "linux/arm64/v8"), "arm64", img.PULL_OK, "linux/arm64/v8"),
    ("exact wins over fallback", _res("index", "linux/arm/v7", "linux/arm64"), "arm64", img.PULL_OK, "linux/arm64"),
    ("arm/v7 only on arm64", _res("index", "linux/arm/v7"), "arm64", img.FALLBACK, "linux/arm/v7"),
    ("arm/v7 beats arm/v6 on arm64", _res("index", "linux/arm/v6", "linux/arm/v7"), "arm64", img.FALLBACK,
     "linux/arm/v7"),
    ("386 only on amd64", _res("index", "linux/386"), "amd64", img.FALLBACK, "linux/386"),
    ("arm64 never falls back to amd64", _res("index", "linux/amd64"), "arm64", img.NO_MATCH, None),
    ("windows build on a linux node", _res("index", "windows/amd64"), "amd64", img.NO_MATCH, None),
    ("amd64/v3 only (1.6 matches the variant)", _res("index", "linux/amd64/v3"), "amd64", img.NO_MATCH, None),
    ("empty index", _res("index"), "amd64", img.NO_MATCH, None),
    ("single arm64 manifest on amd64", _res("manifest", "linux/arm64"), "amd64", img.EXEC_FORMAT, "linux/arm64"),
    ("single arm64 manifest on arm64", _res("manifest", "linux/arm64"), "arm64", img.PULL_OK, "linux/arm64"),
    ("single amd64 manifest on arm/v7", _res("manifest", "linux/amd64"), "arm", img.EXEC_FORMAT, "linux/amd64"),
    ("single arm/v7 manifest on arm64", _res("manifest", "linux/arm/v7"), "arm64", img.FALLBACK, "linux/arm/v7"),
    ("no kind: media type of a manifest", {"platforms": [P("linux/arm64")], "media_type": img.MT_OCI_MANIFEST},
     "amd64", img.EXEC_FORMAT, "linux/arm64"),
    ("no kind, no media type: an index", {"platforms": [P("linux/arm64")]}, "amd64", img.NO_MATCH, None),
]


@pytest.mark.parametrize("label,res,arch,verdict,platform", VERDICTS, ids=[v[0] for v in VERDICTS])
def test_platform_verdict(label, res, arch, verdict, platform):
    got, plat = img.platform_verdict(res, arch)
    assert (got, img.platform_string(plat) if plat else None) == (verdict, platform)


SINGLE_ARM = {"platforms": [P("linux/arm64")], "kind": "manifest", "status": 200, "digest": "sha256:s"}
EXEC_MSG = ('failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create '
            'failed: unable to start container process: exec: "/app": exec format error: unknown')


def test_single_manifest_of_another_arch_is_an_exec_format_error_not_a_pull_error():
    findings = img.evaluate([], [_wl("marketplace", MK)], ["amd64", "arm64"], {MK: SINGLE_ARM},
                            nodes_by_arch={"amd64": ["node-1"], "arm64": ["node-2"]})
    assert [(f["id"], f["severity"]) for f in findings] == [("IMAGE_EXEC_FORMAT", "error")]
    f = findings[0]
    assert f["observed"] == ("image 127.0.0.1:5000/marketplace:v1 is a single linux/arm64 manifest (no index), so "
                             "nodes of architecture(s) amd64 (node-1) pull it and cannot run it; used by "
                             "Deployment/shop/marketplace")
    assert f["why"] == ("a single manifest lists no platforms, so containerd pulls it on every node without a "
                        "platform check; the pull succeeds and the amd64 kernel refuses the image's arm64 binaries "
                        "when the container starts: \"exec format error\", CrashLoopBackOff")
    assert f["remediation"] == ("docker buildx build --platform linux/amd64,linux/arm64 -t "
                                "127.0.0.1:5000/marketplace:v1 --push DIR, or pin the workload to arm64 nodes with "
                                "nodeSelector kubernetes.io/arch: arm64")
    assert (f["details"]["exec_arches"], f["details"]["platforms"]) == (["amd64"], ["linux/arm64"])
    assert img.evaluate([], [_wl("marketplace", MK)], ["arm64"], {MK: SINGLE_ARM}) == []


def test_fallback_to_a_32_bit_build_is_a_warning():
    armv7 = {"platforms": [P("linux/arm/v7")], "kind": "index", "status": 200}
    findings = img.evaluate([MK], [], ["arm64"], {MK: armv7}, nodes_by_arch={"arm64": ["node-3"]})
    assert [(f["id"], f["severity"]) for f in findings] == [("IMAGE_PLATFORM_FALLBACK", "warning")]
    f = findings[0]
    assert f["observed"] == ("image 127.0.0.1:5000/marketplace:v1 offers linux/arm/v7 and no build for node "
                             "architecture(s) arm64; containerd falls back to arm64 (node-3) -> linux/arm/v7")
    assert f["remediation"] == ("docker buildx build --platform linux/arm,linux/arm64 -t "
                                "127.0.0.1:5000/marketplace:v1 --push DIR")
    assert f["details"]["fallback"] == {"arm64": "linux/arm/v7"}


def test_attestation_entries_never_count_as_a_platform():
    kind, entries = img.classify_manifest(img.MT_OCI_INDEX, {"manifests": [
        {"digest": "sha256:1", "platform": {"os": "linux", "architecture": "arm64"}},
        {"digest": "sha256:2", "platform": {"os": "unknown", "architecture": "unknown"}},
        {"digest": "sha256:3", "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}]})
    platforms = [e["platform"] for e in entries]
    assert (kind, platforms) == ("index", [{"os": "linux", "architecture": "arm64"}])
    assert img.platform_verdict({"kind": "index", "platforms": platforms}, "amd64") == (img.NO_MATCH, None)


def test_start_errors_from_pods_link_to_the_exec_format_finding():
    crashing = {"kind": "Pod", "metadata": {"name": "marketplace-1", "namespace": "shop"}, "status": {
        "containerStatuses": [
            {"name": "app", "image": MK, "restartCount": 3,
             "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed"}},
             "lastState": {"terminated": {"exitCode": 128, "reason": "StartError", "message": EXEC_MSG}}},
            {"name": "ok", "image": "busybox", "state": {"running": {}}},
            {"name": "other", "image": "web:1", "restartCount": 2,
             "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
             "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": "panic: nil map"}}}]}}
    errs = img.start_errors_from_pods([crashing])
    assert errs == [{"pod": "Pod/shop/marketplace-1", "image": MK, "reason": "CrashLoopBackOff",
                     "message": EXEC_MSG}]
    assert img.pull_errors_from_pods([crashing]) == []
    f = img.evaluate([], [_wl("marketplace", MK)], ["amd64"], {MK: SINGLE_ARM}, errs)[0]
    assert f["id"] == "IMAGE_EXEC_FORMAT" and f["observed"].endswith("; start failed for Pod/shop/marketplace-1")
    assert f["details"]["start_errors"] == errs
    # fixed since (an index with both builds): the crashing pods are a stale warning
    stale = img.evaluate([], [_wl("marketplace", MK)], ["amd64"], {MK: MULTI}, errs)
    assert [(s["id"], s["severity"]) for s in stale] == [("IMAGE_EXEC_FORMAT", "warning")]
    assert stale[0]["observed"] == ("Pod/shop/marketplace-1 still report CrashLoopBackOff, but image "
                                    "127.0.0.1:5000/marketplace:v1 now offers linux/amd64, linux/arm64")


def test_one_image_can_fail_the_pull_on_one_arch_and_fall_back_on_another():
    """arm/v7 only, on amd64 and arm64 nodes: the amd64 pull fails, arm64 falls back; one fix for both."""
    armv7 = {"platforms": [P("linux/arm/v7")], "kind": "index", "status": 200}
    findings = img.evaluate([MK], [], ["amd64", "arm64"], {MK: armv7})
    assert [(f["id"], f["severity"]) for f in findings] == [("IMAGE_ARCH_MISMATCH", "error"),
                                                            ("IMAGE_PLATFORM_FALLBACK", "warning")]
    assert findings[0]["details"]["missing_arches"] == ["amd64"]
    assert {f["remediation"] for f in findings} == {
        "docker buildx build --platform linux/amd64,linux/arm,linux/arm64 -t 127.0.0.1:5000/marketplace:v1 --push DIR"}
