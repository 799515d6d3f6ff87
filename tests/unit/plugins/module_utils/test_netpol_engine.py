"""Truth table of the NetworkPolicy engine (analysis/netpol.py).

Every expected verdict below was written from the Kubernetes documentation (the concept page
"Network Policies" and the networking.k8s.io/v1 API reference), not from the engine: the ``doc``
column quotes or paraphrases the statement the case follows. Each rule is proven both ways.
"""

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import netpol


# -- the world ---------------------------------------------------------------------------------
def ns(name, **labels):
    return {"metadata": {"name": name, "labels": labels}}


NAMESPACES = [ns("default"), ns("shop", team="shop"), ns("kube-system"), ns("alice", user="alice"),
              ns("bob", user="bob")]
NODE_IP = {"node1": "10.0.1.11", "node2": "10.0.1.12", "node3": "10.0.1.13"}


def pod(name, namespace, labels, node, ip, ports=(), host_network=False):
    spec = {"nodeName": node, "containers": [{"name": "c", "ports": [
        dict({"containerPort": p[1], "protocol": p[2] if len(p) > 2 else "TCP"}, **({"name": p[0]} if p[0] else {}))
        for p in ports]}]}
    if host_network:
        spec["hostNetwork"] = True
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": spec,
            "status": {"phase": "Running", "podIP": NODE_IP[node] if host_network else ip, "hostIP": NODE_IP[node]}}


PODS = {
    "web": pod("web", "shop", {"app": "web"}, "node1", "192.168.1.10", [("http", 8080)]),
    "api": pod("api", "shop", {"app": "api"}, "node2", "192.168.2.10", [("http", 8080), ("grpc", 50051)]),
    # same app, another version: its container port named "http" is 9090
    "api-v2": pod("api-v2", "shop", {"app": "api"}, "node1", "192.168.1.11", [("http", 9090)]),
    "db": pod("db", "shop", {"role": "db"}, "node2", "192.168.2.11", [("", 6379)]),
    "shop-client": pod("shop-client", "shop", {"role": "client"}, "node3", "192.168.3.12"),
    "client": pod("client", "alice", {"role": "client"}, "node1", "192.168.1.20"),
    "alice-job": pod("alice-job", "alice", {"app": "job"}, "node3", "192.168.3.21"),
    "bob-client": pod("bob-client", "bob", {"role": "client"}, "node3", "192.168.3.22"),
    "default-client": pod("default-client", "default", {"role": "client"}, "node3", "192.168.3.20"),
    "coredns": pod("coredns", "kube-system", {"k8s-app": "kube-dns"}, "node1", "192.168.1.53",
                   [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153)]),
    "agent": pod("agent", "kube-system", {"app": "agent"}, "node2", None, [("", 9100)], host_network=True),
}
ALL_PODS = list(PODS.values())

SVC_API = {"kind": "Service", "metadata": {"name": "api", "namespace": "shop"},
           "spec": {"selector": {"app": "api"}, "ports": [{"port": 80, "targetPort": "http", "protocol": "TCP"}]}}


def np(name, namespace="shop", selector=None, types=None, ingress=None, egress=None):
    spec = {"podSelector": selector if selector is not None else {}}
    if types is not None:
        spec["policyTypes"] = list(types)
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


def sel(**labels):
    return {"matchLabels": labels}


DENY_INGRESS = np("default-deny-ingress", types=["Ingress"])
DENY_EGRESS = np("default-deny-egress", types=["Egress"])
DENY_ALL = np("default-deny-all", types=["Ingress", "Egress"])
ALLOW_DNS = np("allow-dns", types=["Egress"], egress=[{
    "to": [{"namespaceSelector": sel(**{"kubernetes.io/metadata.name": "kube-system"}),
            "podSelector": sel(**{"k8s-app": "kube-dns"})}],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}])
TUTORIAL_DNS = np("allow-dns", types=["Egress"], egress=[{
    "to": [{"namespaceSelector": sel(name="kube-system")}], "ports": [{"protocol": "UDP", "port": 53}]}])


