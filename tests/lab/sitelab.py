"""EC2 instances "booted" as network namespaces, with the controller outside the VPC.

Used by tests/e2e/test_site_flow.py: playbooks/site.yml provisions on moto's server, and when its
provisioning play refreshes the inventory, the lab's inventory script (``inventory_script()``) calls
:meth:`SiteLab.sync`, which gives every running instance of the cluster a namespace of its own, at the
private IP moto gave it, behind the security groups moto holds for it. Layout (prefix ``p``)::

    p-ctl   the controller, on the admin network (CTL_IP, the only address in admin_cidr). The test
            process, moto's server, the Kubernetes API fake, the registry and ansible-playbook run here.
            ansible-playbook starts through ``ip netns exec p-ctl``, which lays /etc/netns/p-ctl/hosts
            over /etc/hosts: the NLB's DNS name resolves there (and only there) to NLB_IP.
    p-rt    the VPC router (the .1 of every subnet, like AWS's), the internet gateway (1:1 NAT between
            each node's public and private address) and the API network load balancer (NLB_IP:6443
            DNAT'ed to the control planes, client IP preserved). From the controller it forwards only
            DNAT'ed traffic: the controller reaches the nodes through their public addresses only, and
            the nodes' security groups decide which ports.
    p-sw    the switch: one bridge per subnet.
    p-n<k>  one per instance: eth0 with its private IP, default route via the router, its security
            groups (as EC2 returns them, group pairs resolved to the members' addresses) as iptables.

What stands in for the parts of a node that cannot run here (said in the test too):
  * tcp/22: an acceptor instead of sshd (none on this machine). Ansible connects with the local
    connection through a per-node interpreter wrapper that first opens tcp/22 to the node's PUBLIC
    address from the controller (as SSH would) and only then runs Python inside the node's namespace;
  * tcp/6443 on control planes: a TLS relay to the API fake instead of kube-apiserver, with a
    certificate for the NLB's name and the control planes' addresses from the lab's CA;
  * admin.conf (``kubeadm_admin_conf_path``): what kubeadm init would have written, pointing at the
    NLB's name with the lab CA, on each control plane;
  * the nodes register with the API fake as kubelets would (Node objects, architecture amd64).
The nodes share the test machine's file system: nothing is written outside the lab's work directory
and /etc/netns/<p>-*/ (removed by stop()). Needs root. SiteLab is a substrate (tests/support/lifecycle.py):
the work directory is its own, made by start() and removed by stop().
"""

import base64
import contextlib
import ctypes
import fcntl
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

from tests.lab.netlab import cleanup, run, sg_to_iptables
from tests.support.lifecycle import Substrate

CTL_NET = "198.51.100.0/24"     # TEST-NET-2: the controller's network, outside the VPC
CTL_GW = "198.51.100.1"         # the router's leg there
CTL_IP = "198.51.100.10"        # the controller: admin_cidr = CTL_IP/32
NLB_IP = "203.0.113.80"         # TEST-NET-3: the API load balancer's address
# The Kubernetes package repository's place in the lab (kubeadm_repo_base_url): the router's leg on the
# controller network, port 9, where nothing listens. A node's request is refused there, inside the lab: no
# name to look up, nothing sent to a real address (the default, pkgs.k8s.io, would be looked up first).
PACKAGE_REPO_URL = "https://%s:9/core:/stable:" % CTL_GW
API_PORT = 6443
CLONE_NEWNET = 0x40000000

