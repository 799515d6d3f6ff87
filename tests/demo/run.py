"""`make demo`: the seeds' story on this machine, with no AWS account and no internet.

1. provision with site.yml (provision part) against moto's EC2 server, with the seeds' security
   group: SSH/6443 from the admin CIDR, NodePorts and UDP 4789 from anywhere, no self-reference;
2. build the local lab from that security group (tests/lab/meshlab.py: network namespaces as nodes,
   iptables as the SG, Calico IPIP with its BGP-gated pod routes, dnsmasq as CoreDNS behind the service
   IP, an external host; Debian's registry holding marketplace:v1 for arm64 only; the Kubernetes API
   fake describing the cluster, with one lab kubelet for the DNS, path and mesh probe pods) and run
   playbooks/validate.yml: it must fail with SG_NO_SELF_REF (sg_audit), NODE_PORT_BLOCKED
   (node_reachability), DNS_POD_UNREACHABLE (dns), IMAGE_ARCH_MISMATCH (image_arch), and in paths
   PATH_BLOCKED (the seeds' app, marketplace calling recommendations:50051, probed from a pod in its
   namespace with its labels) and the live pod mesh's cross-node cells (POD_PATH_BLOCKED, SERVICE_PATH_BLOCKED;
   the same-node cells and egress pass), each with its fix, all explained by two root causes;
3. apply the fixes the way a user would (ec2_network_sg_self_reference=true through site.yml, a
   multi-arch image pushed under the same tag), rebuild the lab's SG from EC2 (BGP then peers and the
   pod routes appear) and re-run validate: it must pass, every mesh cell included.

Exit status 0 only when every step behaves as described. Everything started is stopped and every
namespace and temp file removed, also on failure or Ctrl-C.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.integration.moto_harness import MotoServer  # noqa: E402
from tests.integration.registry_harness import Registry  # noqa: E402
from tests.fakes.k8s_api import FakeKubeAPI  # noqa: E402
from tests.lab.applab import LabService  # noqa: E402
from tests.lab.dnslab import LabKubelet  # noqa: E402
from tests.lab.meshlab import MeshLab  # noqa: E402
from tests.lab.netlab import SELF  # noqa: E402

CLUSTER = "seeds"
ADMIN_CIDR = "203.0.113.0/24"
VPC_CIDR = "10.231.0.0/16"
SUBNET_CIDR = "10.231.0.0/24"  # the lab's node subnet: the SG's CIDR rules mean the same thing in both
APP_NAMESPACE = "shop"
EXPECTED_BROKEN = {
    "sg_audit": {"SG_NO_SELF_REF"},
    "node_reachability": {"NODE_PORT_BLOCKED"},
    "dns": {"DNS_POD_UNREACHABLE"},
    "image_arch": {"IMAGE_ARCH_MISMATCH"},
    # the app's path, and the live pod mesh: cross-node cells, and the Service from node3 (no CoreDNS pod there)
    "paths": {"PATH_BLOCKED", "POD_PATH_BLOCKED", "SERVICE_PATH_BLOCKED"},
}
EXPECTED_CAUSES = ["SG_NO_SELF_REF", "IMAGE_ARCH_MISMATCH"]
NODES = 3
MESH_PODS_PER_NODE = 2  # two probe pods per node: same-node cells too
# The seeds' app: marketplace calls recommendations:50051 (gRPC), which runs on node3.
RECOMMENDATIONS = dict(name="recommendations", namespace="shop", cluster_ip="10.96.80.12", port=50051, node="node3")
APP_PATHS = [{"from": {"namespace": "shop", "selector": {"app": "marketplace"}}, "to": "recommendations:50051",
              "protocol": "tcp"}]
HEALTHY_COREFILE = """.:53 {
    errors
    health
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
    }
    forward . %s
    cache 30
    loop
    reload
    loadbalance
}
"""


class Out:
    """Progress lines and tables; colours only on a terminal."""

    def __init__(self, color):
        self.color = color
        self.t0 = time.monotonic()

    def c(self, text, code):
        return "\033[%sm%s\033[0m" % (code, text) if self.color else text

    def step(self, n, total, text):
        sys.stdout.write("%s %s ... " % (self.c("[%d/%d]" % (n, total), "1;34"), text))
        sys.stdout.flush()
        return time.monotonic()

    def done(self, started, note=""):
        print("%s (%.1fs)%s" % (self.c("done", "32"), time.monotonic() - started, " " + note if note else ""))

    def fail(self, text):
        print(self.c("FAILED", "1;31"))
        print(self.c(text, "31"))

    def table(self, headers, rows, widths):
        def clip(text, width):
            text = " ".join(str(text).split())
            return text if len(text) <= width else text[: width - 1] + "~"

        line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
        print("    " + self.c(line, "1"))
        for row in rows:
            print("    " + "  ".join(clip(v, w).ljust(w) for v, w in zip(row, widths)))


def status_word(out, status):
    return {"passed": out.c("PASS", "1;32"), "failed": out.c("FAIL", "1;31")}.get(status, out.c(status.upper(), "33"))


def print_report(out, title, report, full=None):
    print()
    print(out.c("== %s" % title, "1"))
    if full:
        print("  %s" % out.c(full.get("headline", ""), "1"))
        for cause in full.get("root_causes") or []:
            print("  %s %s" % (out.c("cause:", "1;33"), cause.get("title", cause.get("id"))))
    for check in report:
        res = report.get(check, {})
        findings = res.get("findings", [])
        errs = [f for f in findings if f.get("severity") == "error"]
        print("  %s %-18s %s" % (status_word(out, res.get("status", "missing")), check,
                                 "%d finding(s)" % len(errs) if errs else (res.get("msg", "").splitlines() or [""])[0]))
        if errs:
            out.table(["ID", "WHERE", "OBSERVED"],
                      [(f["id"], f.get("where", ""), f["observed"]) for f in errs[:8]], [24, 36, 70])
            fixes = []
            for f in errs:
                if f["remediation"] not in fixes:
                    fixes.append(f["remediation"])
            for fix in fixes[:3]:
                print("    %s %s" % (out.c("fix:", "1;33"), " ".join(fix.split())[:220]))
            if len(errs) > 8:
                print("    ... and %d more (full report: JSON file)" % (len(errs) - 8))


def lab_sg_from_ec2(ec2, group_id):
    """The SG as EC2 holds it, in the lab's IpPermissions model (self-reference -> SELF)."""
    group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    perms = []
    for perm in group["IpPermissions"]:
        out = {"IpProtocol": perm["IpProtocol"], "IpRanges": [{"CidrIp": r["CidrIp"]} for r in perm.get("IpRanges", [])]}
        if "FromPort" in perm:
            out["FromPort"], out["ToPort"] = perm["FromPort"], perm["ToPort"]
        pairs = [p for p in perm.get("UserIdGroupPairs", []) if p.get("GroupId") == group_id]
        if pairs:
            out["UserIdGroupPairs"] = [{"GroupId": SELF}]
        perms.append(out)
    return perms


