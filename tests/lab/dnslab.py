"""Cluster DNS on top of the network lab: dnsmasq as CoreDNS pods behind a kube-proxy-like service VIP.

    DnsLab(nodes=3, sg=HEALTHY_SG, coredns_nodes=("node1", "node2"))

* a "CoreDNS pod" (NetLab.add_pod) on each of ``coredns_nodes`` runs dnsmasq on its pod IP: it serves
  kubernetes.default.svc.<domain> -> 10.96.0.1 and ``records`` (fqdn -> IP), answers NXDOMAIN for other
  names under the cluster domain and forwards everything else to the upstream;
* an "upstream" namespace ``<prefix>-up`` on the bridge (10.231.0.200) runs dnsmasq serving
  ``upstream_records`` (e.g. example.test); ``blackhole_upstream()`` makes it drop DNS silently;
* in every node namespace, nat OUTPUT + PREROUTING DNAT the service VIP (10.96.0.10:53 udp/tcp) to the
  CoreDNS pod IPs with ``-m statistic --mode random`` like kube-proxy, plus a route for 10.96.0.0/12;
* each node's resolv.conf (``/etc/netns/<ns>/resolv.conf``, which ``ip netns exec`` bind-mounts on
  /etc/resolv.conf) names the upstream, or ``node_resolver`` (e.g. 127.0.0.53 for the loop case).

Everything lives in namespaces named ``<prefix>-...`` and /etc/netns/<prefix>-*; stop() removes both.
``k8s_objects()`` gives the API objects (nodes, CoreDNS pods, kube-dns Service/EndpointSlice, coredns
ConfigMap) describing this lab as a cluster, for tests/fakes/k8s_api.py.
"""

import os
import shutil
import time

from tests.lab.netlab import HEALTHY_SG, NetLab, run

SERVICE_IP = "10.96.0.10"
SERVICE_CIDR = "10.96.0.0/12"
KUBERNETES_IP = "10.96.0.1"
UPSTREAM_HOST_INDEX = 199  # -> 10.231.0.200
DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"

LOOP_COREFILE = """.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
"""