ACCEPTOR = ("import socket\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "s.bind(('0.0.0.0', 22)); s.listen(64)\nwhile True:\n    c, _ = s.accept(); c.close()\n")

RELAY = r'''"""TLS on :6443 (the kube-apiserver's place) relayed to the Kubernetes API fake over plain HTTP."""
import select, socket, ssl, sys, threading
cert, key, port, host, tport = sys.argv[1:6]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(port)))
srv.listen(64)


def handle(conn):
    try:
        conn.settimeout(10)
        tls = ctx.wrap_socket(conn, server_side=True)
        up = socket.create_connection((host, int(tport)), 5)
        tls.settimeout(None)
    except (OSError, ssl.SSLError):
        conn.close()
        return
    try:
        while True:
            ready = [tls] if tls.pending() else select.select([tls, up], [], [], 300)[0]
            if not ready:
                return
            for sock in ready:
                data = sock.recv(65536)
                if not data:
                    return
                (up if sock is tls else tls).sendall(data)
    except (OSError, ssl.SSLError):
        pass
    finally:
        tls.close()
        up.close()


while True:
    c, _ = srv.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
'''

WRAPPER = """#!/bin/sh
# The lab's stand-in for SSH to %(host)s: tcp/22 to its public address from where the controller is,
# then Python inside the node's namespace.
if ! %(python)s -c 'import socket, sys; socket.create_connection((sys.argv[1], 22), 3).close()' %(public)s 2>/dev/null; then
    echo "ssh: connect to host %(public)s port 22: Connection timed out (lab: the node's public address does not answer tcp/22 from the controller)" >&2
    exit 255
fi
exec ip netns exec %(ns)s %(python)s "$@"
"""

INVENTORY_SCRIPT = """#!%(python)s
# The lab's inventory source: connection settings for the instances the aws_ec2 source lists (see
# tests/lab/sitelab.py). Each parse (the first, and provision.yml's refresh_inventory) syncs the lab
# with moto: new instances get their namespace.
import sys
sys.path.insert(0, %(root)r)
from tests.lab.sitelab import inventory_main
inventory_main(%(state)r, sys.argv[1:])
"""


def _setns(fd):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "setns: %s" % os.strerror(err))


def host_name(inst):
    """The inventory name the shipped aws_ec2.yml gives an instance: <tag:Name>-<instance-id>."""
    name = next((t["Value"] for t in inst.get("Tags", []) if t["Key"] == "Name"), "")
    return "%s-%s" % (name, inst["InstanceId"]) if name else inst["InstanceId"]


