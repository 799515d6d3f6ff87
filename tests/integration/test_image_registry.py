"""Registry layer of image_arch_check against Debian's docker-registry (plain, htpasswd, token auth)."""

import socket
import threading
import time

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import errors
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes.registry import (
    RegistryClient,
    check_images,
)
from tests.integration.registry_harness import Registry

BUILDX = "docker buildx build --platform linux/amd64,linux/arm64 -t %s --push DIR"


@pytest.fixture(scope="module")
def plain():
    with Registry() as reg:
        reg.arm_only = reg.push_image("marketplace", "v1", arch="arm64")  # `docker push` from an arm64 laptop
        reg.push_index("buildx", "v1", ["arm64"], attestation=True)  # `docker buildx build --push` on one
        reg.index_digest = reg.push_index("multi", "v1", ["amd64", "arm64"], attestation=True)
        reg.push_manifest_list("dlist", "v1", ["amd64", "arm64/v8"])
        reg.push_image("legacy", "v1", arch="amd64", media="docker")
        reg.push_image("armv7", "v1", arch="arm", variant="v7")
        yield reg


def _client(reg, **kw):
    return RegistryClient(insecure_registries=[reg.host], timeout=kw.pop("timeout", 5), **kw)


def _check(client, images, arches=("amd64",)):
    return check_images(client, images, [], list(arches))


@pytest.mark.parametrize("repo,platforms,media_type", [
    ("marketplace:v1", ["linux/arm64"], "application/vnd.oci.image.manifest.v1+json"),
    ("multi:v1", ["linux/amd64", "linux/arm64"], "application/vnd.oci.image.index.v1+json"),
    ("dlist:v1", ["linux/amd64", "linux/arm64/v8"], "application/vnd.docker.distribution.manifest.list.v2+json"),
    ("legacy:v1", ["linux/amd64"], "application/vnd.docker.distribution.manifest.v2+json"),
    ("armv7:v1", ["linux/arm/v7"], "application/vnd.oci.image.manifest.v1+json"),
])
def test_platforms_of_each_manifest_shape(plain, repo, platforms, media_type):
    _findings, report = _check(_client(plain), [plain.host + "/" + repo], ["amd64", "arm64"])
    assert (report[0]["platforms"], report[0]["media_type"], report[0]["status"]) == (platforms, media_type, 200)


def test_arm64_only_fails_on_amd64_and_multi_arch_passes(plain):
    """What containerd does decides the finding (tests/integration/test_image_containerd.py compares it
    with a real containerd): an arm64-only index fails the pull on amd64, a single arm64 manifest is
    pulled and fails at start."""
    client = _client(plain)
    findings, _report = _check(client, [plain.host + "/buildx:v1"])
    assert [f["id"] for f in findings] == ["IMAGE_ARCH_MISMATCH"]
    assert findings[0]["remediation"] == BUILDX % (plain.host + "/buildx:v1")
    assert findings[0]["details"]["missing_arches"] == ["amd64"]
    findings, _report = _check(client, [plain.host + "/marketplace:v1"])
    assert [f["id"] for f in findings] == ["IMAGE_EXEC_FORMAT"]
    assert findings[0]["remediation"] == BUILDX % (plain.host + "/marketplace:v1")
    assert findings[0]["details"]["exec_arches"] == ["amd64"]
    for ok in ("multi:v1", "dlist:v1"):
        assert _check(client, [plain.host + "/" + ok], ["amd64", "arm64"])[0] == []
    # a single arm/v7 manifest: no EC2 architecture has a build of its own; amd64 cannot run it,
    # arm64 falls back to the 32-bit build (a warning)
    findings, _report = _check(client, [plain.host + "/armv7:v1"], ["amd64", "arm64"])
    assert [(f["id"], f["severity"]) for f in findings] == [("IMAGE_EXEC_FORMAT", "error"),
                                                            ("IMAGE_PLATFORM_FALLBACK", "warning")]
    assert findings[0]["details"]["exec_arches"] == ["amd64"]
    assert findings[1]["details"]["fallback"] == {"arm64": "linux/arm/v7"}
    for f in findings:
        assert f["remediation"] == (
            "docker buildx build --platform linux/amd64,linux/arm,linux/arm64 -t %s/armv7:v1 --push DIR" % plain.host)


