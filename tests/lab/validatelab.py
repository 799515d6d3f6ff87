"""Everything `playbooks/validate.yml` talks to, for N lab nodes: one object to start and stop.

    with ValidateLab(nodes=10, sg=SEED_SG) as vlab:
        rc, report, wall, text = vlab.validate()          # every check
        wall = vlab.ping_round()                          # one ansible.builtin.ping task, same hosts

Parts (each stopped by stop(), also when start() fails half-way):
* moto's EC2 server with the node security group (``sg``, the lab's IpPermissions model) and one
  tagged instance per lab node at the node's private IP (sg_audit);
* the DNS lab (tests/lab/dnslab.py): N node namespaces with the SG as iptables, dnsmasq CoreDNS on
  node1 and node2 behind the service VIP;
* the Kubernetes API fake serving the lab as a cluster, with the lab kubelet running probe pods;
* Debian's docker-registry holding ``app:v1`` for amd64 and arm64, used by a Deployment (image_arch).

Used by bench/bench_validate.py and the fault tests (tests/integration/test_validate_faults.py).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from tests.fakes.k8s_api import FakeKubeAPI
from tests.lab.dnslab import DnsLab, LabKubelet
from tests.lab.netlab import HEALTHY_SG, SELF

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER = "vlab"
APP_NAMESPACE = "shop"
COREFILE = """.:53 {
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
    }
    forward . %s
    cache 30
    loop
    reload
}
"""
PING_PLAY = """---
- name: One round
  hosts: k8s_cluster
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""


def ec2_permissions(perms, group_id):
    """The lab's IpPermissions model in EC2's shape (SELF -> the group itself)."""
    out = []
    for perm in perms:
        ec2 = {"IpProtocol": str(perm.get("IpProtocol", "-1"))}
        if "FromPort" in perm:
            ec2["FromPort"], ec2["ToPort"] = perm["FromPort"], perm.get("ToPort", perm["FromPort"])
        if perm.get("IpRanges"):
            ec2["IpRanges"] = [{"CidrIp": r["CidrIp"]} for r in perm["IpRanges"]]
        if any(p.get("GroupId") == SELF for p in perm.get("UserIdGroupPairs", [])):
            ec2["UserIdGroupPairs"] = [{"GroupId": group_id}]
        out.append(ec2)
    return out