def run_ansible(playbook, inventory, extra_vars, env, args=(), log=None, timeout=600):
    bindir = os.path.dirname(sys.executable)
    cmd = [os.path.join(bindir, "ansible-playbook"), "-i", inventory, playbook, "-e", json.dumps(extra_vars)]
    cmd += list(args)
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, check=False)
    if log:
        with open(log, "a") as fh:
            fh.write("$ %s\n%s\n" % (" ".join(cmd[:3] + cmd[4:5]), proc.stdout))
    return proc.returncode, proc.stdout, time.monotonic() - started


class Demo:
    def __init__(self, out, workdir, keep_log=None, html_dir=None):
        self.out = out
        self.html_dir = html_dir
        self.work = workdir
        self.log = keep_log or os.path.join(workdir, "ansible.log")
        self.timings = {}
        self.reports = {}  # name -> {check: check result}
        self.full_reports = {}  # name -> the report file as validate.yml wrote it
        # what this run started, for a check that it left nothing behind: lab_prefix, pids, workdir
        self.resources = {"workdir": workdir, "pids": []}

    # -- pieces -------------------------------------------------------------------------------
    def provision(self, moto, self_reference):
        key = os.path.join(self.work, "id_ed25519")
        if not os.path.exists(key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        extra = dict(moto.extra_vars())
        extra.update({
            "kubeadm_ec2_cluster_name": CLUSTER,
            "kubeadm_ec2_admin_cidr": ADMIN_CIDR,
            "ec2_network_vpc_cidr": VPC_CIDR,
            "ec2_network_subnets": [{"cidr": SUBNET_CIDR, "az": ""}],
            "ec2_network_sg_self_reference": self_reference,
            # the seeds' allow-list: NodePorts and VXLAN from anywhere
            "ec2_network_nodeport_cidrs": ["0.0.0.0/0"],
            "ec2_network_sg_extra_rules": [{"proto": "udp", "ports": [4789], "cidr_ip": "0.0.0.0/0",
                                            "rule_desc": "Calico VXLAN (seed rule)"}],
            "ec2_nodes_ami_owners": ["137112412989"],
            "ec2_nodes_ami_name_pattern": "al2022-ami-2022.0.*-kernel-5.15-*",
            "ec2_nodes_ssh_public_key_file": key + ".pub",
        })
        inv = os.path.join(self.work, "localhost.ini")
        with open(inv, "w") as fh:
            fh.write("localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
        env = self.env(moto)
        rc, text, wall = run_ansible("site.yml", inv, extra, env, args=["--tags", "provision"], log=self.log)
        if rc != 0:
            raise DemoError("site.yml (provision) failed, see %s:\n%s" % (self.log, text[-3000:]))
        return wall

    def env(self, moto):
        env = moto.env()
        env.update({"ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
                    "ANSIBLE_FORKS": "20", "ANSIBLE_HOST_KEY_CHECKING": "False",
                    "PATH": os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")})
        return env

    def cluster_objects(self, dnslab, registry, fixed, recommendations=None):
        """The cluster as the API fake serves it: the lab's nodes and CoreDNS, the shop's Deployments (marketplace,
        and, given ``recommendations``, recommendations with its Service: a listener in the lab)."""
        objs = dnslab.k8s_objects(corefile=HEALTHY_COREFILE % dnslab.upstream_ip)
        if recommendations is not None:
            objs += recommendations.k8s_objects()
        image = "%s/marketplace:v1" % registry.host
        labels = {"app": "marketplace"}
        objs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": APP_NAMESPACE}})
        objs.append({"apiVersion": "apps/v1", "kind": "Deployment",
                     "metadata": {"name": "marketplace", "namespace": APP_NAMESPACE, "labels": labels},
                     "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                              "template": {"metadata": {"labels": labels},
                                           "spec": {"containers": [{"name": "web", "image": image,
                                                                    "ports": [{"containerPort": 8080}]}]}}}})
        waiting = {"reason": "ErrImagePull",
                   "message": "failed to pull and unpack image \"%s\": no match for platform in manifest: not found"
                              % image}
        state = {"running": {"startedAt": "2026-01-01T00:00:00Z"}} if fixed else {"waiting": waiting}
        objs.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "marketplace-5d9c7b6f4-abcde", "namespace": APP_NAMESPACE,
                                  "labels": labels,
                                  "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                       "name": "marketplace-5d9c7b6f4", "uid": "rs-1",
                                                       "controller": True}]},
                     "spec": {"nodeName": "node2", "containers": [{"name": "web", "image": image,
                                                                   "ports": [{"containerPort": 8080}]}]},
                     "status": {"phase": "Running" if fixed else "Pending", "podIP": "192.168.2.20",
                                "containerStatuses": [{"name": "web", "image": image, "ready": fixed,
                                                       "restartCount": 0, "state": state}]}})
        return objs

    def validate(self, moto, dnslab, api, registry, sg_id, name, paths=None):
        """validate.yml on the lab; ``paths``: validate_paths (default the demo's APP_PATHS; empty: the paths
        check is skipped). On a MeshLab the paths check runs the live pod mesh too."""
        inv = os.path.join(self.work, "lab-inventory.json")
        kubeconfig = api.write_kubeconfig(os.path.join(self.work, "kubeconfig"))
        report_file = os.path.join(self.work, "report-%s.json" % name)
        extra = dict(moto.extra_vars())
        extra.update({
            "kubeadm_ec2_cluster_name": CLUSTER,
            "validate_report_file": report_file,
            "validate_network_security_group_id": sg_id,
            "validate_network_calico_encapsulation": "IPIP",
            "validate_network_probe_timeout": 1.5,
            "validate_network_become": False,
            "validate_dns_kubeconfig": kubeconfig,
            "validate_dns_external_name": sorted(dnslab.upstream_records)[0],
            "validate_dns_timeout": 1.5,
            "validate_dns_probe_timeout": 30,
            "validate_images_kubeconfig": kubeconfig,
            "validate_images_namespaces": [APP_NAMESPACE],
            "validate_images_insecure_registries": [registry.host],
            "validate_paths": list(APP_PATHS if paths is None else paths),
            "validate_paths_kubeconfig": kubeconfig,
            "validate_paths_probe_timeout": 30,
        })
        if getattr(dnslab, "external", None):  # the mesh lab: the live pod mesh, egress to the lab's external host
            # (bounds for a loaded 2-core machine: each wait ends as soon as every pod is there)
            extra.update({"validate_paths_external": dnslab.external,
                          "validate_paths_mesh_pods_per_node": MESH_PODS_PER_NODE,
                          "validate_paths_mesh_start_timeout": 120, "validate_paths_mesh_probe_timeout": 120})
        else:  # a plain DNS lab has no pod routes nor mesh kubelet
            extra["validate_paths_mesh"] = False
        if self.html_dir:
            extra["validate_report_html"] = os.path.join(self.html_dir, "report-%s.html" % name)
        dnslab.write_inventory(inv, python=sys.executable)
        if os.path.exists(report_file):
            os.unlink(report_file)
        rc, text, wall = run_ansible(os.path.join("playbooks", "validate.yml"), inv, extra, self.env(moto),
                                     log=self.log)
        if not os.path.exists(report_file):
            raise DemoError("validate.yml wrote no report (rc=%d), see %s:\n%s" % (rc, self.log, text[-4000:]))
        with open(report_file) as fh:
            report = json.load(fh)
        return rc, report.get("checks", {}), report, wall

    def validate_step(self, started, lab, name, judge, title, done_text):
        """Run validate.yml, judge its report (a list of problems), print the report; True when as expected."""
        rc, report, full, wall = self.validate(*lab, name=name)
        self.timings["validate_" + name] = wall
        self.reports[name] = report
        self.full_reports[name] = full
        problems = judge(report, full)
        if (rc == 0) != (name == "fixed"):
            problems.append("validate.yml exited %d on the %s cluster" % (rc, name))
        if problems:
            self.out.fail("\n".join(problems))
            print_report(self.out, title, report, full)
            return False
        self.out.done(started, "%s in %.1fs" % (done_text, wall))
        print_report(self.out, title, report, full)
        print("  %s" % mesh_summary(report))
        print()
        return True


