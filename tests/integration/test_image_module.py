"""image_arch_check through ansible-playbook (FQCN) and the validate_images role.

Substrates: Debian's docker-registry (tests/integration/registry_harness.py) and the Kubernetes API fake
(tests/fakes/k8s_api.py) read through the real kubernetes client.
"""

import os

import pytest

from tests.fakes.k8s_api import FakeKubeAPI
from tests.integration.image_support import run_cases, run_playbook
from tests.integration.registry_harness import Registry
from tests.support.k8s import crashing_pod, deployment, failing_pod, node, pull_event

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: marketplace, namespace: shop}
spec:
  selector: {matchLabels: {app: marketplace}}
  template:
    metadata: {labels: {app: marketplace}}
    spec:
      initContainers:
        - {name: migrate, image: %(host)s/tools:v1}
      containers:
        - {name: app, image: %(host)s/marketplace:v1}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: report, namespace: shop}
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - {name: report, image: %(host)s/tools:v1}
"""


@pytest.fixture()
def seed(tmp_path):
    """The seed: marketplace:v1 pushed with buildx from an Apple Silicon laptop (an arm64-only index with
    its attestation entry), tools multi-arch."""
    with Registry() as reg:
        reg.push_index("marketplace", "v1", ["arm64"], attestation=True)
        reg.push_index("tools", "v1", ["amd64", "arm64"])
        mdir = tmp_path / "manifests"
        mdir.mkdir()
        (mdir / "shop.yaml").write_text(MANIFEST % {"host": reg.host})
        (mdir / "README.txt").write_text("not a manifest")
        reg.manifest_dir = str(mdir)
        yield reg


def _case(reg, **kw):
    return dict(kw, insecure_registries=[reg.host])


def test_seed_arm64_only_fails_then_multi_arch_index_passes(seed):
    ref = seed.host + "/marketplace:v1"
    case = _case(seed, manifests=[seed.manifest_dir], node_arches=["x86_64"])
    rc, out, (res, res_check, res_report) = run_cases(
        [case, dict(case, check_mode=True), dict(case, fail_on_findings=False)])
    assert rc != 0, out
    assert res["failed"] is True
    assert [f["id"] for f in res["findings"]] == ["IMAGE_ARCH_MISMATCH"]
    f = res["findings"][0]
    assert f["remediation"] == "docker buildx build --platform linux/amd64,linux/arm64 -t %s --push DIR" % ref
    assert f["details"]["workloads"] == ["Deployment/shop/marketplace"]
    assert f["details"]["platforms"] == ["linux/arm64"]
    assert res["node_arches"] == ["amd64"]
    assert res["workloads"] == ["Deployment/shop/marketplace", "CronJob/shop/report"]
    assert "image_arch_check: 1 problem(s) found" in res["msg"]
    assert "fix: docker buildx build --platform linux/amd64,linux/arm64 -t %s --push DIR" % ref in out
    # check mode runs the same read-only check; fail_on_findings=false only reports
    assert res_check["failed"] is True and res_check["findings"] == res["findings"]
    assert res_report.get("failed") is False and res_report["findings"] == res["findings"]

    seed.push_index("marketplace", "v1", ["amd64", "arm64"])
    rc, out, (res,) = run_cases([case])
    assert rc == 0, out
    assert res["findings"] == [] and res["changed"] is False
    assert res["msg"] == "image_arch_check: 2 image(s) offer a platform for every node architecture"
    assert {i["image"]: i["platforms"] for i in res["images"]} == {
        ref: ["linux/amd64", "linux/arm64"], seed.host + "/tools:v1": ["linux/amd64", "linux/arm64"]}


def test_private_registry_credentials_are_used_and_never_logged():
    secret = "pa55-w0rd-never-logged"
    with Registry(auth="htpasswd", users={"ci-bot": secret}) as reg:
        reg.push_index("shop/marketplace", "v2", ["amd64", "arm64"])
        images = [reg.host + "/shop/marketplace:v2"]
        creds = [{"registry": reg.host, "username": "ci-bot", "password": secret}]
        rc, out, (without, with_creds) = run_cases([
            _case(reg, images=images, node_arches=["amd64"]),
            _case(reg, images=images, node_arches=["amd64"], registry_credentials=creds)])
        assert rc != 0
        assert [(f["id"], f["details"]["status"]) for f in without["findings"]] == [("IMAGE_UNREACHABLE", 401)]
        assert with_creds.get("failed") is False and with_creds["findings"] == []
        assert secret not in out
        # only the secret is redacted; "item" is this test playbook's own loop variable, not module output
        module_output = {k: v for k, v in with_creds.items() if k != "item"}
        assert secret not in repr(module_output)
        assert module_output["invocation"]["module_args"]["registry_credentials"] == [
            {"registry": reg.host, "username": "ci-bot", "password": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}]


def _cluster(reg):
    """Two amd64 nodes and one arm64 node; marketplace failing to pull; a pinned arm64 workload."""
    api = FakeKubeAPI().start()
    ref = reg.host + "/marketplace:v1"
    api.cluster.add_all([
        node("node-1", "amd64"), node("node-2", "amd64"), node("node-3", "arm64"),
        deployment("marketplace", "shop", ref, init_image=reg.host + "/tools:v1"),
        deployment("marketplace-arm", "shop", ref, node_selector={"kubernetes.io/arch": "arm64"}),
        failing_pod("marketplace-6d9f7-abcde", "shop", ref, owner="marketplace-6d9f7"),
        pull_event("marketplace-6d9f7-abcde", "shop", ref),
    ])
    return api


def test_cluster_nodes_workloads_and_pull_events(seed):
    ref = seed.host + "/marketplace:v1"
    api = _cluster(seed)
    try:
        kubeconfig = api.write_kubeconfig()
        case = _case(seed, kubeconfig=kubeconfig)
        # namespace filter: nothing in "other" uses the image, the nodes still come from the cluster
        other = dict(case, namespaces=["other"], images=[seed.host + "/tools:v1"])
        rc, out, (res, res_other) = run_cases([case, other])
        assert rc != 0, out
        assert res["node_arches"] == ["amd64", "arm64"]
        assert res["workloads"] == ["Deployment/shop/marketplace", "Deployment/shop/marketplace-arm"]
        f = res["findings"][0]
        assert (f["id"], f["where"]) == ("IMAGE_ARCH_MISMATCH", ref)
        assert f["observed"] == (
            "image %s offers linux/arm64; no platform for node architecture(s) amd64 (node-1, node-2); used by "
            "Deployment/shop/marketplace; pull failed for Pod/shop/marketplace-6d9f7-abcde" % ref)
        assert f["remediation"] == (
            "docker buildx build --platform linux/amd64,linux/arm64 -t %s --push DIR, or pin the workload to "
            "arm64 nodes with nodeSelector kubernetes.io/arch: arm64" % ref)
        assert len(f["details"]["pull_errors"]) == 2  # the pod status and its event
        assert ("GET", "/api/v1/events") in api.cluster.requests
        assert res_other.get("failed") is False and res_other["node_arches"] == ["amd64", "arm64"]

        seed.push_index("marketplace", "v1", ["amd64", "arm64"])
        rc, out, (res,) = run_cases([case])
        assert rc == 0, out
        assert [(f["id"], f["severity"]) for f in res["findings"]] == [("IMAGE_ARCH_MISMATCH", "warning")]
        assert res["findings"][0]["remediation"] == "delete the pods so they pull again (kubectl delete pod ...)"
        assert "(1 warning(s))" in res["msg"]
    finally:
        api.stop()


def test_single_manifest_of_another_arch_fails_at_start_not_at_pull(seed):
    """`docker push` of an arm64 build: a single manifest, which containerd pulls on amd64 nodes; the
    container then crashes with exec format error. The finding says so and links the crashing pod."""
    ref = seed.host + "/billing:v1"
    seed.push_image("billing", "v1", arch="arm64")
    with FakeKubeAPI() as api:
        api.cluster.add_all([node("node-1", "amd64"), node("node-2", "arm64"),
                             deployment("billing", "shop", ref),
                             crashing_pod("billing-5c8d7-x2x9q", "shop", ref, owner="billing-5c8d7")])
        rc, out, (res,) = run_cases([_case(seed, kubeconfig=api.write_kubeconfig(), namespaces=["shop"])])
    assert rc != 0, out
    assert [(f["id"], f["severity"]) for f in res["findings"]] == [("IMAGE_EXEC_FORMAT", "error")]
    f = res["findings"][0]
    assert f["observed"] == (
        "image %s is a single linux/arm64 manifest (no index), so nodes of architecture(s) amd64 (node-1) pull it "
        "and cannot run it; used by Deployment/shop/billing; start failed for Pod/shop/billing-5c8d7-x2x9q" % ref)
    assert "exec format error" in f["why"] and "CrashLoopBackOff" in f["why"]
    assert f["remediation"] == (
        "docker buildx build --platform linux/amd64,linux/arm64 -t %s --push DIR, or pin the workload to arm64 "
        "nodes with nodeSelector kubernetes.io/arch: arm64" % ref)
    assert [e["reason"] for e in f["details"]["start_errors"]] == ["CrashLoopBackOff"]
    assert {i["image"]: i["kind"] for i in res["images"]} == {ref: "manifest"}


def test_input_errors_and_unreachable_cluster_are_clean_failures(tmp_path):
    api = FakeKubeAPI().start()
    kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"))
    api.stop()
    rc, out, (dead, no_arch, bad_arch) = run_cases([
        {"kubeconfig": kubeconfig, "timeout": 2},
        {"images": ["nginx"]},
        {"images": ["nginx"], "node_arches": ["sparc"]}])
    assert rc != 0
    assert dead["msg"].startswith("image_arch_check: reading the cluster through %s failed: " % kubeconfig)
    assert "Traceback" not in out
    assert no_arch["msg"] == ("image_arch_check: no node architectures: give node_arches or nodes, or a "
                              "kubeconfig with cluster_reads including nodes")
    assert bad_arch["msg"].startswith("image_arch_check: unknown architecture 'sparc'")


INVENTORY = """\
[control_plane]
cp-1 ansible_connection=local
[workers]
worker-1 ansible_connection=local
[k8s_cluster:children]
control_plane
workers
"""


def test_role_uses_node_facts_and_fails_on_findings(seed, tmp_path):
    inv = tmp_path / "inventory.ini"
    inv.write_text(INVENTORY)
    arch = os.uname().machine  # the facts of this machine stand in for the EC2 nodes' facts
    extra = {"validate_images_manifests": [seed.manifest_dir], "validate_images_insecure_registries": [seed.host]}
    rc, out, _res = run_playbook("validate_images_role.yml", extra, inventory=str(inv))
    if arch in ("x86_64", "amd64"):
        assert rc != 0, out
        assert "no platform for node architecture(s) amd64 (cp-1, worker-1)" in out
        assert "docker buildx build --platform linux/amd64,linux/arm64 -t %s/marketplace:v1" % seed.host in out
    seed.push_index("marketplace", "v1", ["amd64", "arm64"])
    rc, out, _res = run_playbook("validate_images_role.yml", extra, inventory=str(inv))
    assert rc == 0, out


def test_role_stops_when_nothing_to_check():
    rc, out, _res = run_playbook("validate_images_role.yml", {}, inventory="localhost,")
    assert rc != 0
    assert "Stop: set validate_images_images, validate_images_manifests or validate_images_kubeconfig" in out
