"""mesh_probe's Kubernetes API layer: the module run as Ansible runs it (its own process, AnsibleModule
argument handling), the real ``kubernetes`` client, the API fake (tests/fakes/k8s_api.py), with the
probe pods' outcomes scripted per node: a pod that reports, one whose image cannot be pulled, one that
never starts, one whose message is garbage, one that never finishes its connects. Every wait is bounded,
every probe pod is deleted (the failed and the pending ones too), check mode starts none, bad input names
the option, and an unreachable API is one clear message."""

import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import mesh
from tests.fakes.k8s_api import FakeKubeAPI

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_module(args, timeout=120):
    tmp = tempfile.mkdtemp(prefix="kmeshargs-")
    path = os.path.join(tmp, "args.json")
    with open(path, "w") as fh:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, fh)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, ".collections"))
    start = time.monotonic()
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "plugins", "modules", "mesh_probe.py"), path],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=timeout,
                          check=False)
    out = proc.stdout
    return json.loads(out[out.index("{"):]), time.monotonic() - start, out


def node(name, i):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.1.%d" % (10 + i)}]}}


def dns_objects():
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-dns", "namespace": "kube-system"},
         "spec": {"clusterIP": "10.96.0.10", "selector": {"k8s-app": "kube-dns"},
                  "ports": [{"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "kube-dns-x", "namespace": "kube-system",
                      "labels": {"kubernetes.io/service-name": "kube-dns"}},
         "addressType": "IPv4", "endpoints": [{"addresses": ["192.168.1.10"], "nodeName": "node1",
                                               "conditions": {"ready": True}}]},
    ]