class DemoError(Exception):
    pass


def bgp_routes(lab):
    """How many node pairs have a pod route (BGP peered over tcp/179 through the SG)."""
    n = len(lab.nodes)
    return "pod routes (BGP) on %d of %d node pairs" % (sum(len(v) for v in lab.routes.values()), n * (n - 1))


def mesh_cells(report):
    return ((report.get("paths") or {}).get("evidence") or {}).get("mesh") or []


def mesh_summary(report):
    """One line about the pod matrix: its cells, and the blocked ones by kind (same-node, cross-node, ...)."""
    cells = mesh_cells(report)
    kinds = {}
    for c in cells:
        kind = c["kind"] if c["kind"] != "pod" else "same-node" if c["src_node"] == c.get("dst_node") else "cross-node"
        total, blocked = kinds.get(kind, (0, 0))
        kinds[kind] = (total + 1, blocked + (0 if c["ok"] else 1))
    return "pod mesh: %d cells; blocked: %s" % (len(cells), ", ".join(
        "%s %d/%d" % (k, kinds[k][1], kinds[k][0]) for k in ("same-node", "cross-node", "service", "external")
        if k in kinds))


def check_mesh(report, broken):
    """The pod matrix: every probe pod reported; broken: every cross-node cell blocked, every same-node and
    egress cell open; fixed: every cell open."""
    cells = mesh_cells(report)
    if not cells:
        return ["paths: no pod matrix (evidence.mesh is empty: the live pod mesh did not run)"]
    problems = ["paths: %s" % f["observed"] for f in (report.get("paths") or {}).get("findings") or []
                if f["id"] == "MESH_PROBE_FAILED"]
    pods = len({c["src_pod"] for c in cells})
    if pods != NODES * MESH_PODS_PER_NODE:
        problems.append("paths: %d of %d mesh probe pods reported" % (pods, NODES * MESH_PODS_PER_NODE))
    for c in cells:
        cross = c["kind"] == "pod" and c["src_node"] != c.get("dst_node")
        want = not cross if broken and c["kind"] != "service" else True
        if broken and c["kind"] == "service":
            continue  # the ClusterIP reaches a CoreDNS pod on the same node or not, as the DNAT picks
        if c["ok"] != want:
            problems.append("mesh cell %s -> %s (%s/%s) should be %s: %s" % (
                c["src_pod"], c.get("dst_pod") or c["dst"], c["kind"], c["proto"], "open" if want else "blocked",
                c["reason"]))
    return problems[:6]


