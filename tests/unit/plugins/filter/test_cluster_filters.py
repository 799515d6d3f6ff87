"""The contract's filters (plugins/filter/cluster.py): derived DNS IP, CIDR overlap, the Calico mode table."""

import ipaddress

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.kubeadm_ec2.cluster.plugins.filter import cluster
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import calico


@pytest.mark.parametrize("cidr, expected", [
    ("10.96.0.0/12", "10.96.0.10"),          # kubeadm's default: kube-dns at 10.96.0.10
    ("10.100.0.0/16", "10.100.0.10"),
    ("172.20.0.0/24", "172.20.0.10"),
    ("10.96.5.7/12", "10.96.0.10"),          # host bits are ignored, like kubeadm does
    (" 10.96.0.0/12 ", "10.96.0.10"),
])
def test_cluster_dns_ip_is_the_tenth_address(cidr, expected):
    assert cluster.cluster_dns_ip(cidr) == expected
    assert ipaddress.ip_address(expected) in ipaddress.ip_network(cidr.strip(), strict=False)


@pytest.mark.parametrize("cidr, message", [
    ("10.96.0.0/29", "has no address number 10"),
    ("10.96.0.0/28", None),
    ("not-a-cidr", "is not a CIDR"),
    ("", "is not a CIDR"),
])
def test_cluster_dns_ip_refuses_what_cannot_hold_it(cidr, message):
    if message is None:
        assert cluster.cluster_dns_ip(cidr) == "10.96.0.10"
        return
    with pytest.raises(AnsibleFilterError, match=message):
        cluster.cluster_dns_ip(cidr)


@pytest.mark.parametrize("a, b, overlap", [
    ("192.168.0.0/16", "10.96.0.0/12", False),
    ("10.96.0.0/16", "10.96.0.0/12", True),
    ("10.0.0.0/8", "10.96.0.0/12", True),
    ("10.112.0.0/12", "10.96.0.0/12", False),
    ("10.96.0.10/32", "10.96.0.0/12", True),
    ("10.112.0.10/32", "10.96.0.0/12", False),
])
def test_cidrs_overlap(a, b, overlap):
    assert cluster.cidrs_overlap(a, b) is overlap
    assert cluster.cidrs_overlap(b, a) is overlap


def test_calico_mode_comes_from_the_one_table():
    for name in calico.ENCAPSULATIONS:
        got = cluster.calico_mode(name)
        assert got["name"] == name
        assert tuple(got["needs"]) == calico.MODES[name]["needs"]
        assert {k: v for k, v in got.items() if k not in ("name", "needs")} == \
            {k: v for k, v in calico.MODES[name].items() if k != "needs"}
    assert list(cluster.calico_modes([])) == list(calico.ENCAPSULATIONS)
    assert list(cluster.calico_modes(["VXLAN"])) == ["VXLAN"]


def test_unknown_mode_names_the_valid_ones():
    with pytest.raises(AnsibleFilterError, match="unknown Calico encapsulation 'vxlan'; valid: IPIP, IPIPCrossSubnet, "
                                                 "VXLAN, VXLANCrossSubnet, None"):
        cluster.calico_mode("vxlan")


@pytest.mark.parametrize("ipip, vxlan, expected", [
    ("Always", "Never", "IPIP"), ("CrossSubnet", None, "IPIPCrossSubnet"), (None, "Always", "VXLAN"),
    ("Never", "CrossSubnet", "VXLANCrossSubnet"), (None, None, "None"), ("Always", "Always", "VXLAN"),
    ("Bogus", None, "None"),
])
def test_pool_modes_read_back(ipip, vxlan, expected):
    assert calico.from_pool_modes(ipip, vxlan) == expected


def test_filters_are_registered():
    assert set(cluster.FilterModule().filters()) == {
        "cluster_dns_ip", "cidrs_overlap", "calico_mode", "calico_modes", "node_architectures"}


def test_node_architectures_prefers_facts_then_the_inventory_and_leaves_out_the_unknown():
    hostvars = {"a": {"ansible_facts": {"architecture": "aarch64"}, "kubeadm_ec2_arch": "amd64"},
                "b": {"kubeadm_ec2_arch": "amd64"},
                "c": {"ansible_facts": {}},
                "d": {"ansible_facts": {"architecture": ""}, "kubeadm_ec2_arch": "arm64"}}
    assert cluster.node_architectures(["a", "b", "c", "d"], hostvars) == [
        {"name": "a", "architecture": "aarch64"}, {"name": "b", "architecture": "amd64"},
        {"name": "d", "architecture": "arm64"}]
    assert cluster.node_architectures([], hostvars) == []