class ValidateLab:
    def __init__(self, nodes=3, sg=None, control_planes=1, coredns_nodes=("node1", "node2"), extra_vars=None,
                 with_ec2=True, with_registry=True, records=None):
        self.count = nodes
        self.sg = list(HEALTHY_SG if sg is None else sg)
        self.control_planes = control_planes
        self.coredns_nodes = coredns_nodes
        self.with_ec2 = with_ec2
        self.with_registry = with_registry
        self.user_vars = dict(extra_vars or {})
        self.records = dict(records or {})  # extra names of the lab's CoreDNS (fqdn -> IP), e.g. LabService.records()
        self.dnslab = self.api = self.moto = self.registry = self.kubelet = None
        self.work = None
        self.sg_id = ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def lab(self):
        return self.dnslab.lab

    def start(self):
        self.work = tempfile.mkdtemp(prefix="kvlab-")
        try:
            self.dnslab = DnsLab(nodes=self.count, sg=self.sg, coredns_nodes=self.coredns_nodes,
                                 records=self.records).start()
            self.api = FakeKubeAPI().start()
            self.kubelet = LabKubelet(self.dnslab)
            self.api.cluster.on_create["pods"] = self.kubelet
            image = None
            if self.with_registry:
                from tests.integration.registry_harness import Registry

                self.registry = Registry().start()
                self.registry.push_index("app", "v1", ["amd64", "arm64"])
                image = "%s/app:v1" % self.registry.host
            self.api.cluster.add_all(self._objects(image))
            if self.with_ec2:
                from tests.integration.moto_harness import MotoServer

                self.moto = MotoServer().start()
                self._ec2()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        if self.kubelet is not None:
            self.kubelet.join()
        for part in (self.api, self.registry, self.moto, self.dnslab):
            if part is not None:
                try:
                    part.stop()
                except Exception as exc:  # keep stopping the others  # pylint: disable=broad-except
                    print("validatelab cleanup: %s" % exc)
        self.api = self.registry = self.moto = self.dnslab = None
        if self.work:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = None

    # -- parts ---------------------------------------------------------------------------------------
    def _objects(self, image):
        objs = self.dnslab.k8s_objects(corefile=COREFILE % self.dnslab.upstream_ip)
        if image:
            labels = {"app": "web"}
            objs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": APP_NAMESPACE}})
            objs.append({"apiVersion": "apps/v1", "kind": "Deployment",
                         "metadata": {"name": "web", "namespace": APP_NAMESPACE, "labels": labels},
                         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                                  "template": {"metadata": {"labels": labels},
                                               "spec": {"containers": [{"name": "web", "image": image}]}}}})
        return objs

    def _ec2(self):
        ec2 = self.moto.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.231.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=str(self.lab.net))["Subnet"]["SubnetId"]
        self.sg_id = ec2.create_security_group(GroupName="%s-nodes" % CLUSTER, Description="lab nodes",
                                               VpcId=vpc)["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=self.sg_id, IpPermissions=ec2_permissions(self.sg, self.sg_id))
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        for node in self.lab.nodes:
            ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.medium", SubnetId=subnet,
                              PrivateIpAddress=node["ip"], SecurityGroupIds=[self.sg_id],
                              TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                  {"Key": "Name", "Value": node["name"]},
                                  {"Key": "kubeadm_ec2/cluster", "Value": CLUSTER}]}])

    # -- Ansible ---------------------------------------------------------------------------------------
    def inventory(self):
        path = os.path.join(self.work, "inventory.json")
        if not os.path.exists(path):
            self.dnslab.write_inventory(path, python=sys.executable,
                                        control_planes=self.control_planes)
        return path

    def env(self, forks=None):
        env = self.moto.env() if self.moto else dict(os.environ)
        env.update({"ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
                    "ANSIBLE_HOST_KEY_CHECKING": "False",
                    "PATH": os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")})
        if forks:
            env["ANSIBLE_FORKS"] = str(forks)
        return env

    def extra_vars(self, report_file):
        kubeconfig = self.api.write_kubeconfig(os.path.join(self.work, "kubeconfig"))
        evars = {
            "kubeadm_ec2_cluster_name": CLUSTER,
            "validate_report_file": report_file,
            "validate_network_security_group_id": self.sg_id,
            "validate_network_calico_encapsulation": "IPIP",
            "validate_network_probe_timeout": 1.5,
            "validate_network_become": False,
            "validate_dns_kubeconfig": kubeconfig,
            "validate_dns_external_name": sorted(self.dnslab.upstream_records)[0],
            "validate_dns_timeout": 1.5,
            "validate_dns_probe_timeout": 30,
            "validate_images_kubeconfig": kubeconfig,
            "validate_images_namespaces": [APP_NAMESPACE],
        }
        if self.moto:
            evars.update(self.moto.extra_vars())
        else:
            evars["validate_checks"] = ["node_reachability", "dns", "image_arch"]
        if self.registry:
            evars["validate_images_insecure_registries"] = [self.registry.host]
        else:
            evars["validate_checks"] = [c for c in evars.get("validate_checks", ["sg_audit", "node_reachability", "dns"])
                                        if c != "image_arch"]
        evars.update(self.user_vars)
        return evars

    def validate(self, extra_vars=None, forks=None, timeout=900, playbook="playbooks/validate.yml"):
        """Run validate.yml; returns (rc, report dict or None, wall seconds, output text)."""
        report_file = os.path.join(self.work, "report-%d.json" % time.monotonic_ns())
        evars = self.extra_vars(report_file)
        evars.update(extra_vars or {})
        cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", self.inventory(),
               os.path.join(ROOT, playbook), "-e", json.dumps(evars)]
        start = time.monotonic()
        proc = subprocess.run(cmd, cwd=ROOT, env=self.env(forks), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout, check=False)
        wall = time.monotonic() - start
        report = None
        if os.path.exists(report_file):
            with open(report_file) as fh:
                report = json.load(fh)
        return proc.returncode, report, wall, proc.stdout

    def ping_round(self, forks=None, timeout=600):
        """Wall time of a one-task play (ansible.builtin.ping) over the same hosts and connection."""
        play = os.path.join(self.work, "ping.yml")
        with open(play, "w") as fh:
            fh.write(PING_PLAY)
        cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", self.inventory(), play]
        start = time.monotonic()
        proc = subprocess.run(cmd, cwd=ROOT, env=self.env(forks), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout, check=False)
        wall = time.monotonic() - start
        if proc.returncode != 0:
            raise RuntimeError("ping play failed:\n%s" % proc.stdout[-3000:])
        return wall
