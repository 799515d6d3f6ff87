"""Kubernetes API layer of image_arch_check: the real kubernetes client against tests/fakes/k8s_api.py."""

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import image as img
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes.image_k8s import ClusterReader
from tests.fakes.k8s_api import FakeKubeAPI
from tests.support.k8s import deployment, failing_pod, node, pull_event

REG = "127.0.0.1:5999"


def _pod_template(image, **spec):
    return {"metadata": {"labels": {"app": "x"}}, "spec": dict({"containers": [{"name": "c", "image": image}]}, **spec)}


def _objects():
    arm_affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}]}]}}}
    return [
        node("ip-10-0-1-10", "amd64"),
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "ip-10-0-1-11",
                                                          "labels": {"kubernetes.io/arch": "arm64"}},
         "status": {"nodeInfo": {"architecture": "arm64"}}},
        deployment("marketplace", "shop", REG + "/marketplace:v1", init_image=REG + "/migrate:v1"),
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "shop"},
         "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "x"}},
                  "template": _pod_template(REG + "/db:16", affinity=arm_affinity)}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "kube-system"},
         "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": _pod_template(REG + "/agent:2")}},
        {"apiVersion": "apps/v1", "kind": "ReplicaSet",
         "metadata": {"name": "marketplace-6d9f7", "namespace": "shop",
                      "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "marketplace",
                                           "uid": "u1", "controller": True}]},
         "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": _pod_template(REG + "/marketplace:v1")}},
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "report", "namespace": "shop"},
         "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": _pod_template(REG + "/report:1")}}}},
        {"apiVersion": "batch/v1", "kind": "Job",
         "metadata": {"name": "report-29000", "namespace": "shop",
                      "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "report",
                                           "uid": "u2", "controller": True}]},
         "spec": {"template": _pod_template(REG + "/report:1")}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "debug", "namespace": "default"},
         "spec": {"containers": [{"name": "sh", "image": "busybox:1.36"}]}},
        failing_pod("marketplace-6d9f7-abcde", "shop", REG + "/marketplace:v1", owner="marketplace-6d9f7"),
        pull_event("marketplace-6d9f7-abcde", "shop", REG + "/marketplace:v1"),
    ]


@pytest.fixture()
def reader():
    with FakeKubeAPI() as api:
        api.cluster.add_all(_objects())
        yield ClusterReader(api.write_kubeconfig(), timeout=5)


def test_node_arches_from_node_info(reader):
    assert reader.node_arches() == {"amd64": ["ip-10-0-1-10"], "arm64": ["ip-10-0-1-11"]}


def test_top_level_workloads_of_every_kind(reader):
    objs = reader.workload_objects()
    wls = img.workloads_from_objects([o for o in objs if img.is_top_level(o)], "cluster")
    assert sorted(w["id"] for w in wls) == [
        "CronJob/shop/report", "DaemonSet/kube-system/agent", "Deployment/shop/marketplace",
        "Pod/default/debug", "StatefulSet/shop/db"]
    by_id = {w["id"]: w for w in wls}
    assert [i["image"] for i in by_id["Deployment/shop/marketplace"]["images"]] == [
        REG + "/migrate:v1", REG + "/marketplace:v1"]
    assert img.schedulable_arches(by_id["StatefulSet/shop/db"]["pod_spec"], ["amd64", "arm64"]) == ["arm64"]


def test_namespaced_reads_and_pull_errors(reader):
    objs = reader.workload_objects(["shop"])
    assert {o["metadata"]["namespace"] for o in objs} == {"shop"}
    pods = [o for o in objs if o["kind"] == "Pod"]
    errs = img.pull_errors_from_pods(pods) + img.pull_errors_from_events(reader.events(["shop"]))
    assert [(e["pod"], e["image"], e["reason"]) for e in errs] == [
        ("Pod/shop/marketplace-6d9f7-abcde", REG + "/marketplace:v1", "ErrImagePull"),
        ("Pod/shop/marketplace-6d9f7-abcde", REG + "/marketplace:v1", "Failed")]
    assert reader.events(["other"]) == []


def test_end_to_end_evaluation_with_cluster_data(reader):
    """arm64-only marketplace on a mixed cluster; the arm64-pinned db is fine with an arm64-only image."""
    nodes = reader.node_arches()
    objs = reader.workload_objects()
    wls = img.workloads_from_objects([o for o in objs if img.is_top_level(o)], "cluster")
    errs = img.pull_errors_from_pods([o for o in objs if o["kind"] == "Pod"])
    arm = {"platforms": [img.parse_platform("linux/arm64")], "status": 200}
    multi = {"platforms": [img.parse_platform("linux/amd64"), img.parse_platform("linux/arm64")], "status": 200}
    resolved = {img.parse_reference(r)["name"]: multi for r in (
        REG + "/migrate:v1", REG + "/agent:2", REG + "/report:1", "busybox:1.36")}
    resolved[img.parse_reference(REG + "/marketplace:v1")["name"]] = arm
    resolved[img.parse_reference(REG + "/db:16")["name"]] = arm
    findings = img.evaluate([], wls, list(nodes), resolved, errs, nodes)
    assert [(f["id"], f["where"]) for f in findings] == [("IMAGE_ARCH_MISMATCH", REG + "/marketplace:v1")]
    assert findings[0]["observed"] == (
        "image %s/marketplace:v1 offers linux/arm64; no platform for node architecture(s) amd64 (ip-10-0-1-10); "
        "used by Deployment/shop/marketplace; pull failed for Pod/shop/marketplace-6d9f7-abcde" % REG)
