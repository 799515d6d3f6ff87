"""End to end: ONE `ansible-playbook site.yml` provisions on moto, installs what can run here, validates.

Real here:
  * provisioning: playbooks/site.yml's provision play against moto's server (VPC, two subnets in two
    zones, the node and API security groups, 3 control planes + 1 worker spread over the zones, the API
    network load balancer and its target group), then `refresh_inventory`: the shipped example inventory
    (inventories/aws: the amazon.aws.aws_ec2 plugin, pointed at moto by AWS_ENDPOINT_URL) lists the nodes;
  * the nodes' network: each instance is a namespace at the private IP moto gave it, behind the security
    groups moto holds for it (tests/lab/sitelab.py); the controller sits outside the VPC (198.51.100.10,
    the only address in admin_cidr) and reaches a node only through its public address (1:1 NAT in the
    router namespace) and the API only through the load balancer's name, so only what admin_cidr opens;
  * install: every node asks the Kubernetes package repository for its key (bounded) and gets no answer:
    kubeadm_repo_base_url points at an address of the lab's router where nothing listens (sitelab's
    PACKAGE_REPO_URL; no name is looked up and nothing goes off the machine), so the install skips, and
    says so, node_prep, the
    packages, kubeadm init/join, Calico and CoreDNS; it renders the HA kubeadm configuration on the
    control planes and writes the admin kubeconfig (server rewritten to the NLB's name) to
    kubeadm_ec2_kubeconfig, under the inventory directory;
  * validate finds that kubeconfig by default, probes the API through the load balancer from the
    controller, and runs sg_audit (moto, with the NLB's subnets), node_reachability (real probes between
    the namespaces, Calico IPIPCrossSubnet with each node's subnet_id) and image_arch (the API fake and a
    registry on the controller).

Not real here, and stood in for by the lab (sitelab.py says how): sshd (an acceptor on tcp/22 plus the
interpreter wrapper that opens tcp/22 to the public address before running Python in the namespace),
kube-apiserver (a TLS relay on 6443 of each control plane to the API fake), the admin.conf kubeadm init
would write, and the kubelets' Node registrations. The dns check is left out: no CoreDNS pods run behind
these nodes (tests/e2e/test_demo.py covers DNS on the DNS lab). kubeadm init/join themselves never run:
no packages.
Needs root. Everything it starts (namespaces, moto, the fake, the registry, the stand-ins) is stopped.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from tests.fakes import k8s_api
from tests.integration.moto_harness import MotoServer
from tests.integration.registry_harness import Registry
from tests.lab.sitelab import CTL_IP, NLB_IP, PACKAGE_REPO_URL, SiteLab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
CLUSTER = "siteflow"
APP_NS = "shop"
MOTO_AMI_VARS = {"ec2_nodes_ami_owners": ["137112412989"],
                 "ec2_nodes_ami_name_pattern": "al2022-ami-2022.0.*-kernel-5.15-*"}
WALL_LIMIT = 300

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the site lab needs root (network namespaces)")


class ControllerAPI(k8s_api.FakeKubeAPI):
    """The API fake on the controller's address (the control planes' API relays reach it there)."""

    @property
    def url(self):
        return "http://%s:%d" % (CTL_IP, self.httpd.server_address[1])

    def _start(self):
        self.httpd = self.serve_http(k8s_api._Handler, host=CTL_IP, cluster=self.cluster)  # pylint: disable=protected-access


def _connect(ip, port, timeout=2.0):
    try:
        socket.create_connection((ip, port), timeout).close()
        return "open"
    except ConnectionRefusedError:
        return "refused"
    except OSError as exc:
        return "blocked: %s" % exc


def _inventory(work):
    inv = os.path.join(work, "inventory")
    shutil.copytree(os.path.join(ROOT, "inventories", "aws"), inv, ignore=shutil.ignore_patterns("artifacts"))
    return inv


def _deployment(image):
    labels = {"app": "web"}
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": APP_NS}},
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": APP_NS,
                                                                         "labels": labels},
             "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                      "template": {"metadata": {"labels": labels},
                                   "spec": {"containers": [{"name": "web", "image": image}]}}}}]


def _site(lab, moto, inv, work, report, registry):
    key = os.path.join(work, "id")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    evars = dict(
        MOTO_AMI_VARS,
        kubeadm_ec2_control_plane_count=3,
        kubeadm_ec2_calico_encapsulation="IPIPCrossSubnet",
        ec2_nodes_worker_count=1,
        ec2_nodes_worker_instance_type="t3.medium",
        ec2_nodes_ssh_public_key_file=key + ".pub",
        install_ssh_timeout=60,
        install_require_package_repository=False,
        kubeadm_repo_base_url=PACKAGE_REPO_URL,
        validate_checks=["sg_audit", "node_reachability", "image_arch"],
        validate_report_file=report,
        validate_network_become=False,
        validate_network_probe_timeout=1.5,
        validate_images_namespaces=[APP_NS],
        validate_images_insecure_registries=[registry.host],
    )
    evars_file = os.path.join(work, "extra_vars.json")
    with open(evars_file, "w") as fh:
        json.dump(evars, fh)
    env = moto.env(with_endpoint=True)
    env.update({
        "KUBEADM_EC2_CLUSTER_NAME": CLUSTER, "KUBEADM_EC2_REGION": moto.region,
        "KUBEADM_EC2_ENDPOINT_URL": moto.endpoint_url, "KUBEADM_EC2_ADMIN_CIDR": CTL_IP + "/32",
        "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",  # one line per message
        "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "PATH": BIN + os.pathsep + env.get("PATH", ""),
    })
    if os.environ.get("KEC2_SITE_FLOW_PROFILE"):  # per-task times in the output (debugging the wall time)
        env["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_tasks"
    cmd = lab.controller_command([os.path.join(BIN, "ansible-playbook"), "-i", inv, os.path.join(ROOT, "site.yml"),
                                  "-e", "@" + evars_file])
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=WALL_LIMIT + 120, check=False)
    if os.environ.get("KEC2_SITE_FLOW_LOG"):
        with open(os.environ["KEC2_SITE_FLOW_LOG"], "w") as fh:
            fh.write(proc.stdout)
    return proc, time.monotonic() - start


def test_site_yml_one_command_against_moto_and_the_lab():
    lab = SiteLab(CLUSTER).start()
    work = lab.work  # the lab's private directory: the inventory, the keys, the report (removed by stop())
    try:
        with lab.controller():
            with MotoServer() as moto, ControllerAPI() as api, Registry() as registry:
                registry.push_index("app", "v1", ["amd64", "arm64"])
                api.cluster.add_all(_deployment("%s/app:v1" % registry.host))
                inv = _inventory(work)
                lab.write_inventory_script(os.path.join(inv, "lab_nodes.py"), api.url)
                report_file = os.path.join(work, "report.json")
                with moto.recording() as calls:
                    proc, wall = _site(lab, moto, inv, work, report_file, registry)
                out = proc.stdout
                state = json.load(open(lab.state_path))
                nodes = list(state["nodes"].values())
                # what the controller reaches, from where it is
                cp = next(n for n in nodes if n["control_plane"])
                reach = {"22 public": _connect(cp["public"], 22), "10250 public": _connect(cp["public"], 10250),
                         "22 private": _connect(cp["ip"], 22), "6443 nlb": _connect(NLB_IP, 6443)}
                nodes_in_api = [o["metadata"]["name"] for o in api.cluster.objects("api/v1", "nodes")]
        assert proc.returncode == 0, out[-8000:]
        print("site.yml wall %.0f s, %d AWS API calls on moto: %s" % (
            wall, calls.total, ", ".join("%s %d" % kv for kv in calls.actions.most_common(10))))

        # provisioning: HA over two zones, and the aws_ec2 inventory after refresh_inventory
        assert len(nodes) == 4 and sum(n["control_plane"] for n in nodes) == 3
        assert len(state["subnets"]) == 2 and len(set(n["subnet"] for n in nodes)) == 2
        assert state["nlb"].startswith("%s-api-" % CLUSTER) and state["nlb"].endswith(".elb.amazonaws.com")
        assert calls.actions["CreateLoadBalancer"] == 1 and calls.actions["RunInstances"] >= 2

        # install: the honest skip, the HA configuration rendered, the kubeconfig written where validate looks
        assert out.count("Skipped on ") == len(nodes), out[-8000:]
        # refused by the lab's router: the request went where the lab said, not out of the machine
        assert out.count("%s did not answer" % PACKAGE_REPO_URL) == len(nodes), out[-8000:]
        assert out.count("Connection refused") >= len(nodes), out[-8000:]
        assert "pkgs.k8s.io/core" not in out
        assert "Not run: node_prep, the kubelet/kubeadm/kubectl packages, kubeadm init and join, Calico and CoreDNS" in out
        for node in nodes:
            rendered = os.path.join(node["dir"], "kubeadm-config.yaml")
            assert os.path.exists(rendered) is node["control_plane"], node
        import yaml

        cfg = {d["kind"]: d for d in yaml.safe_load_all(open(os.path.join(cp["dir"], "kubeadm-config.yaml"))) if d}
        assert cfg["ClusterConfiguration"]["controlPlaneEndpoint"] == state["nlb"] + ":6443"
        assert state["nlb"] in cfg["ClusterConfiguration"]["apiServer"]["certSANs"]
        kubeconfig = os.path.join(inv, "artifacts", "%s-admin.conf" % CLUSTER)
        written = yaml.safe_load(open(kubeconfig))
        assert written["clusters"][0]["cluster"]["server"] == "https://%s:6443" % state["nlb"]
        assert oct(os.stat(kubeconfig).st_mode & 0o777) == "0o600"

        # validate: one report, every check passed, the Kubernetes reads from the controller through the NLB
        report = json.load(open(report_file))
        statuses = {c: r["status"] for c, r in report["checks"].items()}
        enabled = ("sg_audit", "node_reachability", "image_arch")
        assert {c: statuses.pop(c, None) for c in enabled} == dict.fromkeys(enabled, "passed"), report["headline"]
        assert statuses == dict.fromkeys(statuses, "skipped") and "dns" in statuses    # not enabled here
        assert report["headline"] == "healthy"
        # the API probe from the controller, with the kubeconfig install wrote, through the NLB's name
        assert "HTTP 200 from https://%s:6443" % state["nlb"] in out
        assert "the Kubernetes reads run on the controller" in out
        sg = report["checks"]["sg_audit"]
        assert "tcp 6443 allowed from the API load balancer's subnets" in sg["msg"], sg["msg"]
        reach_ev = report["checks"]["node_reachability"]["evidence"]
        assert sorted(set(reach_ev["subnets"].values())) == sorted(state["subnets"]), reach_ev["subnets"]
        assert all(row["ok"] for row in reach_ev["matrix"])
        assert sorted(nodes_in_api) == sorted(n["host"] for n in nodes)

        # the controller outside the VPC: public address and admin_cidr's ports only
        assert reach["22 public"] == "open", reach
        assert reach["10250 public"].startswith("blocked"), reach
        assert reach["22 private"].startswith("blocked"), reach
        assert reach["6443 nlb"] == "open", reach
        # bounded: the whole run, last (a slow run still shows what it proved above)
        assert wall < WALL_LIMIT, wall
    finally:
        lab.stop()
    assert not os.path.exists(work)
    # this lab's namespaces only: another lab may run on the machine at the same time
    assert lab.namespaces() == []
    left = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
    assert work not in left, [line for line in left.splitlines() if work in line]
    assert not [n for n in os.listdir("/etc/netns") if n.startswith(lab.prefix)] if os.path.isdir("/etc/netns") else True