def test_digest_reference_resolves_the_index(plain):
    findings, report = _check(_client(plain), ["%s/multi@%s" % (plain.host, plain.index_digest)])
    assert findings == [] and report[0]["digest"] == plain.index_digest


def test_missing_tag_and_repository_are_unreachable_404(plain):
    findings, _report = _check(_client(plain), [plain.host + "/marketplace:nope", plain.host + "/ghost:v1"])
    assert [(f["id"], f["details"]["status"]) for f in findings] == [("IMAGE_UNREACHABLE", 404)] * 2
    assert findings[0]["observed"] == (
        "registry %s answered HTTP 404 for %s/ghost:v1 (MANIFEST_UNKNOWN: manifest unknown)"
        % (plain.host, plain.host))


def test_seed_scenario_fix_by_pushing_an_index_under_the_same_tag():
    with Registry() as reg:
        ref = reg.host + "/marketplace:v1"
        reg.push_image("marketplace", "v1", arch="arm64")
        client = _client(reg)
        findings, _report = _check(client, [ref])
        assert errors(findings) and findings[0]["remediation"] == BUILDX % ref
        reg.push_index("marketplace", "v1", ["amd64", "arm64"])
        assert _check(_client(reg), [ref])[0] == []


def test_duplicates_are_fetched_once_and_concurrently(plain):
    client = _client(plain, max_workers=8)
    images = [plain.host + "/multi:v1"] * 30
    _findings, report = _check(client, images + [plain.host + "/marketplace:v1"])
    assert len(report) == 2
    assert client.requests == 2 + 1  # two manifests + one config blob (marketplace is a single manifest)
    # a second client-wide lookup of the same digest uses the cache
    client.resolve(plain.host + "/marketplace:v1")
    assert client.requests == 4  # the manifest again, no config fetch


def test_http_registry_not_listed_as_insecure_is_unreachable(plain):
    client = RegistryClient(timeout=2)
    findings, _report = _check(client, [plain.host + "/multi:v1"])
    assert findings[0]["id"] == "IMAGE_UNREACHABLE"
    assert findings[0]["details"]["status"] is None
    assert findings[0]["observed"].startswith("registry %s could not be reached for %s/multi:v1 (https://%s:"
                                              % (plain.host, plain.host, plain.host))


def test_closed_port_and_hanging_registry_fail_fast():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = "127.0.0.1:%d" % sock.getsockname()[1]
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(8)
    hanging = "127.0.0.1:%d" % hang.getsockname()[1]
    conns = []

    def accept_and_hold():  # hold every connection open, never answer; ends when the socket is shut down
        try:
            for _i in range(4):
                conns.append(hang.accept())
        except OSError:
            pass

    holder = threading.Thread(target=accept_and_hold, daemon=True)
    holder.start()
    try:
        client = RegistryClient(insecure_registries=[closed, hanging], timeout=0.5)
        started = time.time()
        findings, _report = _check(client, [closed + "/app:v1", hanging + "/app:v1"])
        took = time.time() - started
    finally:
        try:
            hang.shutdown(socket.SHUT_RDWR)  # wakes the holder's accept() (Linux: EINVAL); close alone does not
        except OSError:
            pass
        hang.close()
        holder.join(5)
        for conn, _addr in conns:
            conn.close()
    assert not holder.is_alive()  # the test leaves no thread behind
    assert took < 3
    assert [(f["id"], f["details"]["status"]) for f in findings] == [("IMAGE_UNREACHABLE", None)] * 2
    by_where = {f["where"]: f for f in findings}
    assert "timed out" in by_where[hanging + "/app:v1"]["observed"]
    assert "Connection refused" in by_where[closed + "/app:v1"]["observed"]
    assert by_where[closed + "/app:v1"]["remediation"].startswith("allow egress from the nodes to %s" % closed)