class DnsLab:
    def __init__(self, nodes=3, sg=None, coredns_nodes=("node1", "node2"), records=None,
                 upstream_records=None, domain="cluster.local", node_resolver=None, prefix=None):
        self.lab = NetLab(nodes=nodes, sg=HEALTHY_SG if sg is None else sg, prefix=prefix)
        self.coredns_nodes = list(coredns_nodes)
        self.domain = domain
        self.records = dict(records or {})
        self.records.setdefault("kubernetes.default.svc.%s" % domain, KUBERNETES_IP)
        self.upstream_records = dict(upstream_records or {"example.test": "203.0.113.7"})
        self.node_resolver = node_resolver
        self.coredns = []  # pod dicts: node, name, ns, ip
        self.upstream_ns = None
        self.upstream_ip = None
        self.netns_dirs = []

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def prefix(self):
        return self.lab.prefix

    @property
    def nodes(self):
        return self.lab.nodes

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        if not os.path.exists(DNSMASQ):
            raise RuntimeError("the DNS lab needs dnsmasq (apt-get install dnsmasq-base)")
        try:
            self.lab.start()
            self._add_upstream()
            for node in self.coredns_nodes:
                pod = self.lab.add_pod(node, "coredns")
                self.coredns.append(pod)
                self._dnsmasq(pod["ns"], pod["ip"], self._coredns_args())
            for node in self.lab.nodes:
                self._service_vip(node)
                self._resolv_conf(node)
            for pod in self.coredns:
                self._wait_dns(pod["ns"], pod["ip"], "kubernetes.default.svc.%s" % self.domain)
            self._wait_dns(self.upstream_ns, self.upstream_ip, sorted(self.upstream_records)[0])
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        self.lab.stop()
        for path in self.netns_dirs:
            shutil.rmtree(path, ignore_errors=True)
        self.netns_dirs = []

    # -- pieces ---------------------------------------------------------------------------------
    def _add_upstream(self):
        lab = self.lab
        self.upstream_ns = "%s-up" % lab.prefix
        self.upstream_ip = str(list(lab.net.hosts())[UPSTREAM_HOST_INDEX])
        outer, inner = "%svup" % lab.prefix, "%siup" % lab.prefix
        ns = self.upstream_ns
        run(["ip", "netns", "add", ns])
        run(["ip", "link", "add", outer, "netns", lab.switch, "type", "veth", "peer", "name", inner, "netns", ns])
        run(["ip", "link", "set", outer, "master", "br0", "up"], ns=lab.switch)
        run(["ip", "link", "set", inner, "name", "eth0"], ns=ns)
        run(["ip", "addr", "add", "%s/%d" % (self.upstream_ip, lab.net.prefixlen), "dev", "eth0"], ns=ns)
        run(["ip", "link", "set", "eth0", "up"], ns=ns)
        run(["ip", "link", "set", "lo", "up"], ns=ns)
        for node in lab.nodes:  # replies to pods go back through their node
            run(["ip", "route", "add", node["pod_cidr"], "via", node["ip"]], ns=ns)
        args = ["--no-resolv", "--local=/test/"]
        for name, ip in sorted(self.upstream_records.items()):
            args.append("--host-record=%s,%s" % (name, ip))
        self._dnsmasq(ns, self.upstream_ip, args)

    def _coredns_args(self):
        args = ["--no-resolv", "--local=/%s/" % self.domain, "--server=%s" % self.upstream_ip]
        for name, ip in sorted(self.records.items()):
            args.append("--host-record=%s,%s" % (name, ip))
        return args

    def _dnsmasq(self, ns, ip, args):
        cmd = [DNSMASQ, "-k", "-C", "/dev/null", "--user=root", "--group=root", "--pid-file",
               "--no-hosts", "--bind-interfaces", "--listen-address=%s" % ip, "--port=53",
               "--cache-size=0", "--no-negcache", "--dns-forward-max=1000"] + list(args)
        return self.lab.spawn(ns, cmd)

    def _wait_dns(self, ns, ip, name, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            res = run(["dig", "+time=1", "+tries=1", "+short", "@%s" % ip, name], ns=ns, check=False)
            if res.returncode == 0 and res.stdout.strip():
                return
            if time.monotonic() > deadline:
                raise RuntimeError("dnsmasq on %s in %s did not answer %s: %s" % (ip, ns, name, res.stdout + res.stderr))
            time.sleep(0.1)

    def _service_vip(self, node):
        ns = node["ns"]
        run(["ip", "route", "add", SERVICE_CIDR, "dev", "eth0"], ns=ns)
        ips = [p["ip"] for p in self.coredns]
        lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
                 ":POSTROUTING ACCEPT [0:0]", ":KDNS - [0:0]"]
        for chain in ("OUTPUT", "PREROUTING"):
            for proto in ("udp", "tcp"):
                lines.append("-A %s -d %s/32 -p %s --dport 53 -j KDNS" % (chain, SERVICE_IP, proto))
        for i, ip in enumerate(ips):
            left = len(ips) - i
            stat = "-m statistic --mode random --probability %.5f " % (1.0 / left) if left > 1 else ""
            lines.append("-A KDNS %s-j DNAT --to-destination %s" % (stat, ip))
        lines += ["COMMIT", ""]
        run(["iptables-restore", "-w", "5"], ns=ns, input="\n".join(lines))

    def _resolv_conf(self, node):
        path = "/etc/netns/%s" % node["ns"]
        os.makedirs(path, exist_ok=True)
        self.netns_dirs.append(path)
        with open(os.path.join(path, "resolv.conf"), "w") as fh:
            fh.write("# dnslab %s\nnameserver %s\n" % (node["name"], self.node_resolver or self.upstream_ip))

    # -- scenarios -------------------------------------------------------------------------------
    def blackhole_upstream(self):
        """The upstream resolver drops every DNS packet (egress blocked / dead resolver)."""
        for proto in ("udp", "tcp"):
            run(["iptables", "-w", "5", "-I", "INPUT", "1", "-p", proto, "--dport", "53", "-j", "DROP"],
                ns=self.upstream_ns)

    def endpoints(self):
        return [{"ip": p["ip"], "node": p["node"]} for p in self.coredns]

    def inventory(self, **kw):
        return self.lab.inventory(**kw)

    def write_inventory(self, path, **kw):
        return self.lab.write_inventory(path, **kw)

    # -- the same lab as Kubernetes API objects ---------------------------------------------------
    def k8s_objects(self, corefile=LOOP_COREFILE, coredns_state="ready"):
        """Nodes, namespaces, CoreDNS pods, kube-dns Service/EndpointSlice and the coredns ConfigMap.

        coredns_state: "ready" or "crashloop" (loop plugin exit, no ready endpoints)."""
        objs = [{"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": n, "labels": {"kubernetes.io/metadata.name": n}}}
                for n in ("default", "kube-system")]
        for node in self.lab.nodes:
            objs.append({"apiVersion": "v1", "kind": "Node", "metadata": {
                "name": node["name"], "labels": {"kubernetes.io/arch": "amd64", "kubernetes.io/hostname": node["name"]}},
                "spec": {"podCIDR": node["pod_cidr"]},
                "status": {"addresses": [{"type": "InternalIP", "address": node["ip"]}],
                           "conditions": [{"type": "Ready", "status": "True"}],
                           "nodeInfo": {"architecture": "amd64"}}})
        labels = {"k8s-app": "kube-dns", "pod-template-hash": "7db6d8ff4d"}
        endpoints = []
        for i, pod in enumerate(self.coredns):
            name = "coredns-7db6d8ff4d-x%dk2p" % i
            ready = coredns_state == "ready"
            cstat = {"name": "coredns", "image": "registry.k8s.io/coredns/coredns:v1.11.3", "ready": ready,
                     "restartCount": 0 if ready else 7, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}
            if not ready:
                cstat["state"] = {"waiting": {"reason": "CrashLoopBackOff",
                                              "message": "back-off 5m0s restarting failed container=coredns"}}
                cstat["lastState"] = {"terminated": {
                    "exitCode": 1, "reason": "Error",
                    "message": "[FATAL] plugin/loop: Loop (127.0.0.1:41279 -> :53) detected for zone \".\", see "
                               "https://coredns.io/plugins/loop#troubleshooting. Query: \"HINFO 4547991504243258144.3688648895315093531.\""}}
            objs.append({"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": name, "namespace": "kube-system", "labels": dict(labels)},
                "spec": {"nodeName": pod["node"], "containers": [{"name": "coredns", "image": cstat["image"], "ports": [
                    {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                    {"name": "metrics", "containerPort": 9153, "protocol": "TCP"}]}]},
                "status": {"phase": "Running", "podIP": pod["ip"],
                           "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                           "containerStatuses": [cstat]}})
            endpoints.append({"addresses": [pod["ip"]], "conditions": {"ready": ready, "serving": ready},
                              "nodeName": pod["node"],
                              "targetRef": {"kind": "Pod", "name": name, "namespace": "kube-system"}})
        objs.append({"apiVersion": "v1", "kind": "Service", "metadata": {
            "name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
            "spec": {"clusterIP": SERVICE_IP, "selector": {"k8s-app": "kube-dns"}, "type": "ClusterIP", "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]}})
        objs.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {
            "name": "kube-dns-x1y2z", "namespace": "kube-system",
            "labels": {"kubernetes.io/service-name": "kube-dns"}},
            "addressType": "IPv4", "endpoints": [e for e in endpoints if e["conditions"]["ready"]],
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]})
        objs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": "kube-system"},
                     "data": {"Corefile": corefile}})
        return objs


# -- helpers shared by the DNS integration tests and the benchmark -------------------------------------
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def probe_plan(pod):
    """[(name, kind)] a dns_check probe pod resolves (read back from its command)."""
    script = pod["spec"]["containers"][0]["command"][-1]
    # "probe <index> <name> <kind> &": the lookups run at the same time, numbered to keep the plan's order
    return [tuple(line.split()[2:4]) for line in script.splitlines() if line.startswith("probe ")]


def terminate_pod(pod, message, exit_code=0, reason="Completed"):
    """Set a pod's status as kubelet would after its only container exited."""
    pod["status"] = {
        "phase": "Succeeded" if exit_code == 0 else "Failed",
        "containerStatuses": [{"name": "probe", "image": pod["spec"]["containers"][0]["image"], "ready": False,
                               "restartCount": 0, "state": {"terminated": {
                                   "exitCode": exit_code, "reason": reason if exit_code == 0 else "Error",
                                   "message": message}}}],
    }


def probe_message(results):
    """A dns_check probe termination message from [(name, kind, status, answer)]."""
    return "dnsprobe/1\n" + "".join("%s %s %s %s\n" % (n, k, s, a or "-") for n, k, s, a in results)


class LabKubelet:
    """An on_create hook for pods that runs a probe pod's own command (dns_check, paths) for real, in a background
    thread, from its node's namespace with a pod's view of DNS (/etc/resolv.conf -> the service VIP,
    bind-mounted in the private mount namespace of ``ip netns exec``), then terminates the pod with what
    the command wrote to its termination-log (a temp file here). The command runs with busybox's nslookup and
    timeout, as in the default probe image (busybox 1.36), where the machine has busybox."""

    def __init__(self, dnslab, timeout=2, schedule=None):
        self.dnslab = dnslab
        self.timeout = timeout
        self.threads = []
        # pods created without spec.nodeName (the path probe pods) get one, as the scheduler would:
        # ``schedule(pod)`` -> node name, by default the lab's nodes in turn
        self.schedule = schedule or self._next_node
        self._scheduled = 0

    def _next_node(self, _pod):
        nodes = self.dnslab.lab.nodes
        self._scheduled += 1
        return nodes[(self._scheduled - 1) % len(nodes)]["name"]

    def __call__(self, pod, cluster):
        import threading

        spec = pod.setdefault("spec", {})
        if not spec.get("nodeName"):
            spec["nodeName"] = self.schedule(pod)
        pod["status"] = {"phase": "Pending"}
        thread = threading.Thread(target=self._run, args=(pod, cluster), daemon=True)
        self.threads.append(thread)
        thread.start()

    def _run(self, pod, cluster):
        exit_code, message = self.run_script(pod["spec"]["nodeName"], pod["spec"]["containers"][0]["command"][-1])
        with cluster.lock:
            terminate_pod(pod, message, exit_code)

    def run_script(self, node_name, script):
        """Run a pod's ``sh -c`` script from ``node_name``'s namespace as this kubelet runs it; returns (exit code,
        termination message: what the script wrote to /dev/termination-log, else its last output)."""
        import subprocess
        import tempfile

        ns = self.dnslab.lab.node(node_name)["ns"]
        tmp = tempfile.mkdtemp(prefix="%s-kubelet-" % self.dnslab.prefix)
        try:
            resolv = os.path.join(tmp, "resolv.conf")
            with open(resolv, "w") as fh:
                fh.write("search default.svc.%s svc.%s %s\nnameserver %s\noptions ndots:5\n"
                         % (self.dnslab.domain, self.dnslab.domain, self.dnslab.domain, SERVICE_IP))
            # the probe image's tools: busybox's nslookup and timeout (their options and retry timing are
            # busybox's own), and its nc where the machine has none (the path probe uses it)
            bindir = os.path.join(tmp, "bin")
            os.makedirs(bindir)
            busybox = shutil.which("busybox")
            if busybox:
                for tool in ("nslookup", "timeout") + (() if shutil.which("nc") else ("nc",)):
                    os.symlink(busybox, os.path.join(bindir, tool))
            log = os.path.join(tmp, "termination-log")
            script = script.replace("m=/dev/termination-log", "m=%s" % log)
            proc = subprocess.run(["ip", "netns", "exec", ns, "sh", "-c",
                                   'mount --bind "$1" /etc/resolv.conf && exec sh -c "$2"', "sh", resolv, script],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
                                  check=False, env=dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", "")))
            message = ""
            if os.path.exists(log):
                with open(log) as fh:
                    message = fh.read()
            if not message:  # FallbackToLogsOnError
                message = proc.stdout[-2048:]
            return proc.returncode, message
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def join(self):
        for t in self.threads:
            t.join(timeout=60)


def task_results(report, task_name):
    """{host: result} of the task called ``task_name`` in an ansible.posix.json callback report
    (the last run of it wins)."""
    out = {}
    for play in report.get("plays") or []:
        for task in play.get("tasks") or []:
            name = task.get("task", {}).get("name") or ""
            if name == task_name or name.endswith(" : " + task_name):
                out.update(task.get("hosts") or {})
    return out


def run_playbook(playbook, inventory, extra_vars=None, timeout=300, python=None,
                 result_task="Analyse cluster DNS", args=()):
    """Run ansible-playbook from the repo root with the JSON callback; return (rc, the result of
    ``result_task`` on its first host, wall seconds, output text, full JSON report)."""
    import json
    import subprocess
    import sys
    import tempfile

    tmp = tempfile.mkdtemp(prefix="kdns-")
    try:
        if not isinstance(inventory, str):
            inv = os.path.join(tmp, "inventory.json")
            with open(inv, "w") as fh:
                json.dump(inventory, fh)
            inventory = inv
        bindir = os.path.dirname(python or sys.executable)
        env = dict(os.environ)
        env.update({"ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"), "ANSIBLE_FORKS": "20",
                    "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_NOCOLOR": "1",
                    "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
                    "PATH": bindir + os.pathsep + env.get("PATH", "")})
        start = time.time()
        proc = subprocess.run([os.path.join(bindir, "ansible-playbook"), "-i", inventory,
                               os.path.join(ROOT, "tests", "integration", "playbooks", playbook),
                               "-e", json.dumps(extra_vars or {})] + list(args),
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=timeout, check=False)
        wall = time.time() - start
        try:
            report = json.loads(proc.stdout)
        except ValueError:
            report = {}
        results = task_results(report, result_task) if result_task else {}
        result = next(iter(results.values()), {})
        text = proc.stdout[-20000:] + proc.stderr[-5000:]
        return proc.returncode, result, wall, text, report
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def localhost_inventory(python=None):
    import sys

    return {"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                            "ansible_python_interpreter": python or sys.executable}}}}
