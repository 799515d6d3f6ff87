"""Rendered Calico Installation: encapsulation from calico_encapsulation, CIDR = kubeadm pod subnet, and the
same encapsulation -> node-to-node protocol mapping as the security-group audit."""

import pytest
import yaml

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import sg
from tests.unit.roles._render import expr, load_yaml, render, role_vars, task_by_name

ENCAPSULATIONS = ["IPIP", "VXLAN", "VXLANCrossSubnet"]


def installation(**overrides):
    v = role_vars("calico", {"groups": {"control_plane": ["cp1"]}, "ansible_play_hosts_all": ["cp1", "w1"]},
                  overrides)
    docs = [d for d in yaml.safe_load_all(render("calico", "installation.yaml.j2", v)) if d is not None]
    assert len(docs) == 1
    return v, docs[0]


@pytest.mark.parametrize("encapsulation", ENCAPSULATIONS)
def test_installation_uses_the_chosen_encapsulation(encapsulation):
    v, inst = installation(calico_encapsulation=encapsulation)
    assert inst["apiVersion"] == "operator.tigera.io/v1"
    assert inst["kind"] == "Installation"
    assert inst["metadata"] == {"name": "default"}
    net = inst["spec"]["calicoNetwork"]
    assert set(net) == {"bgp", "nodeAddressAutodetectionV4", "ipPools"}
    (pool,) = net["ipPools"]
    assert pool == {"name": "default-ipv4-ippool", "cidr": "192.168.0.0/16", "blockSize": 26,
                    "encapsulation": encapsulation, "natOutgoing": "Enabled", "nodeSelector": "all()"}
    # IPIP routes are distributed by BGP; VXLAN modes need no BGP (felix programs the routes)
    assert net["bgp"] == ("Enabled" if encapsulation == "IPIP" else "Disabled")
    assert net["nodeAddressAutodetectionV4"] == {"kubernetes": "NodeInternalIP"}


def test_pool_cidr_follows_the_kubeadm_pod_subnet():
    inst = installation(kubeadm_pod_subnet="10.244.0.0/16")[1]
    assert inst["spec"]["calicoNetwork"]["ipPools"][0]["cidr"] == "10.244.0.0/16"


@pytest.mark.parametrize("encapsulation", ENCAPSULATIONS)
def test_encapsulation_needs_match_the_sg_audit(encapsulation):
    """What the calico role installs is what sg_audit checks the security group for."""
    v = installation(calico_encapsulation=encapsulation)[0]
    needs = v["calico_encapsulation_requirements"][encapsulation]["sg_needs"]
    assert tuple(needs) == sg.MODE_NEEDS[encapsulation]
    protocols = {sg.ENCAP_NEEDS[n][:2] for n in needs}
    expected = {"IPIP": {("4", None), ("tcp", 179)},
                "VXLAN": {("udp", 4789)},
                "VXLANCrossSubnet": {("udp", 4789)}}[encapsulation]
    assert protocols == expected
    assert encapsulation in sg.ENCAPSULATIONS


def test_validate_network_reads_the_same_variable_with_the_same_default():
    calico_default = load_yaml("calico", "defaults", "main.yml")["calico_encapsulation"]
    validate = load_yaml("validate_network", "defaults", "main.yml")["validate_network_calico_encapsulation"]
    assert "calico_encapsulation" in validate
    # unset: both fall back to the same encapsulation
    assert expr(validate, {}) == calico_default
    # set once (inventory group_vars): both follow it
    assert expr(validate, {"calico_encapsulation": "VXLAN"}) == "VXLAN"


def test_supported_encapsulations_and_argument_spec_choices_agree():
    v = installation()[0]
    spec = load_yaml("calico", "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert spec["calico_encapsulation"]["choices"] == v["calico_supported_encapsulations"] == ENCAPSULATIONS
    assert set(v["calico_encapsulation_requirements"]) == set(ENCAPSULATIONS)


@pytest.mark.parametrize("value, ok", [("IPIP", True), ("VXLANCrossSubnet", True), ("vxlan", False),
                                       ("IPIPCrossSubnet", False), ("None", False)])
def test_encapsulation_assert(value, ok):
    task = task_by_name("calico", "main.yml", "Stop if calico_encapsulation is not IPIP, VXLAN or VXLANCrossSubnet")
    v = installation()[0]
    v["calico_encapsulation"] = value
    assert all(expr("{{ %s }}" % cond, v) for cond in task["ansible.builtin.assert"]["that"]) is ok
    assert "calico_encapsulation" in task["name"]


def test_calico_node_wait_is_bounded():
    task = task_by_name("calico", "install.yml", "Wait for calico-node to be ready on every node")
    v = installation()[0]
    assert expr("{{ %s }}" % task["retries"][3:-3], v) * task["delay"] == 600
