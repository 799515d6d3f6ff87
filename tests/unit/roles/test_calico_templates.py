"""Rendered Calico Installation (by ansible-core): encapsulation from the contract, pool CIDR = pod CIDR, and
the one Calico mode table (analysis/calico.py) shared with the security-group audit and reachability."""

import ipaddress

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import calico, reachability, sg
from tests.unit.roles._render import contract_problem, expr, load_yaml, render_yaml, role_vars, task_by_name

# Installation.spec.calicoNetwork.ipPools[].encapsulation accepts exactly these (operator API).
OPERATOR_ENCAPSULATIONS = {"IPIP", "IPIPCrossSubnet", "VXLAN", "VXLANCrossSubnet", "None"}


def installation(**overrides):
    v = role_vars("calico", {"groups": {"control_plane": ["cp1"]}, "ansible_play_hosts_all": ["cp1", "w1"]},
                  overrides)
    (doc,) = render_yaml("calico", "installation.yaml.j2", v)
    return v, doc


@pytest.mark.parametrize("encapsulation", sorted(calico.ENCAPSULATIONS))
def test_installation_uses_the_chosen_encapsulation(encapsulation):
    v, inst = installation(kubeadm_ec2_calico_encapsulation=encapsulation)
    assert (inst["apiVersion"], inst["kind"], inst["metadata"]) == ("operator.tigera.io/v1", "Installation",
                                                                    {"name": "default"})
    net = inst["spec"]["calicoNetwork"]
    assert set(net) == {"bgp", "nodeAddressAutodetectionV4", "ipPools"}
    (pool,) = net["ipPools"]
    assert pool == {"name": "default-ipv4-ippool", "cidr": "192.168.0.0/16", "blockSize": 26,
                    "encapsulation": encapsulation, "natOutgoing": "Enabled", "nodeSelector": "all()"}
    # IPIP and unencapsulated routes are distributed by BGP; VXLAN needs none (felix programs the routes)
    assert net["bgp"] == ("Disabled" if encapsulation.startswith("VXLAN") else "Enabled")
    assert net["nodeAddressAutodetectionV4"] == {"kubernetes": "NodeInternalIP"}


def test_the_table_covers_exactly_what_the_operator_accepts():
    assert set(calico.ENCAPSULATIONS) == OPERATOR_ENCAPSULATIONS
    # the analyses use the same table, not copies of it
    assert sg.ENCAPSULATIONS is calico.ENCAPSULATIONS
    assert reachability.ENCAPSULATIONS is calico.ENCAPSULATIONS


@pytest.mark.parametrize("encapsulation, protocols, cross_subnet", [
    ("IPIP", {("4", None), ("tcp", 179)}, False),
    ("IPIPCrossSubnet", {("4", None), ("tcp", 179)}, True),
    ("VXLAN", {("udp", 4789)}, False),
    ("VXLANCrossSubnet", {("udp", 4789)}, True),
    ("None", {("tcp", 179)}, False),
])
def test_what_the_role_installs_is_what_sg_audit_checks(encapsulation, protocols, cross_subnet):
    v = installation(kubeadm_ec2_calico_encapsulation=encapsulation)[0]
    mode = v["calico_mode"]                       # through the kubeadm_ec2.cluster.calico_mode filter
    assert {sg.ENCAP_NEEDS[n][:2] for n in mode["needs"]} == protocols
    assert mode["cross_subnet"] is cross_subnet
    # the IPPool modes it produces read back as the same mode (what sg_audit infers from the cluster)
    pool = {"metadata": {"name": "p"}, "spec": {"ipipMode": mode["ipip_mode"], "vxlanMode": mode["vxlan_mode"]}}
    assert sg.encapsulation_from_ippools([pool])[0] == encapsulation


def test_pool_cidr_follows_the_contract_and_the_old_name():
    for overrides in ({"kubeadm_ec2_pod_cidr": "10.244.0.0/16"}, {"kubeadm_pod_subnet": "10.244.0.0/16"},
                      {"calico_ippool_cidr": "10.244.0.0/16"}):
        cidr = installation(**overrides)[1]["spec"]["calicoNetwork"]["ipPools"][0]["cidr"]
        assert ipaddress.ip_network(cidr) == ipaddress.ip_network("10.244.0.0/16"), overrides


def test_old_calico_encapsulation_name_still_chooses_the_mode():
    assert installation(calico_encapsulation="VXLAN")[1]["spec"]["calicoNetwork"]["ipPools"][0]["encapsulation"] == "VXLAN"


def test_validate_network_expects_the_installed_mode():
    validate = load_yaml("validate_network", "defaults", "main.yml")["validate_network_calico_encapsulation"]
    assert "kubeadm_ec2_calico_encapsulation" in validate
    v = role_vars("validate_network", {}, {"kubeadm_ec2_calico_encapsulation": "VXLANCrossSubnet"})
    assert v["validate_network_calico_encapsulation"] == "VXLANCrossSubnet"
    assert role_vars("validate_network")["validate_network_calico_encapsulation"] == "IPIP"


def test_no_role_keeps_its_own_mode_list():
    spec = load_yaml("calico", "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert "calico_encapsulation" not in spec
    assert set(load_yaml("calico", "vars", "main.yml")) == {"calico_mode", "calico_api_host"}


@pytest.mark.parametrize("value, ok", [("IPIP", True), ("VXLANCrossSubnet", True), ("IPIPCrossSubnet", True),
                                       ("None", True), ("vxlan", False), ("", False)])
def test_encapsulation_assert_names_the_variable(value, ok):
    problem = contract_problem(role_vars("cluster_defaults", {}, {"kubeadm_ec2_calico_encapsulation": value}))
    assert (problem is None) is ok
    if not ok:
        assert "kubeadm_ec2_calico_encapsulation" in problem


def test_calico_node_wait_is_bounded():
    task = task_by_name("calico", "install.yml", "Wait for calico-node to be ready on every node")
    v = installation()[0]
    assert expr(task["retries"], v) * task["delay"] == 600
    assert expr(task["until"][1].join(["{{ ", " }}"]), dict(
        calico_node_ds={"resources": [{"status": {"desiredNumberScheduled": 2}}]}, calico_expected_node_count=2)) is True
