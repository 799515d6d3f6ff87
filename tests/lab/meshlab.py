"""The pod mesh lab: probe pods as network namespaces behind the lab nodes, Calico IPIP between nodes.

    MeshLab(nodes=3, sg=SEED_SG, coredns_nodes=("node1",))

On top of the DNS lab (tests/lab/dnslab.py: nodes on a bridge, the SG stand-in, CoreDNS pods behind
the kube-dns ClusterIP with kube-proxy-like DNAT):

* Calico IPIP, as it behaves on EC2:
  - routes: BIRD peers over tcp/179; a node has a route to another node's pod CIDR through ``tunl0``
    only when a TCP connect from it to that node's port 179 goes through the security group (each node
    runs a listener on 179, and the connect is really made, through the SG chain, at start and again by
    ``apply_sg()``, as BIRD re-peers once the group lets it);
  - without that route the pod packets leave unencapsulated towards the VPC, as on a node whose default
    route they take: the lab sends them to the peer node, whose raw PREROUTING drops every packet that
    arrives on eth0 for a pod address (EC2's source/destination check: an instance receives no packet
    addressed to another IP). They vanish, as they do on EC2: the probes time out;
  - data plane: that route points at ``tunl0``, a TUN device served by tests/lab/ipip_tunnel.py (this
    kernel has no ipip driver): pod packets travel between nodes inside IP protocol 4 packets from node
    IP to node IP, which the SG stand-in filters on the receiving node like any other packet;
  - natOutgoing: pod traffic leaving for an address outside the pool is masqueraded to the node IP.
* an "external" namespace (``<prefix>-ext``, EXTERNAL_IP, outside the node, pod and service ranges) on
  the bridge with a TCP listener on 443; ``blackhole_external()`` makes it drop everything.
* ``kubelet(others=None)``: an API-fake hook set (on_create / on_patch / on_delete for pods) that runs each mesh
  probe pod's real command in a new pod namespace behind its node (NetLab.add_pod), as the kubelet
  would: the pod gets its IP in status.podIP and env POD_IP, the downwardAPI volume is a directory the
  hook rewrites from the pod's annotations on every PATCH (the kubelet refreshes such volumes), the
  startupProbe and readinessProbe (file tests) are polled every 0.2 s and set ``started`` and the Ready
  condition, and the exit sets
  the termination message. The command runs with busybox applets (Debian's build), except the two
  Debian's busybox leaves out, ``udpsvd`` and UDP ``nc -u``: stand-ins with the same command line take
  their place (tests/lab/mesh_applets.py for udpsvd, one Python process per pod; tests/lab/mesh_udp_nc.sh,
  bash's /dev/udp, for each ``nc -u``, cheap enough for dozens at once on a loaded machine).
  Other pods (the DNS probe pods, the path probe pods) go to ``others``, e.g. the DNS lab's LabKubelet,
  so one lab serves every probe pod validate.yml starts (``make demo``).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from tests.lab.dnslab import DnsLab
from tests.lab.netlab import run

HERE = os.path.dirname(os.path.abspath(__file__))
EXTERNAL_IP = "10.233.0.10"
EXTERNAL_NET = "10.233.0.0/24"
POD_POOL = "192.168.0.0/16"
BUSYBOX = shutil.which("busybox") or "/usr/bin/busybox"
IP = shutil.which("ip") or "/usr/sbin/ip"
BASH = shutil.which("bash") or "/bin/bash"  # the pods' PATH holds busybox applets only
APPLETS = ("sh", "nc", "timeout", "sleep", "grep", "cat", "echo", "printf", "touch", "test", "[", "true")


class MeshLab(DnsLab):
    def __init__(self, nodes=3, sg=None, coredns_nodes=("node1",), prefix=None, **kw):
        """``kw``: DnsLab's other arguments (records, upstream_records, ...)."""
        super(MeshLab, self).__init__(nodes=nodes, sg=sg, coredns_nodes=coredns_nodes, prefix=prefix, **kw)
        self.ext_ns = None
        self.routes = {}  # node -> [peer nodes it has a pod route to]
        self.bin_dir = None

    def start(self):
        if not os.path.exists(BUSYBOX):
            raise RuntimeError("the mesh lab needs busybox (apt-get install busybox)")
        super(MeshLab, self).start()
        try:
            self._bin_dir()
            self._add_external()
            for node in self.nodes:
                self._node(node)
            self._wait_tunnels()
            self._bgp_routes()
        except BaseException:
            self.stop()
            raise
        return self

    def apply_sg(self, permissions):
        """Rewrite the SG chain on every node and let BGP decide the pod routes again (as BIRD re-peers)."""
        self.lab.apply_sg(permissions)
        self._bgp_routes()

    def stop(self):
        super(MeshLab, self).stop()
        if self.bin_dir:
            shutil.rmtree(self.bin_dir, ignore_errors=True)
            self.bin_dir = None

    # -- pieces -----------------------------------------------------------------------------------
    def _bin_dir(self):
        self.bin_dir = tempfile.mkdtemp(prefix="%s-bin-" % self.prefix)
        os.chmod(self.bin_dir, 0o755)
        for applet in APPLETS:
            os.symlink(BUSYBOX, os.path.join(self.bin_dir, applet))
        os.remove(os.path.join(self.bin_dir, "nc"))
        helper = "%s -S -I %s" % (sys.executable, os.path.join(HERE, "mesh_applets.py"))
        for name, text in (("nc", 'case " $* " in *" -u "*) exec %s %s "$@";; esac\nexec %s nc "$@"\n'
                            % (BASH, os.path.join(HERE, "mesh_udp_nc.sh"), BUSYBOX)),
                           ("udpsvd", 'exec %s udpsvd "$@"\n' % helper)):
            path = os.path.join(self.bin_dir, name)
            with open(path, "w") as fh:
                fh.write("#!%s sh\n%s" % (BUSYBOX, text))
            os.chmod(path, 0o755)

    def _add_external(self):
        lab = self.lab
        self.ext_ns = ns = "%s-ext" % lab.prefix
        outer, inner = "%svex" % lab.prefix, "%siex" % lab.prefix
        run(["ip", "netns", "add", ns])
        run(["ip", "link", "add", outer, "netns", lab.switch, "type", "veth", "peer", "name", inner, "netns", ns])
        run(["ip", "link", "set", outer, "master", "br0", "up"], ns=lab.switch)
        run(["ip", "link", "set", inner, "name", "eth0"], ns=ns)
        run(["ip", "addr", "add", "%s/24" % EXTERNAL_IP, "dev", "eth0"], ns=ns)
        run(["ip", "link", "set", "eth0", "up"], ns=ns)
        run(["ip", "link", "set", "lo", "up"], ns=ns)
        run(["ip", "route", "add", str(lab.net), "dev", "eth0"], ns=ns)  # the nodes, on the same wire
        lab.spawn(ns, [BUSYBOX, "nc", "-ll", "-p", "443", "-e", "true"])

    def _node(self, node):
        ns = node["ns"]
        peers = ["%s=%s" % (p["pod_cidr"], p["ip"]) for p in self.nodes if p is not node]
        self.lab.spawn(ns, [sys.executable, os.path.join(HERE, "ipip_tunnel.py"), "tunl0"] + peers)
        self.lab.spawn(ns, [BUSYBOX, "nc", "-ll", "-p", "179", "-e", "true"])  # BIRD's port
        run(["ip", "route", "add", EXTERNAL_NET, "dev", "eth0"], ns=ns)
        # NetLab's direct routes to the peers' pod CIDRs stay as the way out without BGP; the peer drops
        # what comes that way (the source/destination check), tunnelled packets arrive on tunl0
        run(["iptables", "-w", "5", "-t", "raw", "-A", "PREROUTING", "-i", "eth0", "-d", POD_POOL, "-j", "DROP"],
            ns=ns)
        run(["iptables", "-w", "5", "-t", "nat", "-A", "POSTROUTING", "-s", POD_POOL, "!", "-d", POD_POOL,
             "-o", "eth0", "-j", "MASQUERADE"], ns=ns)

    def _wait_tunnels(self, timeout=10):
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            while run(["ip", "link", "show", "tunl0"], ns=node["ns"], check=False).returncode != 0:
                if time.monotonic() > deadline:
                    raise RuntimeError("tunl0 did not appear in %s" % node["ns"])
                time.sleep(0.05)
            run(["ip", "link", "set", "tunl0", "mtu", "1480", "up"], ns=node["ns"])
            for key in ("all", "default", "tunl0"):
                run(["sysctl", "-qw", "net.ipv4.conf.%s.rp_filter=0" % key], ns=node["ns"])

    def _bgp_routes(self):
        """A route to each peer's pod CIDR via tunl0 where tcp/179 from this node reaches the peer, else the
        unencapsulated way out (towards the peer, which drops it)."""
        self.routes = {}
        probes = []
        for node in self.nodes:
            for peer in self.nodes:
                if peer is not node:
                    cmd = ["ip", "netns", "exec", node["ns"], BUSYBOX, "timeout", "3", BUSYBOX, "nc", "-w", "1",
                           peer["ip"], "179", "-e", "true"]
                    probes.append((node, peer, subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                                                stderr=subprocess.DEVNULL)))
        batches = {}
        for node, peer, proc in probes:
            if proc.wait(timeout=10) == 0:
                batches.setdefault(node["ns"], []).append("route replace %s dev tunl0" % peer["pod_cidr"])
                self.routes.setdefault(node["name"], []).append(peer["name"])
            else:
                batches.setdefault(node["ns"], []).append("route replace %s via %s" % (peer["pod_cidr"], peer["ip"]))
        for ns, batch in batches.items():
            run(["ip", "-batch", "-"], ns=ns, input="\n".join(batch) + "\n")

    # -- scenarios ----------------------------------------------------------------------------------
    def blackhole_external(self):
        run(["iptables", "-w", "5", "-I", "INPUT", "1", "-j", "DROP"], ns=self.ext_ns)

    @property
    def external(self):
        return "%s:443" % EXTERNAL_IP

    def kubelet(self, others=None):
        return MeshKubelet(self, others=others)


