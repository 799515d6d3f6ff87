"""roles/cluster_defaults: the one cluster-wide contract every role depends on and reads (rendered by ansible-core)."""

import os
import re

import pytest
import yaml

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import contract as contract_lib
from tests.unit.roles._render import CONTRACT_TASK, ROLES, ROOT, contract_problem, load_yaml, role_vars, task_by_name

CONTRACT = {
    "kubeadm_ec2_cluster_name": "kubeadm-ec2",
    "kubeadm_ec2_region": "us-east-1",
    "kubeadm_ec2_endpoint_url": "",
    "kubeadm_ec2_admin_cidr": "",
    "kubeadm_ec2_control_plane_group": "control_plane",
    "kubeadm_ec2_workers_group": "workers",
    "kubeadm_ec2_nodes_group": "k8s_cluster",
    "kubeadm_ec2_pod_cidr": "192.168.0.0/16",
    "kubeadm_ec2_service_cidr": "10.96.0.0/12",
    "kubeadm_ec2_cluster_dns_ip": "10.96.0.10",
    "kubeadm_ec2_dns_domain": "cluster.local",
    "kubeadm_ec2_calico_encapsulation": "IPIP",
    "kubeadm_ec2_api_private_endpoint": False,
    "kubeadm_ec2_kubeconfig": os.path.join(ROOT, "inventories", "aws", "artifacts", "kubeadm-ec2-admin.conf"),
    # additions to CONTRACT.md's list: the k8s-client venv both calico and coredns run kubernetes.core with, and
    # the one switch to the private API endpoint (issue 13) that provisioning and install both follow
    "kubeadm_ec2_k8s_client_venv": "/opt/kubeadm_ec2/k8s-client",
}
OTHER_ROLES = sorted(r for r in os.listdir(ROLES) if r != "cluster_defaults")


