"""The local network lab: network namespaces as nodes, iptables as the EC2 security group.

Layout (nothing is added to the root namespace's routing):

    <p>-sw   a "switch" namespace holding bridge br0
    <p>-n1.. one namespace per node; eth0 on the bridge with the node's private IP,
             iptables chain KSG on INPUT/FORWARD -i eth0 generated from an SG model
    <p>-n1-<pod>  optional "pod" namespaces behind a node (veth), pod IPs from the
             node's pod CIDR 192.168.<i>.0/24, routed node-to-node without encapsulation

Two-subnet mode (``NetLab(subnets=2)``), the multi-AZ layout: a second bridge br1 in the switch
namespace for NODE_SUBNET_2, and a router namespace ``<p>-rt`` with one leg on each bridge (the
.1 of each subnet) that forwards between them like the VPC router. Nodes alternate between the
subnets (node1 A, node2 B, node3 A, ...). Pod CIDRs of same-subnet peers are routed directly
(the unencapsulated path); those of the other subnet go to the router, which, like a VPC route
table without the pod CIDRs, has no route for them and drops them: only encapsulated traffic
(node IP to node IP) crosses subnets, which is what Calico's CrossSubnet modes rely on.

The SG model uses EC2's IpPermissions shape so the same description drives the lab and
the EC2 emulator: ``{"IpProtocol": "tcp"|"udp"|"icmp"|"4"|"-1", "FromPort", "ToPort",
"IpRanges": [{"CidrIp"}], "UserIdGroupPairs": [{"GroupId": SELF}]}`` where SELF means
"the node security group itself" (every lab node is a member). Like a real SG the
generated rules are stateful (conntrack ESTABLISHED) and drop silently.
"""

import atexit
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import uuid

SELF = "self"
NODE_SUBNET = "10.231.0.0/24"
NODE_SUBNET_2 = "10.231.2.0/24"  # second subnet of the two-subnet mode
ADMIN_CIDR = "10.231.1.0/24"  # only used in rules; no host lives there