class SiteLab(Substrate):
    """A substrate (tests/support/lifecycle.py): start() makes its private work directory (``work``) and the
    controller, router and switch; sync() adds the instances moto runs; stop() ends the stand-ins, deletes
    the lab's namespaces and /etc/netns/<prefix>-*/ and removes the work directory."""

    def __init__(self, cluster, prefix=None):
        if os.geteuid() != 0:
            raise RuntimeError("the site lab needs root (network namespaces, iptables)")
        super().__init__()
        self.cluster = cluster
        # the namespaces' prefix (<prefix>-ctl, ...), also the start of the work directory's random name
        self.prefix = prefix or "ks" + uuid.uuid4().hex[:4]

    @property
    def work(self):
        return self.workdir

    @property
    def state_path(self):
        return os.path.join(self.workdir, "sitelab.json")

    # -- naming / state ------------------------------------------------------------------------------
    @property
    def ctl(self):
        return "%s-ctl" % self.prefix

    @property
    def router(self):
        return "%s-rt" % self.prefix

    @property
    def switch(self):
        return "%s-sw" % self.prefix

    def _load(self):
        with open(self.state_path) as fh:
            return json.load(fh)

    def _save(self, state):
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(state, fh, indent=1)
        os.replace(tmp, self.state_path)

    def etc_netns(self, ns):
        return os.path.join("/etc/netns", ns)

    # -- lifecycle (tests/support/lifecycle.py: start() makes the work directory and stops on a failed start) --
    def _start(self):
        self._save({"prefix": self.prefix, "cluster": self.cluster, "work": self.work, "subnets": {}, "nodes": {},
                    "nlb": "", "certs": False, "api": ""})
        for ns in (self.ctl, self.router, self.switch):
            run(["ip", "netns", "add", ns])
            run(["ip", "link", "set", "lo", "up"], ns=ns)
        run(["ip", "link", "add", "%sc0" % self.prefix, "netns", self.ctl, "type", "veth", "peer", "name",
             "%sc1" % self.prefix, "netns", self.router])
        run(["ip", "link", "set", "%sc0" % self.prefix, "name", "eth0"], ns=self.ctl)
        run(["ip", "addr", "add", CTL_IP + "/24", "dev", "eth0"], ns=self.ctl)
        run(["ip", "link", "set", "eth0", "up"], ns=self.ctl)
        run(["ip", "route", "add", "default", "via", CTL_GW], ns=self.ctl)
        run(["ip", "link", "set", "%sc1" % self.prefix, "name", "ctl0"], ns=self.router)
        run(["ip", "addr", "add", CTL_GW + "/24", "dev", "ctl0"], ns=self.router)
        run(["ip", "link", "set", "ctl0", "up"], ns=self.router)
        run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], ns=self.router)
        os.makedirs(self.etc_netns(self.ctl), exist_ok=True)
        with open(os.path.join(self.etc_netns(self.ctl), "hosts"), "w") as fh:
            fh.write("127.0.0.1 localhost\n")
        # nothing to ask: a lookup of any other name fails at once instead of timing out
        with open(os.path.join(self.etc_netns(self.ctl), "resolv.conf"), "w") as fh:
            fh.write("nameserver 127.0.0.1\n")
        self._router_tables({"nodes": {}, "nlb": ""})

    def _stop(self):
        # the stand-ins lead their own sessions: end each one's group (ip netns pids does not list them
        # when the inventory script started them from the controller's mount namespace)
        try:
            with open(os.path.join(self.work, "pids")) as fh:
                pids = [int(line) for line in fh if line.strip()]
        except (OSError, TypeError):
            pids = []
        for pid in pids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        cleanup(self.prefix)
        for name in os.listdir("/etc/netns") if os.path.isdir("/etc/netns") else []:
            if name.startswith(self.prefix + "-"):
                shutil.rmtree(os.path.join("/etc/netns", name), ignore_errors=True)

    def namespaces(self):
        out = run(["ip", "netns", "list"], check=False).stdout
        return sorted(line.split()[0] for line in out.splitlines() if line.startswith(self.prefix + "-"))

    @contextlib.contextmanager
    def controller(self):
        """Run the calling thread (and what it starts) inside the controller's namespace."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open("/run/netns/%s" % self.ctl, os.O_RDONLY)
        try:
            _setns(target)
            yield self
        finally:
            try:
                _setns(own)
            finally:
                os.close(own)
                os.close(target)

    def controller_command(self, argv):
        """``argv`` run in the controller's namespace with its /etc/hosts (ip netns exec)."""
        return ["ip", "netns", "exec", self.ctl] + list(argv)

    def write_inventory_script(self, path, api_url):
        state = self._load()
        state["api"] = api_url
        self._save(state)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        with open(path, "w") as fh:
            fh.write(INVENTORY_SCRIPT % {"python": sys.executable, "root": root, "state": self.state_path})
        os.chmod(path, 0o755)
        return path

    # -- sync from EC2 -------------------------------------------------------------------------------
    def sync(self, ec2, elb):
        """Give every running instance of the cluster its namespace; (re)apply the security groups, the
        router's NAT and the load balancer. Returns {inventory name: host vars}."""
        with open(self.state_path + ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self._load()
            res = ec2.describe_instances(Filters=[
                {"Name": "tag:kubeadm_ec2/cluster", "Values": [self.cluster]},
                {"Name": "instance-state-name", "Values": ["running"]}])
            instances = sorted((i for r in res["Reservations"] for i in r["Instances"]), key=lambda i: i["InstanceId"])
            if not instances:
                return {}
            subnet_ids = sorted(set(i["SubnetId"] for i in instances))
            for sn in ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"]:
                if sn["SubnetId"] not in state["subnets"]:
                    state["subnets"][sn["SubnetId"]] = {"cidr": sn["CidrBlock"], "index": len(state["subnets"])}
                    self._add_subnet(state["subnets"][sn["SubnetId"]])
            for inst in instances:
                if inst["InstanceId"] not in state["nodes"]:
                    node = {"index": len(state["nodes"]) + 1, "host": host_name(inst), "id": inst["InstanceId"],
                            "ip": inst["PrivateIpAddress"], "public": inst.get("PublicIpAddress", ""),
                            "subnet": inst["SubnetId"],
                            "control_plane": any(t["Key"] == "kubeadm_ec2/role" and t["Value"] == "control-plane"
                                                 for t in inst.get("Tags", []))}
                    node["ns"] = "%s-n%d" % (self.prefix, node["index"])
                    node["dir"] = os.path.join(self.work, "nodes", node["host"])
                    state["nodes"][inst["InstanceId"]] = node
                    self._add_node(node, state["subnets"][inst["SubnetId"]])
            lbs = [lb for lb in elb.describe_load_balancers().get("LoadBalancers", [])
                   if lb["LoadBalancerName"] == "%s-api" % self.cluster]
            if lbs and not state["nlb"]:
                state["nlb"] = lbs[0]["DNSName"]
                with open(os.path.join(self.etc_netns(self.ctl), "hosts"), "a") as fh:
                    fh.write("%s %s\n" % (NLB_IP, state["nlb"]))
            self._security_groups(ec2, instances, state)
            self._router_tables(state)
            cps = [n for n in state["nodes"].values() if n["control_plane"]]
            if cps and not state["certs"]:
                self._certificates(state, cps)
                state["certs"] = True
                for node in cps:
                    self._start_api(node, state)
            self._register_nodes(state)
            self._save(state)
            return dict((n["host"], self.hostvars(n)) for n in state["nodes"].values())

    def hostvars(self, node):
        return {
            "ansible_connection": "local",
            "ansible_python_interpreter": os.path.join(node["dir"], "python"),
            "ansible_become": False,
            "lab_namespace": node["ns"],
            # kubeadm's files on this node, in the lab's directory (the nodes share the machine's file system)
            "kubeadm_admin_conf_path": os.path.join(node["dir"], "admin.conf"),
            "kubeadm_config_path": os.path.join(node["dir"], "kubeadm-config.yaml"),
            "kubeadm_join_config_path": os.path.join(node["dir"], "kubeadm-join.yaml"),
        }

    def _add_subnet(self, subnet):
        j, net = subnet["index"], ipaddress.ip_network(subnet["cidr"])
        gw = str(next(net.hosts()))
        run(["ip", "link", "add", "br%d" % j, "type", "bridge"], ns=self.switch)
        run(["ip", "link", "set", "br%d" % j, "up"], ns=self.switch)
        outer, inner = "%sr%d" % (self.prefix, j), "%sq%d" % (self.prefix, j)
        run(["ip", "link", "add", outer, "netns", self.switch, "type", "veth", "peer", "name", inner,
             "netns", self.router])
        run(["ip", "link", "set", outer, "master", "br%d" % j, "up"], ns=self.switch)
        run(["ip", "link", "set", inner, "name", "sub%d" % j], ns=self.router)
        run(["ip", "addr", "add", "%s/%d" % (gw, net.prefixlen), "dev", "sub%d" % j], ns=self.router)
        run(["ip", "link", "set", "sub%d" % j, "up"], ns=self.router)
        subnet["gateway"] = gw

    def _add_node(self, node, subnet):
        ns, i = node["ns"], node["index"]
        net = ipaddress.ip_network(subnet["cidr"])
        run(["ip", "netns", "add", ns])
        outer, inner = "%sv%d" % (self.prefix, i), "%si%d" % (self.prefix, i)
        run(["ip", "link", "add", outer, "netns", self.switch, "type", "veth", "peer", "name", inner, "netns", ns])
        run(["ip", "link", "set", outer, "master", "br%d" % subnet["index"], "up"], ns=self.switch)
        run(["ip", "link", "set", inner, "name", "eth0"], ns=ns)
        run(["ip", "addr", "add", "%s/%d" % (node["ip"], net.prefixlen), "dev", "eth0"], ns=ns)
        run(["ip", "link", "set", "eth0", "up"], ns=ns)
        run(["ip", "link", "set", "lo", "up"], ns=ns)
        run(["ip", "route", "add", "default", "via", subnet["gateway"]], ns=ns)
        # no resolver: the package repositories (and everything else outside) do not answer the nodes
        os.makedirs(self.etc_netns(ns), exist_ok=True)
        with open(os.path.join(self.etc_netns(ns), "resolv.conf"), "w") as fh:
            fh.write("nameserver 127.0.0.1\n")
        os.makedirs(node["dir"], exist_ok=True)
        with open(os.path.join(node["dir"], "python"), "w") as fh:
            fh.write(WRAPPER % {"host": node["host"], "public": node["public"] or "0.0.0.0", "ns": ns,
                                "python": os.path.realpath(sys.executable)})
        os.chmod(os.path.join(node["dir"], "python"), 0o755)
        self._spawn(ns, [sys.executable, "-c", ACCEPTOR], os.path.join(node["dir"], "sshd-standin.log"))

    def _spawn(self, ns, argv, log):
        """Start a stand-in in ``ns``, detached (the inventory script exits); its pid is kept for stop()."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(["ip", "netns", "exec", ns] + argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        with open(os.path.join(self.work, "pids"), "a") as fh:
            fh.write("%d\n" % proc.pid)

    def _security_groups(self, ec2, instances, state):
        group_ids = sorted(set(g["GroupId"] for i in instances for g in i.get("SecurityGroups", [])))
        groups = dict((g["GroupId"], g) for g in ec2.describe_security_groups(GroupIds=group_ids)["SecurityGroups"])
        members = {}
        for inst in instances:
            for g in inst.get("SecurityGroups", []):
                members.setdefault(g["GroupId"], []).append(inst["PrivateIpAddress"])
        for inst in instances:
            perms = []
            for g in inst.get("SecurityGroups", []):
                for perm in groups.get(g["GroupId"], {}).get("IpPermissions", []):
                    p = dict(perm)
                    ranges = [{"CidrIp": r["CidrIp"]} for r in perm.get("IpRanges", [])]
                    for pair in perm.get("UserIdGroupPairs", []):
                        ranges += [{"CidrIp": ip + "/32"} for ip in members.get(pair.get("GroupId"), [])]
                    p["IpRanges"], p["UserIdGroupPairs"] = ranges, []
                    perms.append(p)
            text = "\n".join(["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
                              ":KSG - [0:0]", "-A INPUT -i eth0 -j KSG", "-A FORWARD -i eth0 -j KSG"]
                             + sg_to_iptables(perms, []) + ["COMMIT", ""])
            run(["iptables-restore", "-w", "5"], ns=state["nodes"][inst["InstanceId"]]["ns"], input=text)

    def _router_tables(self, state):
        nat = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
               ":POSTROUTING ACCEPT [0:0]"]
        nodes = sorted(state["nodes"].values(), key=lambda n: n["index"])
        for node in nodes:
            if node["public"]:
                nat.append("-A PREROUTING -i ctl0 -d %s/32 -j DNAT --to-destination %s" % (node["public"], node["ip"]))
                nat.append("-A POSTROUTING -o ctl0 -s %s/32 -j SNAT --to-source %s" % (node["ip"], node["public"]))
        cps = [n for n in nodes if n["control_plane"]]
        if state["nlb"] and cps:
            for k, node in enumerate(cps):
                rest = len(cps) - k
                nth = "" if rest == 1 else "-m statistic --mode nth --every %d --packet 0 " % rest
                nat.append("-A PREROUTING -i ctl0 -d %s/32 -p tcp --dport %d %s-j DNAT --to-destination %s:%d"
                           % (NLB_IP, API_PORT, nth, node["ip"], API_PORT))
        filt = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
                "-A FORWARD -i ctl0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
                # from outside the VPC only what the internet gateway / load balancer translated
                "-A FORWARD -i ctl0 -m conntrack --ctstate DNAT -j ACCEPT",
                "-A FORWARD -i ctl0 -j DROP"]
        run(["iptables-restore", "-w", "5"], ns=self.router, input="\n".join(nat + ["COMMIT"] + filt + ["COMMIT", ""]))

    def _certificates(self, state, cps):
        d = os.path.join(self.work, "pki")
        os.makedirs(d, exist_ok=True)
        sans = ["DNS:%s" % state["nlb"]] if state["nlb"] else []
        sans += ["IP:%s" % n["ip"] for n in cps] + ["IP:127.0.0.1"]
        with open(os.path.join(d, "ext.cnf"), "w") as fh:
            fh.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                     "extendedKeyUsage=serverAuth\n" % ",".join(sans))
        for argv in (
                ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
                 "-subj", "/CN=kubeadm-ec2-lab-ca"],
                ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "api.key", "-out", "api.csr", "-subj",
                 "/CN=kube-apiserver"],
                ["x509", "-req", "-in", "api.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out",
                 "api.crt", "-days", "2", "-extfile", "ext.cnf"]):
            run(["openssl"] + argv, cwd=d)
        with open(os.path.join(d, "ca.crt"), "rb") as fh:
            ca = base64.b64encode(fh.read()).decode()
        server = "https://%s:%d" % (state["nlb"] or cps[0]["ip"], API_PORT)
        for node in cps:
            with open(os.path.join(node["dir"], "admin.conf"), "w") as fh:
                fh.write(ADMIN_CONF % {"cluster": self.cluster, "server": server, "ca": ca})
            os.chmod(os.path.join(node["dir"], "admin.conf"), 0o600)

    def _start_api(self, node, state):
        d = os.path.join(self.work, "pki")
        relay = os.path.join(self.work, "api_relay.py")
        if not os.path.exists(relay):
            with open(relay, "w") as fh:
                fh.write(RELAY)
        host, port = state["api"].split("//", 1)[1].rsplit(":", 1)
        self._spawn(node["ns"], [sys.executable, relay, os.path.join(d, "api.crt"), os.path.join(d, "api.key"),
                                 str(API_PORT), host, port], os.path.join(node["dir"], "apiserver-standin.log"))

    def _register_nodes(self, state):
        for node in state["nodes"].values():
            if node.get("registered") or not state["api"]:
                continue
            labels = {"kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux", "kubernetes.io/hostname": node["host"]}
            status = {"nodeInfo": {"architecture": "amd64", "operatingSystem": "linux"},
                      "addresses": [{"type": "InternalIP", "address": node["ip"]}],
                      "conditions": [{"type": "Ready", "status": "True"}]}
            body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node["host"], "labels": labels},
                    "status": status}
            req = urllib.request.Request(state["api"] + "/api/v1/nodes", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
            try:
                urllib.request.urlopen(req, timeout=5).close()
            except urllib.error.HTTPError as exc:
                if exc.code != 409:
                    raise
            node["registered"] = True


ADMIN_CONF = """apiVersion: v1
kind: Config
clusters:
- name: %(cluster)s
  cluster:
    server: %(server)s
    certificate-authority-data: %(ca)s
contexts:
- name: kubernetes-admin@%(cluster)s
  context: {cluster: %(cluster)s, user: kubernetes-admin}
current-context: kubernetes-admin@%(cluster)s
users:
- name: kubernetes-admin
  user: {token: lab-admin-token}
"""


def inventory_main(state_path, argv):
    """The inventory script: ``--list`` syncs the lab with moto and prints the nodes' connection vars."""
    if "--host" in argv:
        print("{}")
        return
    import boto3

    with open(state_path) as fh:
        state = json.load(fh)
    lab = SiteLab.__new__(SiteLab)  # the running lab's state, not a new lab: sync() starts nothing stop() would miss
    lab.workdir, lab.cluster, lab.prefix = state["work"], state["cluster"], state["prefix"]
    kw = dict(endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    hostvars = lab.sync(boto3.client("ec2", **kw), boto3.client("elbv2", **kw))
    print(json.dumps({"lab_nodes": {"hosts": sorted(hostvars)}, "_meta": {"hostvars": hostvars}}))
