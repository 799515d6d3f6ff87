"""The image check's cluster reads leave out the collection's own probe pods (dns_probe_pods, paths_probe,
mesh_probe) and the events about them: validate.yml runs them while the image check reads, and they are no
workload of the cluster."""

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import image as img
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes import image_k8s


class _List:
    def __init__(self, items):
        self.items = items

    def list(self, path, what):
        return [dict(i) for i in self.items]


def test_probe_pods_are_not_the_clusters_workloads():
    reader = image_k8s.ClusterReader.__new__(image_k8s.ClusterReader)
    reader.k8s = _List([
        {"metadata": {"name": "marketplace-1", "labels": {"app": "marketplace"}}},
        {"metadata": {"name": "path-probe-0-x", "labels": {"app": "marketplace", "kubeadm-ec2/path-probe-run": "r"}}},
        {"metadata": {"name": "dns-probe-node1", "labels": {"kubeadm-ec2/dns-probe-run": "r"}}},
        {"metadata": {"name": "bare"}},
    ])
    assert [p["metadata"]["name"] for p in reader.pods(["shop"])] == ["marketplace-1", "bare"]
    assert [p["metadata"]["name"] for p in reader.workload_objects(["shop"]) if p["kind"] == "Pod"] == [
        "marketplace-1", "bare"]


def test_mesh_probe_pods_are_probe_pods_too():
    """mesh_probe labels its pods kubeadm-ec2/mesh-run (not ...-probe-run): the same rule covers it."""
    reader = image_k8s.ClusterReader.__new__(image_k8s.ClusterReader)
    reader.k8s = _List([
        {"metadata": {"name": "mesh-probe-node1-x1",
                      "labels": {"app.kubernetes.io/name": "mesh-probe", "kubeadm-ec2/mesh-run": "r"}}},
        {"metadata": {"name": "web-1", "labels": {"kubeadm-ec2/team": "a"}}},
    ])
    assert [p["metadata"]["name"] for p in reader.pods(["default"])] == ["web-1"]


def _event(name, kind="Pod", ns="shop", uid=None, msg="no match for platform in manifest"):
    obj = {"kind": kind, "namespace": ns, "name": name}
    if uid:
        obj["uid"] = uid
    return {"metadata": {"name": name + ".1", "namespace": ns}, "involvedObject": obj, "reason": "Failed",
            "message": 'Failed to pull image "busybox:1.36.1": %s' % msg}


class _ByPath(_List):
    def __init__(self, by_plural):
        super().__init__([])
        self.by_plural = by_plural
        self.paths = []

    def list(self, path, what):
        self.paths.append(path)
        return [dict(i) for i in self.by_plural[path.rsplit("/", 1)[1]]]


PODS = [
    {"metadata": {"name": "marketplace-1", "namespace": "shop", "uid": "u-m", "labels": {"app": "marketplace"}}},
    {"metadata": {"name": "path-probe-0-x", "namespace": "shop", "uid": "u-p",
                  "labels": {"app": "marketplace", "kubeadm-ec2/path-probe-run": "r"}}},
    # a pod of the cluster whose name happens to look like a probe pod's: no probe label, so its own
    {"metadata": {"name": "dns-probe-lookalike", "namespace": "shop", "uid": "u-l", "labels": {"app": "dig"}}},
]
EVENTS = [
    _event("marketplace-1", uid="u-m"),
    _event("path-probe-0-x", uid="u-p"),            # a probe pod the listing shows (by its label)
    _event("dns-probe-node1-7f2kq"),                # a probe pod already deleted: named as dns_probe_pods names them
    _event("mesh-probe-node2-1-abcde"),             # and as mesh_probe does
    _event("dns-probe-lookalike", uid="u-l"),       # the cluster's own pod of that name
    _event("dns-probe-node9", kind="Node", ns=""),  # not a pod
]


def test_events_about_probe_pods_are_left_out():
    """Events outlive their pod (an hour by default): a probe pod's pull failure (busybox on a node without
    its architecture) is the collection's own, not the cluster's image problem."""
    kept = [e["involvedObject"]["name"] for e in img.without_probe_events(EVENTS, PODS)]
    assert kept == ["marketplace-1", "dns-probe-lookalike", "dns-probe-node9"]
    # and through the reader, which judges against the pods it listed (probe pods included), in one read each
    reader = image_k8s.ClusterReader.__new__(image_k8s.ClusterReader)
    reader.k8s = _ByPath({"pods": PODS, "events": EVENTS, "deployments": [], "statefulsets": [], "daemonsets": [],
                          "replicasets": [], "jobs": [], "cronjobs": []})
    objs = reader.workload_objects(["shop"])
    assert [o["metadata"]["name"] for o in objs if o["kind"] == "Pod"] == ["marketplace-1", "dns-probe-lookalike"]
    assert [e["involvedObject"]["name"] for e in reader.events(["shop"])] == [
        "marketplace-1", "dns-probe-lookalike", "dns-probe-node9"]
    assert [p for p in reader.k8s.paths if p.endswith("/pods")] == ["/api/v1/namespaces/shop/pods"]


def test_events_without_a_pod_listing_list_the_pods_first():
    reader = image_k8s.ClusterReader.__new__(image_k8s.ClusterReader)
    reader.k8s = _ByPath({"pods": PODS, "events": EVENTS})
    assert [e["involvedObject"]["name"] for e in reader.events(["shop"])] == [
        "marketplace-1", "dns-probe-lookalike", "dns-probe-node9"]