# ----------------------------------------------------------------------------- Basic auth (htpasswd)


@pytest.fixture(scope="module")
def basic(tmp_path_factory):
    with Registry(auth="htpasswd", users={"alice": "s3cret"}) as reg:
        reg.push_index("shop/marketplace", "v2", ["amd64", "arm64"])
        yield reg


def test_basic_auth_without_credentials_is_401(basic):
    findings, _report = _check(_client(basic), [basic.host + "/shop/marketplace:v2"])
    f = findings[0]
    assert (f["id"], f["details"]["status"]) == ("IMAGE_UNREACHABLE", 401)
    assert f["remediation"].startswith("create a pull secret (kubectl create secret docker-registry regcred "
                                       "--docker-server=%s" % basic.host)


def test_basic_auth_with_parameters_and_docker_config(basic, tmp_path):
    ref = basic.host + "/shop/marketplace:v2"
    assert _check(_client(basic, credentials={basic.host: ("alice", "s3cret")}), [ref])[0] == []
    cfg = basic.docker_config(str(tmp_path / "config.json"))
    assert _check(_client(basic, docker_config=cfg), [ref])[0] == []
    wrong = _check(_client(basic, credentials={basic.host: ("alice", "wrong")}), [ref])[0]
    assert (wrong[0]["id"], wrong[0]["details"]["status"]) == ("IMAGE_UNREACHABLE", 401)


# ----------------------------------------------------------------------------- Bearer token auth


@pytest.fixture(scope="module")
def token():
    with Registry(auth="token", users={"alice": "s3cret"}, private=["private/"]) as reg:
        reg.push_index("public/marketplace", "v1", ["arm64"], attestation=True)
        reg.push_index("private/billing", "v1", ["amd64", "arm64"])
        yield reg


def test_token_auth_anonymous_public_pull(token):
    client = _client(token)
    findings, report = _check(client, [token.host + "/public/marketplace:v1"])
    assert [f["id"] for f in findings] == ["IMAGE_ARCH_MISMATCH"] and report[0]["platforms"] == ["linux/arm64"]
    assert (None, ("repository:public/marketplace:pull",), (("pull",),)) in token.token_server.issued


def test_token_auth_private_repo_needs_credentials(token):
    ref = token.host + "/private/billing:v1"
    findings, _report = _check(_client(token), [ref])
    assert (findings[0]["id"], findings[0]["details"]["status"]) == ("IMAGE_UNREACHABLE", 401)
    assert findings[0]["observed"] == ("registry %s answered HTTP 401 for %s (UNAUTHORIZED: authentication "
                                       "required)" % (token.host, ref))
    client = _client(token, credentials={token.host: ("alice", "s3cret")})
    assert _check(client, [ref])[0] == []
    assert ("alice", ("repository:private/billing:pull",), (("pull",),)) in token.token_server.issued
    bad = _check(_client(token, credentials={token.host: ("alice", "nope")}), [ref])[0]
    assert bad[0]["details"]["status"] == 401
    assert "invalid username or password" in bad[0]["observed"]


def test_garbage_answer_is_a_finding_not_a_traceback():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    host = "127.0.0.1:%d" % srv.getsockname()[1]

    def serve():
        try:
            conn, _addr = srv.accept()
            conn.recv(4096)
            conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
            conn.close()
        except OSError:
            pass

    threading.Thread(target=serve, daemon=True).start()
    try:
        findings, report = _check(RegistryClient(insecure_registries=[host], timeout=2), [host + "/app:v1"])
    finally:
        srv.close()
    assert (findings[0]["id"], findings[0]["details"]["status"]) == ("IMAGE_UNREACHABLE", None)
    assert report[0]["platforms"] == [] and report[0]["error"]