class ScriptedKubelet:
    """Pod outcomes per node: ok (runs, probes, reports every target open), pull (ErrImagePull), pending
    (never starts), garbage (exits with a message that is not a mesh report), stuck (runs, never Ready, does
    not exit on the stop annotation). Records the targets each pod was given."""

    def __init__(self, script):
        self.script = script
        self.peers = {}
        self.n = 0

    def install(self, cluster):
        cluster.on_create["pods"] = self.create
        cluster.on_patch["pods"] = self.patch

    def create(self, pod, cluster):
        outcome = self.script[pod["spec"]["nodeName"]]
        self.n += 1
        if outcome == "pull":
            pod["status"] = {"phase": "Pending", "containerStatuses": [{"name": "probe", "state": {"waiting": {
                "reason": "ErrImagePull", "message": "failed to pull image: not found"}}}]}
        elif outcome == "pending":
            pod["status"] = {"phase": "Pending", "containerStatuses": [{"name": "probe", "state": {"waiting": {
                "reason": "ContainerCreating"}}}]}
        else:
            pod["status"] = {"phase": "Running", "podIP": "192.168.%d.%d" % (self.n, 20 + self.n),
                             "conditions": [{"type": "Ready", "status": "False"}],
                             "containerStatuses": [{"name": "probe", "started": True,
                                                    "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}

    def patch(self, pod, patch, cluster):
        outcome = self.script[pod["spec"]["nodeName"]]
        ann = (patch.get("metadata") or {}).get("annotations") or {}
        if mesh.PEERS_ANNOTATION in ann:
            self.peers[pod["metadata"]["name"]] = ann[mesh.PEERS_ANNOTATION]
            if outcome in ("ok", "garbage"):
                pod["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
        if mesh.STOP_ANNOTATION in ann and outcome in ("ok", "garbage"):
            lines = [line.split() for line in pod["metadata"]["annotations"][mesh.PEERS_ANNOTATION].splitlines()]
            ip = pod["status"]["podIP"]
            letters = "".join("s" if ln[2] == ip else "o" for ln in lines)
            message = "meshprobe/1\n%s\n" % letters if outcome == "ok" else "sh: udpsvd: not found\n"
            code = 0 if outcome == "ok" else 127
            pod["status"] = {"phase": "Succeeded" if code == 0 else "Failed", "podIP": ip,
                             "containerStatuses": [{"name": "probe", "state": {"terminated": {
                                 "exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                 "message": message}}}]}


@pytest.fixture()
def api():
    fake = FakeKubeAPI().start()
    yield fake
    fake.stop()


def probe_pods(api):
    return [p for p in api.cluster.objects("api/v1", "pods") if p["metadata"].get("namespace") == "default"]


def test_outcomes_bounded_and_always_cleaned_up(api):
    nodes = ["node1", "node2", "node3", "node4", "node5"]
    api.cluster.add_all([node(n, i) for i, n in enumerate(nodes, 1)] + dns_objects())
    kubelet = ScriptedKubelet({"node1": "ok", "node2": "ok", "node3": "pull", "node4": "pending",
                               "node5": "garbage"})
    kubelet.install(api.cluster)
    res, wall, out = run_module({"kubeconfig": api.write_kubeconfig(), "start_timeout": 3, "probe_timeout": 3,
                                 "external": "example.test:443"})
    assert res.get("failed") is not True, out
    by_node = dict((r["node"], r) for r in res["pod_results"])
    assert by_node["node1"]["outcome"] == "finished" and by_node["node2"]["outcome"] == "finished"
    assert by_node["node3"]["outcome"] == "failed" and by_node["node3"]["detail"].startswith("ErrImagePull")
    assert by_node["node4"]["outcome"] == "timeout"
    assert by_node["node4"]["detail"] == "not running within 3s (phase Pending, waiting: ContainerCreating)"
    assert by_node["node5"]["outcome"] == "failed" and "exit 127): sh: udpsvd: not found" in by_node["node5"]["detail"]
    # only the pods that ran got targets: the three running pods, the Service and the external endpoint
    (peers,) = set(kubelet.peers.values())
    assert peers.count("\n") == 3 * 2 + 2 and "service tcp 10.96.0.10 53\n" in peers
    assert peers.endswith("external tcp example.test 443\n")
    check = res["check"]
    assert sorted((f["id"], f["where"]) for f in check["findings"]) == [
        ("MESH_PROBE_FAILED", "node3"), ("MESH_PROBE_FAILED", "node4"), ("MESH_PROBE_FAILED", "node5")]
    rows = check["evidence"]["mesh"]
    assert len(rows) == 2 * (2 * 2 + 2) and all(r["ok"] for r in rows)  # node1/node2: each other + node5's IP
    assert check["status"] == "failed"
    assert probe_pods(api) == [] and res["cleanup_errors"] == []
    deletes = [p for m, p in api.cluster.requests if m == "DELETE" and "/namespaces/default/pods/" in p]
    assert len(deletes) == 5
    assert wall < 3 + 3 + 30 + 20, wall  # start + probe + stop bounds, plus the module's start-up


def test_a_pod_that_never_finishes_is_a_timeout_and_deleted(api):
    api.cluster.add_all([node("node1", 1), node("node2", 2)] + dns_objects())
    kubelet = ScriptedKubelet({"node1": "ok", "node2": "stuck"})
    kubelet.install(api.cluster)
    res, wall, out = run_module({"kubeconfig": api.write_kubeconfig(), "start_timeout": 5, "probe_timeout": 2,
                                 "stop_timeout": 2, "external": ""})
    by_node = dict((r["node"], r) for r in res["pod_results"])
    assert by_node["node1"]["outcome"] == "finished", out
    assert by_node["node2"]["outcome"] == "timeout"
    assert by_node["node2"]["detail"].startswith("did not finish its connects within 2s (phase Running")
    assert [r["kind"] for r in res["check"]["evidence"]["mesh"]] == ["pod", "pod", "service"]  # external skipped
    assert probe_pods(api) == []
    assert wall < 5 + 2 + 2 + 20, wall


def test_check_mode_starts_no_pod(api):
    api.cluster.add_all([node("node1", 1)] + dns_objects())
    res, _wall, out = run_module({"kubeconfig": api.write_kubeconfig(), "_ansible_check_mode": True})
    assert res["check"]["status"] == "skipped" and res["pod_results"] == [], out
    assert [m for m, _p in api.cluster.requests if m in ("POST", "PATCH", "DELETE")] == []


@pytest.mark.parametrize("args, expected", [
    ({"pods_per_node": 0}, "pods_per_node must be 1 to 4 (got 0)"),
    ({"probe_timeout": 0}, "probe_timeout must be > 0 (got 0.0)"),
    ({"external": "kubernetes.io"}, "external: expected host:port (e.g. kubernetes.io:443), got 'kubernetes.io'"),
    ({"kubeconfig": "/nonexistent/kubeconfig"}, "cannot load kubeconfig /nonexistent/kubeconfig"),
])
def test_bad_input_names_the_option(args, expected):
    res, _wall, out = run_module(args)
    assert res.get("failed") is True and expected in res["msg"], out
    assert "Traceback" not in out


def test_unreachable_api_is_one_clear_message():
    fake = FakeKubeAPI().start()
    kubeconfig = fake.write_kubeconfig(os.path.join(tempfile.mkdtemp(prefix="kmesh-"), "kubeconfig"))
    fake.stop()
    res, _wall, out = run_module({"kubeconfig": kubeconfig, "api_timeout": 2})
    assert res.get("failed") is True and "Traceback" not in out
    assert res["msg"].startswith("mesh_probe: read service kube-system/kube-dns failed: cannot reach the Kubernetes API")