def test_the_contract_and_its_defaults():
    defaults = load_yaml("cluster_defaults", "defaults", "main.yml")
    assert set(defaults) == set(CONTRACT)
    v = role_vars("cluster_defaults")
    assert {k: v[k] for k in CONTRACT} == CONTRACT
    spec = load_yaml("cluster_defaults", "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(spec) == set(CONTRACT)
    assert not os.path.exists(os.path.join(ROLES, "cluster_defaults", "vars"))


def test_the_dns_ip_is_derived_not_typed():
    raw = load_yaml("cluster_defaults", "defaults", "main.yml")["kubeadm_ec2_cluster_dns_ip"]
    assert "kubeadm_ec2.cluster.cluster_dns_ip" in raw and "10.96" not in raw
    assert role_vars("cluster_defaults", {}, {"kubeadm_ec2_service_cidr": "172.20.0.0/16"})[
        "kubeadm_ec2_cluster_dns_ip"] == "172.20.0.10"


@pytest.mark.parametrize("role", OTHER_ROLES)
def test_every_role_depends_on_the_contract(role):
    deps = load_yaml(role, "meta", "main.yml")["dependencies"]
    assert {"role": "cluster_defaults"} in deps


@pytest.mark.parametrize("old, value, contract", [
    ("kubeadm_pod_subnet", "10.244.0.0/16", "kubeadm_ec2_pod_cidr"),
    ("calico_ippool_cidr", "10.244.0.0/16", "kubeadm_ec2_pod_cidr"),
    ("kubeadm_service_subnet", "10.100.0.0/16", "kubeadm_ec2_service_cidr"),
    ("kubeadm_dns_domain", "corp.local", "kubeadm_ec2_dns_domain"),
    ("coredns_cluster_domain", "corp.local", "kubeadm_ec2_dns_domain"),
    ("calico_encapsulation", "VXLAN", "kubeadm_ec2_calico_encapsulation"),
    ("kubeadm_control_plane_group", "masters", "kubeadm_ec2_control_plane_group"),
    ("calico_control_plane_group", "masters", "kubeadm_ec2_control_plane_group"),
    ("coredns_control_plane_group", "masters", "kubeadm_ec2_control_plane_group"),
    ("validate_network_control_plane_group", "masters", "kubeadm_ec2_control_plane_group"),
    ("kubeadm_workers_group", "minions", "kubeadm_ec2_workers_group"),
    ("validate_network_group", "nodes", "kubeadm_ec2_nodes_group"),
    ("validate_images_nodes_group", "nodes", "kubeadm_ec2_nodes_group"),
    ("validate_nodes_group", "nodes", "kubeadm_ec2_nodes_group"),
    ("kubeadm_kubeconfig_local_path", "/srv/k.conf", "kubeadm_ec2_kubeconfig"),
    ("kubeadm_python_venv", "/opt/venv", "kubeadm_ec2_k8s_client_venv"),
    ("kubeadm_cluster_name", "old", "kubeadm_ec2_cluster_name"),
])
def test_old_names_are_aliases_for_one_release_and_are_reported(old, value, contract):
    v = role_vars("cluster_defaults", {}, {old: value})
    assert v[contract] == value
    # the new name wins over the old one
    assert role_vars("cluster_defaults", {}, {old: value, contract: CONTRACT[contract]})[contract] == CONTRACT[contract]
    # the contract step names the old variable that is set, and only that one
    assert contract_lib.used_aliases(v.raw) == [old]
    assert old in contract_lib.deprecation_line(contract_lib.used_aliases(v.raw))
    assert role_vars("cluster_defaults", {}, {})["kubeadm_ec2_cluster_name"] == "kubeadm-ec2"


@pytest.mark.parametrize("sources, expected", [
    (["/srv/inv/aws"], "/srv/inv/aws/artifacts/demo-admin.conf"),                  # a directory: -i inventories/aws
    (["/srv/inv/aws/aws_ec2.yml"], "/srv/inv/aws/artifacts/demo-admin.conf"),      # a file in it
    (["cp1,w1,"], "/srv/play/artifacts/demo-admin.conf"),                          # a host list: the playbook dir
])
def test_kubeconfig_lives_under_the_inventory_directory(sources, expected, monkeypatch, tmp_path):
    if not sources[0].startswith("/srv/inv/aws/"):
        pass
    # a directory source must exist to be recognised as one
    real = [s.replace("/srv/inv", str(tmp_path)) for s in sources]
    os.makedirs(os.path.join(str(tmp_path), "aws"), exist_ok=True)
    v = role_vars("cluster_defaults", {"ansible_inventory_sources": real, "playbook_dir": "/srv/play"},
                  {"kubeadm_ec2_cluster_name": "demo"})
    assert v["kubeadm_ec2_kubeconfig"] == expected.replace("/srv/inv", str(tmp_path))


@pytest.mark.parametrize("role, var", [("validate_dns", "validate_dns_kubeconfig"),
                                       ("validate_images", "validate_images_kubeconfig"),
                                       ("validate_network", "validate_network_kubeconfig")])
def test_validate_reads_the_kubeconfig_the_install_writes(role, var, tmp_path):
    kubeconfig = tmp_path / "artifacts" / "c-admin.conf"
    facts = {"ansible_inventory_sources": [str(tmp_path)]}
    assert role_vars(role, facts, {"kubeadm_ec2_cluster_name": "c"})[var] == ""     # not written yet: default lookup
    kubeconfig.parent.mkdir()
    kubeconfig.write_text("apiVersion: v1\n")
    assert role_vars(role, facts, {"kubeadm_ec2_cluster_name": "c"})[var] == str(kubeconfig)
    assert role_vars("kubeadm", facts, {"kubeadm_ec2_cluster_name": "c"})["kubeadm_ec2_kubeconfig"] == str(kubeconfig)
    write = task_by_name("kubeadm", "kubeconfig.yml", "Write the admin kubeconfig to kubeadm_ec2_kubeconfig on the controller")
    assert write["ansible.builtin.copy"]["dest"] == "{{ kubeadm_ec2_kubeconfig }}"


CONTRACT_CASES = [
    {"kubeadm_ec2_cluster_name": " "},
    {"kubeadm_ec2_workers_group": ""},
    {"kubeadm_ec2_pod_cidr": "192.168.0.0"},
    {"kubeadm_ec2_service_cidr": "10.96.0.0/33"},
    {"kubeadm_ec2_pod_cidr": "10.96.0.0/16"},
    {"kubeadm_ec2_cluster_dns_ip": "10.0.0.10"},
    {"kubeadm_ec2_dns_domain": "Cluster Local"},
    {"kubeadm_ec2_calico_encapsulation": "ipip"},
    {"kubeadm_ec2_kubeconfig": ""},
]


def test_the_contract_step_runs_once_and_holds_on_the_defaults():
    task = task_by_name("cluster_defaults", "checks.yml", CONTRACT_TASK)
    assert task["run_once"] is True
    assert contract_problem(role_vars("cluster_defaults")) is None


@pytest.mark.parametrize("bad", CONTRACT_CASES)
def test_the_contract_step_stops_on_bad_input_naming_the_variable(bad):
    problem = contract_problem(role_vars("cluster_defaults", {}, bad))
    assert problem is not None and problem.startswith("Stop: ")
    for var in bad:
        assert var in problem


# Variables each role may read besides its own and the contract's: facts the provisioning roles publish
# (roles/ec2_network sets ec2_network_sg_id / ec2_network_subnet_ids; helper F owns that hand-off).
ALLOWED_CROSS_READS = {
    # published facts of ec2_network, read as the defaults of ec2_nodes variables
    "ec2_nodes": {"ec2_network_subnet_ids", "ec2_network_sg_id", "ec2_network_vpc_id", "ec2_network_subnet_cidr_blocks"},
    "validate_network": {"ec2_network_sg_id"},
}
PREFIXES = {r: r + "_" for r in OTHER_ROLES}
JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
RAW_EXPRESSION_KEYS = ("when", "that", "until", "loop", "changed_when", "failed_when")


def _expressions(node):
    """Every Jinja span and raw conditional of a loaded YAML file (messages and comments are not reads)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in RAW_EXPRESSION_KEYS:
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, str):
                        yield item
            else:
                yield from _expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from _expressions(item)
    elif isinstance(node, str):
        yield from JINJA.findall(node)


def _role_files(role):
    for sub in ("defaults", "vars", "tasks", "handlers", "templates"):
        folder = os.path.join(ROLES, role, sub)
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            yield os.path.join(folder, name)


@pytest.mark.parametrize("role", OTHER_ROLES)
def test_no_role_reads_another_roles_private_variables(role):
    reads = set()
    for path in _role_files(role):
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        spans = JINJA.findall(text) if path.endswith(".j2") else list(_expressions(yaml.safe_load(text)))
        for span in spans:
            for name in re.findall(r"(?<![\w.'\"/-])([a-z][a-z0-9_]*)", span):
                owner = [r for r, p in PREFIXES.items() if name.startswith(p) and r != role]
                if owner and not name.startswith("kubeadm_ec2") and not name.startswith(role + "_"):
                    reads.add(name)
    assert reads <= ALLOWED_CROSS_READS.get(role, set()), sorted(reads - ALLOWED_CROSS_READS.get(role, set()))
