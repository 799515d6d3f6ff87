"""The image check's cluster reads leave out the collection's own probe pods (dns_probe_pods, paths_probe):
validate.yml runs them while the image check reads, and they are no workload of the cluster."""

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