def check_diagnosis(full, causes):
    """The report's root causes are exactly ``causes`` and every error finding is explained."""
    got = [c["id"] for c in full.get("root_causes") or []]
    problems = [] if got == causes else ["root causes %s, expected %s (%s)" % (got, causes, full.get("headline"))]
    if full.get("unexplained"):
        problems.append("unexplained findings: %s" % json.dumps(full["unexplained"])[:600])
    return problems


def check_broken(report, full):
    problems = []
    for check, ids in EXPECTED_BROKEN.items():
        res = report.get(check, {})
        got = {f["id"] for f in res.get("findings", []) if f.get("severity") == "error"}
        if res.get("status") != "failed":
            problems.append("%s should have failed (status %s)" % (check, res.get("status")))
        elif not ids <= got:
            problems.append("%s should report %s, reported %s" % (check, sorted(ids), sorted(got)))
    return problems + check_mesh(report, broken=True) + check_diagnosis(full, EXPECTED_CAUSES)


def check_fixed(report, full):
    problems = ["%s should pass after the fixes (status %s: %s)" % (c, r.get("status"), (r.get("msg") or "")[:300])
                for c, r in sorted(report.items()) if r.get("status") != "passed"]
    if full.get("headline") != "healthy":
        problems.append("the headline should be 'healthy', is %r" % full.get("headline"))
    return problems + check_mesh(report, broken=False) + check_diagnosis(full, [])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-color", action="store_true", help="plain output even on a terminal")
    parser.add_argument("--json", metavar="FILE", help="also write both validate reports and timings here")
    parser.add_argument("--log", metavar="FILE", help="keep the ansible output in FILE")
    parser.add_argument("--html-dir", metavar="DIR", help="keep each validate run's HTML report in DIR")
    parser.add_argument("--repeat-broken", metavar="N", type=int, default=1,
                        help="validate the broken cluster N times (reports broken, broken-2, ...): the diagnosis "
                             "must not depend on which CoreDNS pod a probe reached")
    opts = parser.parse_args(argv)
    out = Out(color=sys.stdout.isatty() and not opts.no_color and os.environ.get("NO_COLOR") is None)
    if os.geteuid() != 0:
        print("the demo needs root: it creates network namespaces and iptables rules inside them")
        return 2
    if opts.html_dir:
        os.makedirs(opts.html_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="kubeadm-ec2-demo-")
    demo = Demo(out, work, keep_log=opts.log, html_dir=opts.html_dir)
    total = 7
    moto = registry = dnslab = api = None
    kubelet = None
    started_all = time.monotonic()
    try:
        t = out.step(1, total, "starting the local EC2 emulator (moto) and the registry")
        moto = MotoServer().start()
        registry = Registry().start()
        demo.resources["pids"] += [moto.proc.pid, registry.proc.pid]
        # what `docker buildx build --push` on an Apple Silicon laptop writes: an arm64-only index
        # (with its attestation entry), which containerd refuses on amd64 nodes at pull time
        registry.push_index("marketplace", "v1", ["arm64"], attestation=True)
        registry.push_index("recommendations", "v1", ["amd64", "arm64"])
        recs = LabService(image="%s/recommendations:v1" % registry.host, **RECOMMENDATIONS)
        out.done(t, "moto %s, registry %s, marketplace:v1 pushed for arm64 only" % (moto.endpoint_url, registry.host))

        t = out.step(2, total, "site.yml --tags provision with the seeds' security group (no self-reference)")
        demo.timings["provision_seed"] = demo.provision(moto, self_reference=False)
        ec2 = moto.client("ec2")
        sg_id = ec2.describe_security_groups(Filters=[
            {"Name": "tag:kubeadm_ec2/cluster", "Values": [CLUSTER]}])["SecurityGroups"][0]["GroupId"]
        n_inst = sum(len(r["Instances"]) for r in ec2.describe_instances(Filters=[
            {"Name": "tag:kubeadm_ec2/cluster", "Values": [CLUSTER]}])["Reservations"])
        out.done(t, "%s, %d instances" % (sg_id, n_inst))

        t = out.step(3, total, "building the lab from that SG (3 node namespaces, Calico IPIP, dnsmasq CoreDNS, "
                               "recommendations, an external host, API fake)")
        dnslab = MeshLab(nodes=NODES, sg=lab_sg_from_ec2(ec2, sg_id), coredns_nodes=("node1", "node2"),
                         records=recs.records()).start()
        demo.resources["lab_prefix"] = dnslab.prefix
        recs.start(dnslab)
        api = FakeKubeAPI().start()
        api.cluster.add_all(demo.cluster_objects(dnslab, registry, fixed=False, recommendations=recs))
        # one kubelet: mesh probe pods in pod namespaces, the DNS and path probe pods as LabKubelet runs them
        kubelet = dnslab.kubelet(others=LabKubelet(dnslab))
        kubelet.install(api.cluster)
        out.done(t, "prefix %s, %s" % (dnslab.prefix, bgp_routes(dnslab)))

        t = out.step(4, total, "playbooks/validate.yml on the seeds' cluster (must fail)")
        for k in range(max(1, opts.repeat_broken)):
            name = "broken" if k == 0 else "broken-%d" % (k + 1)
            if not demo.validate_step(t, (moto, dnslab, api, registry, sg_id), name, check_broken,
                                      "validate: seeds' cluster (as expected: broken)", "failed as expected"):
                return 1
            t = time.monotonic()

        t = out.step(5, total, "fix 1: site.yml --tags provision -e ec2_network_sg_self_reference=true")
        demo.timings["provision_fix"] = demo.provision(moto, self_reference=True)
        dnslab.apply_sg(lab_sg_from_ec2(ec2, sg_id))
        out.done(t, "the lab's iptables now follow the fixed EC2 SG; %s" % bgp_routes(dnslab))

        t = out.step(6, total, "fix 2: push marketplace:v1 for linux/amd64 and linux/arm64 (OCI index)")
        registry.push_index("marketplace", "v1", ["amd64", "arm64"])
        for obj in demo.cluster_objects(dnslab, registry, fixed=True, recommendations=recs):
            if obj["kind"] == "Pod" and obj["metadata"]["namespace"] == APP_NAMESPACE:
                api.cluster.add(obj)  # the rollout: the pod now runs
        out.done(t)

        t = out.step(7, total, "playbooks/validate.yml after the fixes (must pass)")
        if not demo.validate_step(t, (moto, dnslab, api, registry, sg_id), "fixed", check_fixed,
                                  "validate: after the fixes", "passed"):
            return 1
        demo.timings["total"] = time.monotonic() - started_all
        print(out.c("The story holds: the seeds' outages were caught with their fixes, and the fixed cluster "
                    "validates clean.", "1;32"))
        print("timings: " + ", ".join("%s %.1fs" % kv for kv in demo.timings.items()))
        return 0
    except DemoError as exc:
        out.fail(str(exc))
        return 1
    finally:
        if opts.json:
            with open(opts.json, "w") as fh:
                json.dump({"timings": demo.timings, "reports": demo.reports, "full_reports": demo.full_reports,
                           "resources": demo.resources}, fh, indent=1)
        if kubelet is not None:
            kubelet.join()
        for thing in (api, dnslab, registry, moto):
            if thing is not None:
                try:
                    thing.stop()
                except Exception as exc:  # keep cleaning up the rest
                    print("cleanup: %s" % exc)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
