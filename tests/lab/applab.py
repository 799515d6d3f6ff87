"""An application Service on the DNS lab: a TCP listener in a pod namespace, its ClusterIP DNATed in
every node like kube-proxy, its name in the lab's CoreDNS, and the API objects that describe it.

    recs = LabService("recommendations", "shop", "10.96.80.12", 50051, node="node3")
    dnslab = DnsLab(nodes=3, sg=SEED_SG, records=recs.records())   # the name must be known at start
    dnslab.start(); recs.start(dnslab)
    api.cluster.add_all(recs.k8s_objects())

The listener accepts and closes every connection (a handshake is all a path probe needs). Everything
it starts lives in the lab's namespaces and processes, so DnsLab.stop() removes it.
"""

import sys
import time

from tests.lab.netlab import run

LISTENER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(128)
while True:
    c, _a = s.accept()
    c.close()
"""


class LabService:
    def __init__(self, name, namespace, cluster_ip, port, node, target_port=None, port_name="grpc",
                 labels=None, domain="cluster.local", host_index=20, image=None):
        self.name, self.namespace, self.cluster_ip, self.port = name, namespace, cluster_ip, int(port)
        self.node, self.port_name, self.domain, self.host_index = node, port_name, domain, host_index
        self.target_port = int(target_port or port)
        self.labels = dict(labels or {"app": name})
        self.image = image or "registry.example/%s:v1" % name
        self.pod = None  # the lab pod: node, name, ns, ip

    @property
    def fqdn(self):
        return "%s.%s.svc.%s" % (self.name, self.namespace, self.domain)

    def records(self):
        """{fqdn: ClusterIP} for DnsLab(records=...)."""
        return {self.fqdn: self.cluster_ip}

    def start(self, dnslab):
        lab = dnslab.lab
        self.pod = lab.add_pod(self.node, self.name[:8], host_index=self.host_index)
        lab.spawn(self.pod["ns"], [sys.executable, "-c", LISTENER, self.pod["ip"], str(self.target_port)])
        chain = "KSVC%d" % self.host_index
        for node in lab.nodes:  # kube-proxy: the ClusterIP to the pod, for the node's own and forwarded traffic
            ns = node["ns"]
            run(["iptables", "-w", "5", "-t", "nat", "-N", chain], ns=ns)
            run(["iptables", "-w", "5", "-t", "nat", "-A", chain, "-p", "tcp", "-j", "DNAT", "--to-destination",
                 "%s:%d" % (self.pod["ip"], self.target_port)], ns=ns)
            for hook in ("OUTPUT", "PREROUTING"):
                run(["iptables", "-w", "5", "-t", "nat", "-A", hook, "-d", self.cluster_ip + "/32", "-p", "tcp",
                     "--dport", str(self.port), "-j", chain], ns=ns)
        self._wait()
        return self

    def _wait(self, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            out = run(["ss", "-Hltn", "src", "%s:%d" % (self.pod["ip"], self.target_port)], ns=self.pod["ns"],
                      check=False).stdout
            if out.strip():
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the %s listener on %s:%d did not start" % (self.name, self.pod["ip"],
                                                                               self.target_port))
            time.sleep(0.05)

    def k8s_objects(self):
        """Deployment, its Running and Ready pod (on ``node``, declaring the named port), the Service
        (targetPort by name) and its EndpointSlice."""
        ip = self.pod["ip"] if self.pod else "192.168.0.%d" % self.host_index
        meta = {"name": self.name, "namespace": self.namespace, "labels": dict(self.labels)}
        container = {"name": self.name, "image": self.image,
                     "ports": [{"name": self.port_name, "containerPort": self.target_port, "protocol": "TCP"}]}
        pod_name = "%s-6c5d8f7b9-k2x4p" % self.name
        return [
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": dict(meta),
             "spec": {"replicas": 1, "selector": {"matchLabels": dict(self.labels)},
                      "template": {"metadata": {"labels": dict(self.labels)}, "spec": {"containers": [container]}}}},
            {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": pod_name, "namespace": self.namespace, "labels": dict(self.labels)},
             "spec": {"nodeName": self.node, "containers": [container]},
             "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": "True"}],
                        "containerStatuses": [{"name": self.name, "image": container["image"], "ready": True,
                                               "restartCount": 0,
                                               "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}},
            {"apiVersion": "v1", "kind": "Service", "metadata": dict(meta),
             "spec": {"clusterIP": self.cluster_ip, "type": "ClusterIP", "selector": dict(self.labels),
                      "ports": [{"name": self.port_name, "port": self.port, "targetPort": self.port_name,
                                 "protocol": "TCP"}]}},
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"name": "%s-x7k2p" % self.name, "namespace": self.namespace,
                          "labels": {"kubernetes.io/service-name": self.name}},
             "addressType": "IPv4",
             "endpoints": [{"addresses": [ip], "conditions": {"ready": True, "serving": True}, "nodeName": self.node,
                            "targetRef": {"kind": "Pod", "name": pod_name, "namespace": self.namespace}}],
             "ports": [{"name": self.port_name, "port": self.target_port, "protocol": "TCP"}]},
        ]
