"""image_arch_check's verdicts against a real client: Debian's containerd (1.6) pulling, unpacking and
running a corpus of images from Debian's docker-registry.

The corpus is built offline: buildah (from scratch, vfs storage) for OCI indexes, Docker manifest lists
and single manifests; the registry API for the buildx shape (an index with an ``unknown/unknown``
attestation entry), which buildah does not write. Every image's entrypoint is a tiny static executable
for its architecture.

For each image and node platform the table gives the expected verdict; the test asserts that
containerd does exactly that (tests/support/containerd.py records the pull, the fallback, the
architecture of the unpacked binary and, on this host's platform, the start through runc) and that
the analysis (probes/registry.py resolving, analysis/image.py judging) says the same, with the
matching finding.
"""

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import image as img
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes.registry import RegistryClient
from tests.integration.registry_harness import Registry
from tests.support.buildah import Buildah
from tests.support.containerd import HOST_PLATFORM, Containerd

OK, NO_MATCH, EXEC, FALLBACK = img.PULL_OK, img.NO_MATCH, img.EXEC_FORMAT, img.FALLBACK
NODES = {"amd64": "linux/amd64", "arm64": "linux/arm64", "arm": "linux/arm/v7"}
FINDING = {NO_MATCH: ("IMAGE_ARCH_MISMATCH", "error"), EXEC: ("IMAGE_EXEC_FORMAT", "error"),
           FALLBACK: ("IMAGE_PLATFORM_FALLBACK", "warning")}
# the 32-bit code a 64-bit node's kernel may run (containerd accepts these builds as a fallback)
COMPAT_32 = {"amd64": "386", "arm64": "arm"}

# repo, how it is built, (verdict on amd64, arm64, arm/v7 nodes)
CORPUS = [
    ("arm64-index", ("buildah-index", ["arm64"], "oci"), (NO_MATCH, OK, NO_MATCH)),
    ("manifest-list", ("buildah-index", ["amd64", "arm64/v8"], "docker"), (OK, OK, NO_MATCH)),
    ("single-arm64", ("buildah-single", "arm64", "oci"), (EXEC, OK, EXEC)),
    ("single-amd64-docker", ("buildah-single", "amd64", "docker"), (OK, EXEC, EXEC)),
    ("multi-arch", ("buildah-index", ["amd64", "arm64", "arm/v7"], "oci"), (OK, OK, OK)),
    ("buildx-arm64", ("api-index", ["arm64"], "oci"), (NO_MATCH, OK, NO_MATCH)),
    ("buildx-multi", ("api-index", ["amd64", "arm64"], "docker"), (OK, OK, NO_MATCH)),
    ("armv7-index", ("buildah-index", ["arm/v7"], "oci"), (NO_MATCH, FALLBACK, OK)),
    ("arm-variants", ("buildah-index", ["arm/v7", "arm64/v8"], "oci"), (NO_MATCH, OK, OK)),
    ("i386-index", ("buildah-index", ["386"], "oci"), (FALLBACK, NO_MATCH, NO_MATCH)),
    ("single-armv7", ("buildah-single", "arm/v7", "oci"), (EXEC, FALLBACK, OK)),
]
CASES = [(repo, arch, expected[i]) for repo, _how, expected in CORPUS for i, arch in enumerate(NODES)]


@pytest.fixture(scope="module")
def corpus():
    with Registry() as reg, Buildah() as bah, Containerd() as ctrd:
        refs = {}
        for repo, (how, specs, media), _expected in CORPUS:
            if how == "buildah-index":
                refs[repo] = bah.push_index(reg.host, repo, "v1", specs, media)
            elif how == "buildah-single":
                refs[repo] = bah.push_single(reg.host, repo, "v1", specs, media)
            else:  # what `docker buildx build --push` writes: an index with an attestation entry
                reg.push_index(repo, "v1", specs, media=media, attestation=True)
                refs[repo] = "%s/%s:v1" % (reg.host, repo)
        client = RegistryClient(insecure_registries=[reg.host], timeout=10)
        yield {"refs": refs, "ctrd": ctrd, "resolved": {repo: client.resolve(ref) for repo, ref in refs.items()},
               "outcomes": {}}


def reference_verdict(out, arch):
    """containerd's outcome on a node of ``arch`` as one of the verdicts."""
    if out["pull"] != "ok" and not out["fallback"]:
        # the one way containerd 1.6 refuses an image for a platform
        assert out["pull"].startswith("no match for platform in manifest sha256:"), out
        assert out["pull"].endswith(": not found"), out
        return NO_MATCH
    if out["elf"] == arch:
        verdict = OK
    elif out["elf"] == COMPAT_32.get(arch):
        verdict = FALLBACK
    else:
        verdict = EXEC
    if out["start"] is not None:  # the host's own platform: runc really started it
        if verdict == EXEC:
            assert "exec format error" in out["start"], out
        else:
            assert out["start"] == "ok", out
    return verdict


@pytest.mark.parametrize("repo,arch,expected", CASES, ids=["%s-%s" % (c[0], c[1]) for c in CASES])
def test_verdict_matches_containerd(corpus, repo, arch, expected):
    ref = corpus["refs"][repo]
    out = corpus["ctrd"].outcome(ref, NODES[arch])
    corpus["outcomes"][(repo, arch)] = out
    assert reference_verdict(out, arch) == expected, out
    res = corpus["resolved"][repo]
    verdict, _platform = img.platform_verdict(res, arch)
    assert verdict == expected, res
    findings = img.evaluate([ref], [], [arch], {img.parse_reference(ref)["name"]: res})
    assert [(f["id"], f["severity"]) for f in findings] == ([FINDING[expected]] if expected != OK else [])
    # a pull that fails is never reported as a start failure, nor the other way round
    if expected == NO_MATCH:
        assert "no match for platform in manifest" in findings[0]["why"]
    if expected == EXEC:
        assert "exec format error" in findings[0]["why"] and "pull succeeds" in findings[0]["why"]


def test_corpus_shapes_and_attestations_never_count(corpus):
    """The registry probe sees the shapes the table claims; attestation entries are not platforms."""
    got = {repo: (res["kind"], [img.platform_string(p) for p in res["platforms"]])
           for repo, res in corpus["resolved"].items()}
    assert got == {
        "arm64-index": ("index", ["linux/arm64"]),
        "manifest-list": ("index", ["linux/amd64", "linux/arm64/v8"]),
        "single-arm64": ("manifest", ["linux/arm64"]),
        "single-amd64-docker": ("manifest", ["linux/amd64"]),
        "multi-arch": ("index", ["linux/amd64", "linux/arm64", "linux/arm/v7"]),
        "buildx-arm64": ("index", ["linux/arm64"]),
        "buildx-multi": ("index", ["linux/amd64", "linux/arm64"]),
        "armv7-index": ("index", ["linux/arm/v7"]),
        "arm-variants": ("index", ["linux/arm/v7", "linux/arm64/v8"]),
        "i386-index": ("index", ["linux/386"]),
        "single-armv7": ("manifest", ["linux/arm/v7"]),
    }
    assert {corpus["resolved"][r]["media_type"] for r in ("manifest-list", "buildx-multi")} == {
        img.MT_DOCKER_LIST}
    assert corpus["resolved"]["single-amd64-docker"]["media_type"] == img.MT_DOCKER_MANIFEST
    assert HOST_PLATFORM, "the host's platform must be amd64 or arm64 to start containers"