def ingress_to_api(*rules):
    return np("api-ingress", selector=sel(app="api"), types=["Ingress"], ingress=list(rules))


def egress_from_web(*rules):
    return np("web-egress", selector=sel(app="web"), types=["Egress"], egress=list(rules))


# (id, doc statement, policies, src, dst, port, protocol, expected)
CASES = [
    # -- isolation per direction (D1) -------------------------------------------------------------
    ("no-policy", "by default a pod is non-isolated: all connections are allowed",
     [], "web", "api", 8080, "TCP", True),
    ("deny-ingress", "isolated for ingress: only connections allowed by some ingress list",
     [DENY_INGRESS], "web", "api", 8080, "TCP", False),
    ("deny-ingress-leaves-egress", "default deny ingress does not affect isolation for egress",
     [DENY_INGRESS], "web", "203.0.113.7", 443, "TCP", True),
    ("deny-ingress-cross-ns-src", "the destination's ingress isolation applies to every source",
     [DENY_INGRESS], "client", "db", 6379, "TCP", False),
    ("unselected-pod-open", "pods not selected by any policy continue to accept all traffic",
     [np("db-only", selector=sel(role="db"), types=["Ingress"])], "web", "api", 8080, "TCP", True),
    ("selected-pod-closed", "a pod selected by an Ingress policy is isolated for ingress",
     [np("db-only", selector=sel(role="db"), types=["Ingress"])], "web", "db", 6379, "TCP", False),
    ("deny-egress", "isolated for egress: only connections allowed by some egress list",
     [DENY_EGRESS], "web", "api", 8080, "TCP", False),
    ("deny-egress-leaves-ingress", "default deny egress does not change ingress isolation of any pod",
     [DENY_EGRESS], "client", "api", 8080, "TCP", True),
    ("deny-egress-external", "an egress-isolated pod reaches no external address without a rule",
     [DENY_EGRESS], "web", "203.0.113.7", 443, "TCP", False),
    ("policy-other-ns", "a policy selects pods in its own namespace only",
     [np("deny", namespace="alice", types=["Ingress", "Egress"])], "web", "api", 8080, "TCP", True),
    ("policy-other-ns-applies", "... and does isolate the pods of its own namespace",
     [np("deny", namespace="alice", types=["Ingress", "Egress"])], "client", "api", 8080, "TCP", False),
    # -- policyTypes defaulting (D2) --------------------------------------------------------------
    ("types-default-ingress", "no policyTypes: Ingress is always set",
     [np("bare")], "client", "web", 8080, "TCP", False),
    ("types-default-no-egress", "no policyTypes and no egress rules: Egress is not set",
     [np("bare")], "web", "203.0.113.7", 443, "TCP", True),
    ("types-default-egress-set", "no policyTypes: Egress is set when the policy has egress rules",
     [np("to-10", egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}])], "web", "203.0.113.7", 443, "TCP", False),
    ("types-default-egress-rule", "... and its egress rules then allow their destinations",
     [np("to-10", egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}])], "web", "10.20.0.5", 443, "TCP", True),
    ("types-egress-only-ignores-ingress", "policyTypes [Egress]: the policy does not apply for ingress",
     [np("eg", types=["Egress"], ingress=[])], "client", "web", 8080, "TCP", True),
    # -- union of rules and both sides (D3) -------------------------------------------------------
    ("union-first", "the union of the applicable policies: the first allows app=web",
     [ingress_to_api({"from": [{"podSelector": sel(app="web")}]}),
      np("api-from-alice", selector=sel(app="api"), ingress=[{"from": [{"namespaceSelector": sel(user="alice")}]}])],
     "web", "api", 8080, "TCP", True),
    ("union-second", "... the second allows namespace user=alice",
     [ingress_to_api({"from": [{"podSelector": sel(app="web")}]}),
      np("api-from-alice", selector=sel(app="api"), ingress=[{"from": [{"namespaceSelector": sel(user="alice")}]}])],
     "client", "api", 8080, "TCP", True),
    ("union-neither", "... and what neither allows stays denied",
     [ingress_to_api({"from": [{"podSelector": sel(app="web")}]}),
      np("api-from-alice", selector=sel(app="api"), ingress=[{"from": [{"namespaceSelector": sel(user="alice")}]}])],
     "db", "api", 8080, "TCP", False),
    ("both-sides-egress-only", "both the source's egress and the destination's ingress must allow",
     [egress_from_web({"to": [{"podSelector": sel(app="api")}]}), DENY_INGRESS], "web", "api", 8080, "TCP", False),
    ("both-sides-ingress-only", "... a destination that allows does not help a denied source",
     [DENY_EGRESS, ingress_to_api({"from": [{"podSelector": sel(app="web")}]})], "web", "api", 8080, "TCP", False),
    ("both-sides-both", "... and when both allow, the connection is allowed",
     [egress_from_web({"to": [{"podSelector": sel(app="api")}]}), ingress_to_api({"from": [{"podSelector": sel(app="web")}]})],
     "web", "api", 8080, "TCP", True),
    ("allow-all-ingress-wins", "with an allow-all ingress policy no other policy can deny incoming connections",
     [DENY_INGRESS, np("allow-all", types=["Ingress"], ingress=[{}])], "client", "db", 6379, "TCP", True),
    # -- a rule is from/to AND ports (D4) ---------------------------------------------------------
    ("rule-peer-and-port", "a rule allows traffic matching both its from and its ports",
     [ingress_to_api({"from": [{"podSelector": sel(app="web")}], "ports": [{"port": 8080}]})], "web", "api", 8080, "TCP", True),
    ("rule-port-miss", "... a matching peer on another port is not allowed",
     [ingress_to_api({"from": [{"podSelector": sel(app="web")}], "ports": [{"port": 8080}]})], "web", "api", 50051, "TCP", False),
    ("rule-peer-miss", "... the right port from another peer is not allowed",
     [ingress_to_api({"from": [{"podSelector": sel(app="web")}], "ports": [{"port": 8080}]})], "db", "api", 8080, "TCP", False),
    ("rule-no-ports", "ports empty or missing: the rule matches all ports",
     [ingress_to_api({"from": [{"podSelector": sel(app="web")}]})], "web", "api", 50051, "TCP", True),
    ("rule-no-from", "from empty or missing: the rule matches all sources",
     [ingress_to_api({"ports": [{"port": 8080}]})], "client", "api", 8080, "TCP", True),
    ("rule-no-from-port-miss", "... but still only on its ports",
     [ingress_to_api({"ports": [{"port": 8080}]})], "client", "api", 50051, "TCP", False),
    ("rule-empty", "an empty rule {} allows everything in that direction",
     [ingress_to_api({})], "default-client", "api", 50051, "TCP", True),
    ("rules-empty-list", "an ingress list with no rule allows nothing",
     [ingress_to_api()], "web", "api", 8080, "TCP", False),
    # -- peers: podSelector, namespaceSelector, both (D5) -----------------------------------------
    ("pod-selector-local", "podSelector selects pods in the same namespace as the policy",
     [ingress_to_api({"from": [{"podSelector": sel(role="client")}]})], "shop-client", "api", 8080, "TCP", True),
    ("pod-selector-not-other-ns", "... a pod with the same labels in another namespace is not selected",
     [ingress_to_api({"from": [{"podSelector": sel(role="client")}]})], "client", "api", 8080, "TCP", False),
    ("ns-selector-alone", "namespaceSelector alone selects all pods of the selected namespaces",
     [ingress_to_api({"from": [{"namespaceSelector": sel(user="alice")}]})], "alice-job", "api", 8080, "TCP", True),
    ("ns-selector-alone-miss", "... and no pod of other namespaces",
     [ingress_to_api({"from": [{"namespaceSelector": sel(user="alice")}]})], "default-client", "api", 8080, "TCP", False),
    ("ns-and-pod-one-peer", "namespaceSelector and podSelector in ONE entry: pods matching both",
     [ingress_to_api({"from": [{"namespaceSelector": sel(user="alice"), "podSelector": sel(role="client")}]})],
     "client", "api", 8080, "TCP", True),
    ("ns-and-pod-one-peer-wrong-pod", "... a pod of the namespace without the pod labels is not allowed",
     [ingress_to_api({"from": [{"namespaceSelector": sel(user="alice"), "podSelector": sel(role="client")}]})],
     "alice-job", "api", 8080, "TCP", False),
    ("ns-and-pod-one-peer-wrong-ns", "... nor a pod with the labels in another namespace",
     [ingress_to_api({"from": [{"namespaceSelector": sel(user="alice"), "podSelector": sel(role="client")}]})],
     "bob-client", "api", 8080, "TCP", False),
    ("ns-or-pod-two-peers-ns", "two entries: any pod of namespace user=alice ...",
     [ingress_to_api({"from": [{"namespaceSelector": sel(user="alice")}, {"podSelector": sel(role="client")}]})],
     "alice-job", "api", 8080, "TCP", True),
    ("ns-or-pod-two-peers-pod", "... or a role=client pod of the local namespace",
     [ingress_to_api({"from": [{"namespaceSelector": sel(user="alice")}, {"podSelector": sel(role="client")}]})],
     "shop-client", "api", 8080, "TCP", True),
    ("ns-or-pod-two-peers-neither", "... but not a role=client pod of a third namespace",
     [ingress_to_api({"from": [{"namespaceSelector": sel(user="alice")}, {"podSelector": sel(role="client")}]})],
     "bob-client", "api", 8080, "TCP", False),
    ("empty-ns-selector", "an empty namespaceSelector selects all namespaces",
     [ingress_to_api({"from": [{"namespaceSelector": {}, "podSelector": sel(role="client")}]})],
     "bob-client", "api", 8080, "TCP", True),
    ("empty-pod-selector-local", "an empty podSelector selects all pods (of the policy's namespace)",
     [ingress_to_api({"from": [{"podSelector": {}}]})], "db", "api", 8080, "TCP", True),
    ("empty-pod-selector-not-other-ns", "... and none of another namespace",
     [ingress_to_api({"from": [{"podSelector": {}}]})], "client", "api", 8080, "TCP", False),
    ("ns-expression-in", "namespaceSelector follows label selector semantics (In)",
     [ingress_to_api({"from": [{"namespaceSelector": {"matchExpressions": [
         {"key": "user", "operator": "In", "values": ["alice", "bob"]}]}}]})], "bob-client", "api", 8080, "TCP", True),
    ("ns-expression-in-miss", "... a namespace without the label is not selected",
     [ingress_to_api({"from": [{"namespaceSelector": {"matchExpressions": [
         {"key": "user", "operator": "In", "values": ["alice", "bob"]}]}}]})], "default-client", "api", 8080, "TCP", False),
    ("ns-by-name-label", "the control plane labels every namespace kubernetes.io/metadata.name",
     [ALLOW_DNS], "web", "coredns", 53, "UDP", True),
    ("ns-by-made-up-label", "a namespace cannot be selected by a label it does not carry (name=kube-system)",
     [TUTORIAL_DNS], "web", "coredns", 53, "UDP", False),
    ("cross-ns-egress-and-ingress", "cross-namespace: shop's egress to alice and alice's ingress from shop",
     [egress_from_web({"to": [{"namespaceSelector": sel(user="alice"), "podSelector": sel(role="client")}]}),
      np("from-shop", namespace="alice", selector=sel(role="client"), ingress=[
          {"from": [{"namespaceSelector": sel(team="shop"), "podSelector": sel(app="web")}]}])],
     "web", "client", 8080, "TCP", True),
    ("cross-ns-ingress-wrong-ns", "... alice's ingress admits shop only, not namespace bob",
     [np("from-shop", namespace="alice", selector=sel(role="client"), ingress=[
         {"from": [{"namespaceSelector": sel(team="shop"), "podSelector": sel(role="client")}]}])],
     "bob-client", "client", 8080, "TCP", False),
    # -- ipBlock (D6) -----------------------------------------------------------------------------
    ("ipblock-egress", "ipBlock selects the CIDR range as egress destination",
     [egress_from_web({"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}]})], "web", "203.0.113.7", 443, "TCP", True),
    ("ipblock-egress-outside", "... and no address outside it",
     [egress_from_web({"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}]})], "web", "198.51.100.7", 443, "TCP", False),
    ("ipblock-except", "except removes ranges from the block",
     [egress_from_web({"to": [{"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.0/28"]}}]})],
     "web", "203.0.113.7", 443, "TCP", False),
    ("ipblock-except-rest", "... the rest of the block stays allowed",
     [egress_from_web({"to": [{"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.0/28"]}}]})],
     "web", "203.0.113.20", 443, "TCP", True),
    ("ipblock-doc-example-in", "doc example: 172.17.0.0/16 except 172.17.1.0/24 admits 172.17.0.5",
     [np("db", selector=sel(role="db"), types=["Ingress"], ingress=[
         {"from": [{"ipBlock": {"cidr": "172.17.0.0/16", "except": ["172.17.1.0/24"]}}], "ports": [{"port": 6379}]}])],
     "172.17.0.5", "db", 6379, "TCP", True),
    ("ipblock-doc-example-except", "... not 172.17.1.5",
     [np("db", selector=sel(role="db"), types=["Ingress"], ingress=[
         {"from": [{"ipBlock": {"cidr": "172.17.0.0/16", "except": ["172.17.1.0/24"]}}], "ports": [{"port": 6379}]}])],
     "172.17.1.5", "db", 6379, "TCP", False),
    ("ipblock-doc-example-upper", "... and 172.17.2.0-172.17.255.255 again",
     [np("db", selector=sel(role="db"), types=["Ingress"], ingress=[
         {"from": [{"ipBlock": {"cidr": "172.17.0.0/16", "except": ["172.17.1.0/24"]}}], "ports": [{"port": 6379}]}])],
     "172.17.200.1", "db", 6379, "TCP", True),
    ("ipblock-pod-ip", "an ipBlock holding a pod IP matches that pod (as conformance tests do)",
     [ingress_to_api({"from": [{"ipBlock": {"cidr": "192.168.1.0/24"}}]})], "web", "api", 8080, "TCP", True),
    ("ipblock-pod-ip-outside", "... and not a pod outside it",
     [ingress_to_api({"from": [{"ipBlock": {"cidr": "192.168.1.0/24"}}]})], "db", "api", 8080, "TCP", False),
    ("external-src-pod-selector", "an address outside the cluster is matched by an ipBlock only",
     [ingress_to_api({"from": [{"namespaceSelector": {}}]})], "203.0.113.7", "api", 8080, "TCP", False),
    # -- ports (D7) -------------------------------------------------------------------------------
    ("protocol-default-tcp", "protocol defaults to TCP: port 53 without protocol does not admit UDP",
     [np("dns-tcp", types=["Egress"], egress=[{"ports": [{"port": 53}]}])], "web", "coredns", 53, "UDP", False),
    ("protocol-default-tcp-match", "... and admits TCP 53",
     [np("dns-tcp", types=["Egress"], egress=[{"ports": [{"port": 53}]}])], "web", "coredns", 53, "TCP", True),
    ("port-missing-all-ports", "port not provided: all port numbers of that protocol",
     [egress_from_web({"ports": [{"protocol": "UDP"}]})], "web", "203.0.113.7", 5353, "UDP", True),
    ("port-missing-other-protocol", "... but only of that protocol",
     [egress_from_web({"ports": [{"protocol": "UDP"}]})], "web", "203.0.113.7", 5353, "TCP", False),
    ("endport-low", "endPort: the range port..endPort inclusive (32000)",
     [egress_from_web({"ports": [{"protocol": "TCP", "port": 32000, "endPort": 32768}]})],
     "web", "203.0.113.7", 32000, "TCP", True),
    ("endport-high", "... inclusive of endPort (32768)",
     [egress_from_web({"ports": [{"protocol": "TCP", "port": 32000, "endPort": 32768}]})],
     "web", "203.0.113.7", 32768, "TCP", True),
    ("endport-above", "... not above it",
     [egress_from_web({"ports": [{"protocol": "TCP", "port": 32000, "endPort": 32768}]})],
     "web", "203.0.113.7", 32769, "TCP", False),
    ("endport-below", "... nor below port",
     [egress_from_web({"ports": [{"protocol": "TCP", "port": 32000, "endPort": 32768}]})],
     "web", "203.0.113.7", 31999, "TCP", False),
    ("named-ingress-v1", "a named port is a port on the destination pod: http is 8080 on api",
     [ingress_to_api({"ports": [{"port": "http"}]})], "web", "api", 8080, "TCP", True),
    ("named-ingress-v2", "... and 9090 on api-v2",
     [ingress_to_api({"ports": [{"port": "http"}]})], "web", "api-v2", 9090, "TCP", True),
    ("named-ingress-v2-wrong-number", "... so 8080 on api-v2 is not the named port",
     [ingress_to_api({"ports": [{"port": "http"}]})], "web", "api-v2", 8080, "TCP", False),
    ("named-ingress-v1-wrong-number", "... nor 9090 on api",
     [ingress_to_api({"ports": [{"port": "http"}]})], "web", "api", 9090, "TCP", False),
    ("named-egress-dst-v1", "egress named ports are resolved on the destination pod (api: 8080)",
     [egress_from_web({"ports": [{"port": "http"}]})], "web", "api", 8080, "TCP", True),
    ("named-egress-dst-v2", "... (api-v2: 9090)",
     [egress_from_web({"ports": [{"port": "http"}]})], "web", "api-v2", 9090, "TCP", True),
    ("named-egress-dst-v2-wrong", "... not the source's own http port",
     [egress_from_web({"ports": [{"port": "http"}]})], "web", "api-v2", 8080, "TCP", False),
    ("named-undeclared", "a named port the destination does not declare matches nothing",
     [egress_from_web({"ports": [{"port": "http"}]})], "web", "db", 6379, "TCP", False),
    ("named-protocol", "a named port is matched with its protocol (dns is UDP 53 on CoreDNS)",
     [egress_from_web({"ports": [{"protocol": "UDP", "port": "dns"}]})], "web", "coredns", 53, "UDP", True),
    ("named-wrong-protocol", "... so TCP 'dns' names nothing there (TCP 53 is dns-tcp)",
     [egress_from_web({"ports": [{"protocol": "TCP", "port": "dns"}]})], "web", "coredns", 53, "TCP", False),
    ("named-to-address", "a named port has no meaning for a non-pod destination",
     [egress_from_web({"ports": [{"port": "http"}]})], "web", "203.0.113.7", 8080, "TCP", False),
    # -- hostNetwork pods (D8) --------------------------------------------------------------------
    ("hostnet-dst-not-selected", "hostNetwork pods are ignored by spec.podSelector: not isolated",
     [np("deny", namespace="kube-system", types=["Ingress", "Egress"])], "client", "agent", 9100, "TCP", True),
    ("hostnet-src-not-selected", "... their egress is not restricted either",
     [np("deny", namespace="kube-system", types=["Ingress", "Egress"])], "agent", "203.0.113.7", 443, "TCP", True),
    ("hostnet-peer-selector", "pod/namespace selectors in rules ignore hostNetwork pods",
     [ingress_to_api({"from": [{"namespaceSelector": {}, "podSelector": sel(app="agent")}]})],
     "agent", "api-v2", 9090, "TCP", False),
    ("hostnet-peer-ipblock", "a hostNetwork pod's traffic is node traffic: allowed by an ipBlock of its node IP",
     [ingress_to_api({"from": [{"ipBlock": {"cidr": "10.0.1.12/32"}}]})], "agent", "api-v2", 9090, "TCP", True),
    ("hostnet-egress-to-selector", "an egress podSelector does not match a hostNetwork destination",
     [egress_from_web({"to": [{"namespaceSelector": {}, "podSelector": sel(app="agent")}]})],
     "web", "agent", 9100, "TCP", False),
    # -- the node and the pod itself (D9) ---------------------------------------------------------
    ("own-node-ingress", "connections from the pod's node are always allowed",
     [DENY_INGRESS], "10.0.1.12", "api", 8080, "TCP", True),
    ("other-node-ingress", "... a different node is not the pod's node",
     [DENY_INGRESS], "10.0.1.11", "api", 8080, "TCP", False),
    ("own-node-hostnet-ingress", "a hostNetwork pod on the same node is the node",
     [DENY_INGRESS], "agent", "api", 8080, "TCP", True),
    ("own-node-egress", "traffic to the node where a pod runs is always allowed",
     [DENY_EGRESS], "web", "10.0.1.11", 10250, "TCP", True),
    ("other-node-egress", "... another node's address is not",
     [DENY_EGRESS], "web", "10.0.1.12", 10250, "TCP", False),
    ("self", "a pod cannot block access to itself",
     [DENY_ALL], "api", "api", 8080, "TCP", True),
    ("not-self", "... but can block its neighbour",
     [DENY_ALL], "api-v2", "api", 8080, "TCP", False),
    # -- egress isolated, DNS only ----------------------------------------------------------------
    ("dns-only-udp", "egress isolated, allow-dns: UDP 53 to CoreDNS allowed",
     [DENY_EGRESS, ALLOW_DNS], "web", "coredns", 53, "UDP", True),
    ("dns-only-tcp", "... TCP 53 to CoreDNS allowed",
     [DENY_EGRESS, ALLOW_DNS], "web", "coredns", 53, "TCP", True),
    ("dns-only-metrics", "... but not CoreDNS's other ports",
     [DENY_EGRESS, ALLOW_DNS], "web", "coredns", 9153, "TCP", False),
    ("dns-only-app", "... nor any other pod",
     [DENY_EGRESS, ALLOW_DNS], "web", "api", 8080, "TCP", False),
    ("dns-only-external-53", "... nor an external resolver on 53 (the peer is kube-system's kube-dns pods)",
     [DENY_EGRESS, ALLOW_DNS], "web", "203.0.113.53", 53, "UDP", False),
    ("dns-only-internet", "... nor the internet",
     [DENY_EGRESS, ALLOW_DNS], "web", "203.0.113.7", 443, "TCP", False),
]


def resolve(x):
    return PODS.get(x, x) if isinstance(x, str) else x


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_truth_table(case):
    _id, _doc, policies, src, dst, port, proto, expected = case
    res = netpol.allowed(resolve(src), resolve(dst), port, proto, policies, NAMESPACES, ALL_PODS)
    assert res["allowed"] is expected, res["reason"]


def test_table_size_and_both_ways():
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)
    assert {c[7] for c in CASES} == {True, False}


# -- Services: judged on the pods they select, after DNAT --------------------------------------
def test_service_named_target_port_per_pod():
    """Service port 80 -> targetPort http: 8080 on api, 9090 on api-v2; each pod is judged at its own port."""
    pols = [ingress_to_api({"from": [{"podSelector": sel(app="web")}], "ports": [{"port": "http"}]})]
    res = netpol.allowed(PODS["web"], SVC_API, 80, "TCP", pols, NAMESPACES, ALL_PODS)
    assert res["allowed"] is True
    assert sorted((b["pod"], b["target_port"], b["allowed"]) for b in res["backends"]) == [
        ("api", 8080, True), ("api-v2", 9090, True)]


def test_service_partial_when_one_backend_denied():
    pols = [ingress_to_api({"ports": [{"port": 8080}]})]
    res = netpol.allowed(PODS["web"], SVC_API, 80, "TCP", pols, NAMESPACES, ALL_PODS)
    assert res["allowed"] is False and res["partial"] is True
    assert res["deciding"] == ["shop/api-ingress"]
    assert res["reason"].startswith("Service shop/api: 1 of 2 backend pod(s) denied")


def test_service_not_judged_on_its_own_port():
    """Policies see the pod port after DNAT, never the Service port (80)."""
    pols = [ingress_to_api({"ports": [{"port": 80}]})]
    res = netpol.allowed(PODS["web"], SVC_API, 80, "TCP", pols, NAMESPACES, ALL_PODS)
    assert res["allowed"] is False and res["partial"] is False


def test_service_unknown_port():
    with pytest.raises(ValueError, match="Service shop/api has no TCP port 81"):
        netpol.allowed(PODS["web"], SVC_API, 81, "TCP", [], NAMESPACES, ALL_PODS)


# -- the explanation of a deny -------------------------------------------------------------------
def test_deny_names_deciding_policies_and_nearest_rule():
    res = netpol.allowed(PODS["web"], PODS["coredns"], 53, "UDP", [DENY_EGRESS, TUTORIAL_DNS], NAMESPACES, ALL_PODS)
    assert res["allowed"] is False
    assert res["deciding"] == ["shop/default-deny-egress", "shop/allow-dns"]
    near = res["nearest"]
    assert (near["policy"], near["direction"], near["rule"]) == ("shop/allow-dns", "Egress", 0)
    assert near["why"] == ["namespaceSelector name=kube-system does not select namespace kube-system "
                           "(it carries kubernetes.io/metadata.name=kube-system)"]
    assert res["ingress"]["isolated"] is False and res["egress"]["isolated"] is True


def test_deny_without_rules_says_so():
    res = netpol.allowed(PODS["web"], PODS["api"], 8080, "TCP", [DENY_ALL], NAMESPACES, ALL_PODS)
    assert res["nearest"] is None
    assert "and none has an egress rule" in res["egress"]["reason"]
    assert "and none has an ingress rule" in res["ingress"]["reason"]


def test_nearest_prefers_rule_with_fewest_mismatches():
    pols = [ingress_to_api({"from": [{"podSelector": sel(app="db")}], "ports": [{"port": 9999}]},
                           {"from": [{"podSelector": sel(app="web")}], "ports": [{"port": 50051}]})]
    res = netpol.allowed(PODS["web"], PODS["api"], 8080, "TCP", pols, NAMESPACES, ALL_PODS)
    assert res["nearest"]["rule"] == 1
    assert res["nearest"]["why"] == ["ports: TCP 50051 does not include 8080"]


def test_named_port_explanation():
    res = netpol.allowed(PODS["web"], PODS["db"], 6379, "TCP", [egress_from_web({"ports": [{"port": "http"}]})],
                         NAMESPACES, ALL_PODS)
    assert res["nearest"]["why"] == ["ports: named port 'http': pod shop/db declares no TCP port of that name "
                                     "(declares 6379/TCP)"]


def test_policy_types():
    assert netpol.policy_types(np("a")) == ["Ingress"]
    assert netpol.policy_types(np("a", egress=[{}])) == ["Ingress", "Egress"]
    assert netpol.policy_types(np("a", egress=[])) == ["Ingress"]
    assert netpol.policy_types(np("a", types=["Egress"])) == ["Egress"]


def test_bad_protocol():
    with pytest.raises(ValueError, match="TCP, UDP and SCTP only"):
        netpol.allowed(PODS["web"], PODS["api"], 0, "ICMP", [], NAMESPACES, ALL_PODS)