# The seeds' node SG: SSH and API from the admin CIDR, NodePorts and VXLAN from anywhere,
# and no self-referencing rule.
SEED_SG = [
    {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": ADMIN_CIDR}]},
    {"IpProtocol": "tcp", "FromPort": 6443, "ToPort": 6443, "IpRanges": [{"CidrIp": ADMIN_CIDR}]},
    {"IpProtocol": "tcp", "FromPort": 30000, "ToPort": 32767, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
    {"IpProtocol": "udp", "FromPort": 4789, "ToPort": 4789, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
]
SELF_REF_RULE = {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": SELF}]}
HEALTHY_SG = SEED_SG + [SELF_REF_RULE]


def run(cmd, check=True, ns=None, **kw):
    if ns:
        cmd = ["ip", "netns", "exec", ns] + list(cmd)
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30, check=False, **kw)
    if check and res.returncode != 0:
        raise RuntimeError("command failed (%d): %s\n%s" % (res.returncode, " ".join(cmd), res.stderr.strip()))
    return res


def sg_to_iptables(permissions, member_ips):
    """Translate EC2 IpPermissions into iptables-restore lines for chain KSG.

    ``member_ips`` are the private IPs of the instances in the group (for the
    self-referencing UserIdGroupPairs).
    """
    lines = ["-A KSG -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"]
    for perm in permissions:
        proto = str(perm.get("IpProtocol", "-1"))
        sources = [r["CidrIp"] for r in perm.get("IpRanges", [])]
        for pair in perm.get("UserIdGroupPairs", []):
            if pair.get("GroupId") == SELF:
                sources.extend("%s/32" % ip for ip in member_ips)
        match = []
        if proto not in ("-1", "all"):
            match += ["-p", {"6": "tcp", "17": "udp", "1": "icmp"}.get(proto, proto)]
            if proto in ("tcp", "udp", "6", "17") and perm.get("FromPort") not in (None, -1):
                lo, hi = perm["FromPort"], perm.get("ToPort", perm["FromPort"])
                match += ["--dport", str(lo) if lo == hi else "%d:%d" % (lo, hi)]
        for src in sources:
            lines.append(" ".join(["-A KSG", "-s", src] + match + ["-j", "ACCEPT"]))
    lines.append("-A KSG -j DROP")
    return lines


class NetLab:
    """Create N node namespaces on a bridge with an SG model; always clean up."""

    # The kernel's ARP table is shared by every namespace: gc_thresh3 (default 1024) dynamic entries
    # in total, so a large lab (N*(N-1) entries) overflows it and probes time out for no SG reason.
    # Labs of at least this many nodes get permanent neighbour entries (exempt from that limit).
    STATIC_NEIGHBOURS_FROM = 16

    def __init__(self, nodes=3, sg=None, prefix=None, subnet=NODE_SUBNET, static_neighbours=None, subnets=1):
        if os.geteuid() != 0:
            raise RuntimeError("the network lab needs root (network namespaces, iptables)")
        for tool in ("ip", "iptables-restore"):
            if not shutil.which(tool):
                raise RuntimeError("the network lab needs %s (apt-get install iproute2 iptables)" % tool)
        self.prefix = prefix or "kl" + uuid.uuid4().hex[:4]
        self.count = nodes
        self.net = ipaddress.ip_network(subnet)
        if subnets not in (1, 2):
            raise ValueError("subnets: 1 or 2 (got %r)" % (subnets,))
        self.nets = [self.net] + ([ipaddress.ip_network(NODE_SUBNET_2)] if subnets == 2 else [])
        self.sg = list(HEALTHY_SG if sg is None else sg)
        self.nodes = []  # dicts: name, ns, ip, pod_cidr, index
        self.pods = []  # dicts: node, name, ns, ip
        self.procs = []
        self.up = False
        self.static_neighbours = nodes >= self.STATIC_NEIGHBOURS_FROM if static_neighbours is None else static_neighbours

    # -- naming ---------------------------------------------------------------
    @property
    def switch(self):
        return "%s-sw" % self.prefix

    @property
    def router(self):
        return "%s-rt" % self.prefix

    def gateway(self, index):
        """The router's address in subnet ``index`` (its first host address)."""
        return str(next(self.nets[index].hosts()))

    def same_subnet(self, a, b):
        return self.node(a)["subnet_index"] == self.node(b)["subnet_index"]

    def node(self, name_or_index):
        for node in self.nodes:
            if node["name"] == name_or_index or node["index"] == name_or_index:
                return node
        raise KeyError(name_or_index)

    def node_ips(self):
        return [n["ip"] for n in self.nodes]

    # -- lifecycle --------------------------------------------------------------
    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        atexit.register(self.stop)
        self.up = True
        run(["ip", "netns", "add", self.switch])
        for j in range(len(self.nets)):
            run(["ip", "link", "add", "br%d" % j, "type", "bridge"], ns=self.switch)
            run(["ip", "link", "set", "br%d" % j, "up"], ns=self.switch)
        run(["ip", "link", "set", "lo", "up"], ns=self.switch)
        if len(self.nets) > 1:
            self._add_router()
        for i in range(1, self.count + 1):
            j = (i - 1) % len(self.nets)
            node = {
                "index": i,
                "name": "node%d" % i,
                "ns": "%s-n%d" % (self.prefix, i),
                "ip": str(list(self.nets[j].hosts())[10 + i]),
                "pod_cidr": "192.168.%d.0/24" % i,
                "subnet_index": j,
                "subnet": str(self.nets[j]),
            }
            self.nodes.append(node)
            self._add_node(node)
        macs = {}
        if self.static_neighbours:
            for node in self.nodes:
                link = json.loads(run(["ip", "-j", "link", "show", "eth0"], ns=node["ns"]).stdout)
                macs[node["ip"]] = link[0]["address"]
        for node in self.nodes:
            batch = []
            for j, net in enumerate(self.nets):
                if j != node["subnet_index"]:
                    batch.append("route add %s via %s" % (net, self.gateway(node["subnet_index"])))
            for peer in self.nodes:
                if peer is node:
                    continue
                if peer["subnet_index"] != node["subnet_index"]:
                    # the router has no route for pod CIDRs: unencapsulated pod traffic dies there
                    batch.append("route add %s via %s" % (peer["pod_cidr"], self.gateway(node["subnet_index"])))
                    continue
                batch.append("route add %s via %s" % (peer["pod_cidr"], peer["ip"]))
                if self.static_neighbours:
                    batch.append("neigh replace %s lladdr %s dev eth0 nud permanent" % (peer["ip"], macs[peer["ip"]]))
            if batch:
                run(["ip", "-batch", "-"], ns=node["ns"], input="\n".join(batch) + "\n")
        self.apply_sg(self.sg)
        return self

    def _add_router(self):
        """The router namespace: leg eth<j> on bridge br<j> with the subnet's first address; forwards."""
        run(["ip", "netns", "add", self.router])
        for j, net in enumerate(self.nets):
            outer, inner = "%sr%d" % (self.prefix, j), "%sq%d" % (self.prefix, j)
            run(["ip", "link", "add", outer, "netns", self.switch, "type", "veth", "peer", "name", inner,
                 "netns", self.router])
            run(["ip", "link", "set", outer, "master", "br%d" % j, "up"], ns=self.switch)
            run(["ip", "link", "set", inner, "name", "eth%d" % j], ns=self.router)
            run(["ip", "addr", "add", "%s/%d" % (self.gateway(j), net.prefixlen), "dev", "eth%d" % j], ns=self.router)
            run(["ip", "link", "set", "eth%d" % j, "up"], ns=self.router)
        run(["ip", "link", "set", "lo", "up"], ns=self.router)
        run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], ns=self.router)

    def _add_node(self, node):
        ns, i = node["ns"], node["index"]
        outer, inner = "%sv%d" % (self.prefix, i), "%si%d" % (self.prefix, i)
        run(["ip", "netns", "add", ns])
        run(["ip", "link", "add", outer, "netns", self.switch, "type", "veth", "peer", "name", inner, "netns", ns])
        run(["ip", "link", "set", outer, "master", "br%d" % node["subnet_index"], "up"], ns=self.switch)
        run(["ip", "link", "set", inner, "name", "eth0"], ns=ns)
        run(["ip", "addr", "add", "%s/%d" % (node["ip"], self.nets[node["subnet_index"]].prefixlen), "dev", "eth0"],
            ns=ns)
        run(["ip", "link", "set", "eth0", "up"], ns=ns)
        run(["ip", "link", "set", "lo", "up"], ns=ns)
        run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], ns=ns)

    def apply_sg(self, permissions):
        """(Re)write the SG chain on every node from an IpPermissions list."""
        self.sg = list(permissions)
        rules = sg_to_iptables(self.sg, self.node_ips())
        text = "\n".join(
            ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":KSG - [0:0]",
             "-A INPUT -i eth0 -j KSG", "-A FORWARD -i eth0 -j KSG"] + rules + ["COMMIT", ""]
        )
        for node in self.nodes:
            run(["iptables-restore", "-w", "5"], ns=node["ns"], input=text)

    def blackhole(self, name):
        """Make a node drop everything it receives or sends on eth0 (a dead or isolated node)."""
        ns = self.node(name)["ns"]
        run(["iptables", "-w", "5", "-I", "INPUT", "1", "-i", "eth0", "-j", "DROP"], ns=ns)
        run(["iptables", "-w", "5", "-I", "OUTPUT", "1", "-o", "eth0", "-j", "DROP"], ns=ns)

    def add_pod(self, node_name, pod_name, host_index=10):
        """A 'pod': a namespace behind the node with an IP from the node's pod CIDR."""
        node = self.node(node_name)
        net = ipaddress.ip_network(node["pod_cidr"])
        ip = str(net.network_address + host_index)
        gw = str(net.network_address + 1)
        ns = "%s-%s" % (node["ns"], pod_name)
        tag = uuid.uuid4().hex[:6]
        outer, inner = "kp%so" % tag, "kp%si" % tag
        run(["ip", "netns", "add", ns])
        run(["ip", "link", "add", outer, "netns", node["ns"], "type", "veth", "peer", "name", inner, "netns", ns])
        run(["ip", "link", "set", inner, "name", "eth0"], ns=ns)
        run(["ip", "addr", "add", "%s/32" % ip, "dev", "eth0"], ns=ns)
        run(["ip", "link", "set", "eth0", "up"], ns=ns)
        run(["ip", "link", "set", "lo", "up"], ns=ns)
        run(["ip", "addr", "add", "%s/32" % gw, "dev", outer], ns=node["ns"])
        run(["ip", "link", "set", outer, "up"], ns=node["ns"])
        run(["ip", "route", "add", ip + "/32", "dev", outer], ns=node["ns"])
        run(["ip", "route", "add", gw + "/32", "dev", "eth0"], ns=ns)
        run(["ip", "route", "add", "default", "via", gw, "dev", "eth0"], ns=ns)
        pod = {"node": node["name"], "name": pod_name, "ns": ns, "ip": ip}
        self.pods.append(pod)
        return pod

    def spawn(self, ns, cmd, **kw):
        """Start a long-running process inside a namespace; stopped by stop()."""
        proc = subprocess.Popen(["ip", "netns", "exec", ns] + list(cmd), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, **kw)
        self.procs.append(proc)
        return proc

    def exec(self, name, cmd, **kw):
        return run(cmd, ns=self.node(name)["ns"], **kw)

    def stop(self):
        if not self.up:
            return
        self.up = False
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self.procs = []
        cleanup(self.prefix)
        if getattr(self, "_wrapper_dir", None):
            shutil.rmtree(self._wrapper_dir, ignore_errors=True)
            self._wrapper_dir = None

    # -- Ansible ----------------------------------------------------------------
    def inventory(self, python=None, control_planes=1, extra_vars=None):
        """An Ansible inventory (dict, YAML/JSON-able) whose hosts are the lab nodes.

        Modules run inside each node's namespace through the interpreter command
        ``ip netns exec <ns> <python>`` on a local connection. ansible-core 2.19 treats
        ``ansible_python_interpreter`` as one executable path, so the command is wrapped in a
        small per-node script (``interpreter_path()``, removed by stop()).
        """
        python = python or os.path.realpath(os.environ.get("LAB_PYTHON", shutil.which("python3")))
        cps, workers = {}, {}
        for node in self.nodes:
            hostvars = {
                "ansible_connection": "local",
                "ansible_python_interpreter": self.interpreter_path(node["name"], python),
                "private_ip_address": node["ip"],
                "kubeadm_ec2_arch": "amd64",
                "lab_namespace": node["ns"],
                "lab_pod_cidr": node["pod_cidr"],
                # as the aws_ec2 inventory names it; one subnet per lab bridge
                "subnet_id": "lab-subnet-%d" % (node["subnet_index"] + 1),
            }
            (cps if node["index"] <= control_planes else workers)[node["name"]] = hostvars
        return {
            "all": {
                "vars": dict(extra_vars or {}),
                "children": {
                    "k8s_cluster": {
                        "children": {"control_plane": {"hosts": cps}, "workers": {"hosts": workers}}
                    }
                },
            }
        }

    def interpreter_path(self, name, python):
        """An executable script that runs ``python`` inside node ``name``'s namespace."""
        node = self.node(name)
        if not getattr(self, "_wrapper_dir", None):
            self._wrapper_dir = tempfile.mkdtemp(prefix="%s-interp-" % self.prefix)
        path = os.path.join(self._wrapper_dir, "%s-python" % node["ns"])
        with open(path, "w") as fh:
            fh.write('#!/bin/sh\nexec ip netns exec %s %s "$@"\n' % (node["ns"], python))
        os.chmod(path, 0o755)
        return path

    def write_inventory(self, path, **kw):
        with open(path, "w") as fh:
            json.dump(self.inventory(**kw), fh, indent=1)
        return path


def cleanup(prefix):
    """Delete every namespace whose name starts with ``prefix-`` (also leftovers of crashed runs)."""
    res = run(["ip", "netns", "list"], check=False)
    names = [line.split()[0] for line in res.stdout.splitlines() if line.strip()]
    for name in names:
        if name.startswith(prefix + "-"):
            # kill anything still running inside, then drop the namespace (veths go with it)
            pids = run(["ip", "netns", "pids", name], check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except (OSError, ValueError):
                    pass
            run(["ip", "netns", "delete", name], check=False)