def is_mesh_probe(pod):
    """A pod mesh_probe started (its app.kubernetes.io/name label is analysis/mesh.py's NAME_LABEL)."""
    return ((pod.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/name") == "mesh-probe"


class MeshKubelet:
    """The API-fake hooks that run mesh probe pods in pod namespaces (see the module docstring). ``others``:
    the on_create hook (e.g. LabKubelet) for every pod that is not a mesh probe pod; without it this
    kubelet runs every pod as a mesh probe pod."""

    def __init__(self, meshlab, others=None):
        self.mesh = meshlab
        self.others = others
        self.pods = {}  # name -> {ns, dir, proc}
        self.threads = []
        self.count = 0
        self.lock = threading.Lock()

    def install(self, cluster):
        cluster.on_create["pods"] = self.on_create
        cluster.on_patch["pods"] = self.on_patch
        cluster.on_delete["pods"] = self.on_delete

    def on_create(self, pod, cluster):
        if self.others is not None and not is_mesh_probe(pod):
            self.others(pod, cluster)
            return
        pod["status"] = {"phase": "Pending", "containerStatuses": [{"name": "probe", "ready": False, "state": {
            "waiting": {"reason": "ContainerCreating"}}}]}
        thread = threading.Thread(target=self._run, args=(pod, cluster), daemon=True)
        self.threads.append(thread)
        thread.start()

    def _downward(self, pod, path):
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        for vol in pod["spec"].get("volumes") or []:
            for item in (vol.get("downwardAPI") or {}).get("items") or []:
                field = item["fieldRef"]["fieldPath"]
                key = field[len("metadata.annotations['"):-2] if field.startswith("metadata.annotations[") else None
                tmp = os.path.join(path, ".%s.tmp" % item["path"])
                with open(tmp, "w") as fh:
                    fh.write(annotations.get(key, "") if key else "")
                os.rename(tmp, os.path.join(path, item["path"]))  # atomic, as the kubelet's symlink swap

    def _run(self, pod, cluster):
        try:
            self._start(pod, cluster)
        except Exception as exc:  # as a kubelet reports a sandbox it could not create
            with cluster.lock:
                pod["status"] = {"phase": "Failed", "containerStatuses": [{"name": "probe", "ready": False, "state": {
                    "terminated": {"exitCode": 128, "reason": "StartError", "message": "lab kubelet: %s" % exc}}}]}

    def _start(self, pod, cluster):
        name = pod["metadata"]["name"]
        node = pod["spec"]["nodeName"]
        with self.lock:
            self.count += 1
            index = self.count
        lab_pod = self.mesh.lab.add_pod(node, "mp%d" % index, host_index=20 + index)
        tmp = tempfile.mkdtemp(prefix="%s-pod-" % self.mesh.prefix)
        down, work = os.path.join(tmp, "etc-mesh"), os.path.join(tmp, "work")
        os.makedirs(down)
        os.makedirs(work)
        log = os.path.join(tmp, "termination-log")
        with cluster.lock:
            self._downward(pod, down)
        script = pod["spec"]["containers"][0]["command"][-1]
        script = script.replace("d=/etc/mesh\n", "d=%s\n" % down, 1).replace("w=/tmp\n", "w=%s\n" % work, 1)
        script = script.replace("m=/dev/termination-log\n", "m=%s\n" % log, 1)
        env = {"PATH": self.mesh.bin_dir, "POD_IP": lab_pod["ip"]}
        proc = subprocess.Popen([IP, "netns", "exec", lab_pod["ns"], os.path.join(self.mesh.bin_dir, "sh"), "-c",
                                 script], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.pods[name] = {"ns": lab_pod["ns"], "dir": down, "proc": proc, "tmp": tmp}
        with cluster.lock:
            pod["status"] = {"phase": "Running", "podIP": lab_pod["ip"], "hostIP": self.mesh.lab.node(node)["ip"],
                             "conditions": [{"type": "Ready", "status": "False"}],
                             "containerStatuses": [{"name": "probe", "ready": False, "started": False, "state": {
                                 "running": {"startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}}]}
        done, listening = os.path.join(work, "mesh-done"), os.path.join(work, "mesh-listening")
        while proc.poll() is None:  # startupProbe: test -f $w/mesh-listening; readinessProbe: test -f $w/mesh-done
            if os.path.exists(listening) and not pod["status"]["containerStatuses"][0]["started"]:
                with cluster.lock:
                    pod["status"]["containerStatuses"][0]["started"] = True
            if os.path.exists(done) and pod["status"]["conditions"][0]["status"] != "True":
                with cluster.lock:
                    pod["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
                    pod["status"]["containerStatuses"][0]["ready"] = True
            time.sleep(0.2)
        out = proc.stdout.read()
        message = open(log).read() if os.path.exists(log) else ""
        with cluster.lock:
            code = proc.returncode
            pod["status"] = {"phase": "Succeeded" if code == 0 else "Failed", "podIP": lab_pod["ip"],
                             "conditions": [{"type": "Ready", "status": "False"}],
                             "containerStatuses": [{"name": "probe", "ready": False, "state": {"terminated": {
                                 "exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                 "message": message or out[-2048:]}}}]}

    def on_patch(self, pod, patch, cluster):
        rec = self.pods.get(pod["metadata"]["name"])
        if rec and (patch.get("metadata") or {}).get("annotations") is not None:
            self._downward(pod, rec["dir"])

    def on_delete(self, pod, cluster):
        rec = self.pods.pop(pod["metadata"]["name"], None)
        if not rec:
            return
        if rec["proc"].poll() is None:
            rec["proc"].kill()
            rec["proc"].wait(timeout=10)
        run(["ip", "netns", "pids", rec["ns"]], check=False)
        for pid in run(["ip", "netns", "pids", rec["ns"]], check=False).stdout.split():
            try:
                os.kill(int(pid), 9)
            except (OSError, ValueError):
                pass
        run(["ip", "netns", "delete", rec["ns"]], check=False)
        shutil.rmtree(rec["tmp"], ignore_errors=True)

    def join(self):
        for t in self.threads:
            t.join(timeout=60)
        if self.others is not None and hasattr(self.others, "join"):
            self.others.join()
