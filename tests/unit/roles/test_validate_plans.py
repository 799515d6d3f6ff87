"""Play 1 of playbooks/validate.yml plans each check in one task, or records why it cannot run: the
``stop`` and ``plan`` arguments of those validate_record tasks, rendered by ansible-core from the roles'
real defaults and vars."""

import pytest

from tests.unit.roles._render import assert_holds, expr, role_vars, task_by_name

NODES = {"node1": "10.0.0.11", "node2": "10.0.0.12", "node3": "10.0.0.13"}
REACH = "Plan the node-to-node probes (run id, nodes, ports, windows) or record why the matrix cannot run"
DNS = "Plan the DNS host path and the DNS analysis (or record why the dns check cannot run)"


def args(role, task_file, name, variables):
    task = task_by_name(role, task_file, name)
    return dict((k, expr(v, variables)) for k, v in task["kubeadm_ec2.cluster.validate_record"].items())


def network(nodes, **extra):
    return role_vars("validate_network", {}, dict({"validate_network_nodes": nodes}, **extra))


def test_reachability_plan_holds_the_nodes_and_the_packet_timing():
    out = args("validate_network", "reachability_plan.yml", REACH, network(NODES))
    assert out["check"] == "node_reachability" and out["stop"] == ""
    reach = out["plan"]["reachability"]
    assert reach["nodes"] == NODES and len(reach["run_id"]) == 10
    # 3 nodes: the window is its floor (1.2 s), probes are re-sent 10 times a second
    assert reach["packet_window"] == 1.2 and reach["packet_interval"] == 0.1


def test_packet_timing_grows_with_the_cluster():
    many = dict(("node%d" % i, "10.0.%d.%d" % (i // 200, i % 200 + 10)) for i in range(50))
    reach = args("validate_network", "reachability_plan.yml", REACH, network(many))["plan"]["reachability"]
    assert reach["packet_window"] == 5.0 and reach["packet_interval"] == 0.2


@pytest.mark.parametrize("nodes, named", [
    (dict(NODES, node2=""), "missing for: node2"),
    ({}, "missing for: every host: the group has none"),
])
def test_reachability_stops_naming_the_hosts_without_a_private_ip(nodes, named):
    out = args("validate_network", "reachability_plan.yml", REACH, network(nodes))
    assert "private_ip_address" in out["stop"] and named in out["stop"]


def dns(**extra):
    base = {"validate_dns_cluster_result": {"service_ip": "10.96.0.10", "endpoints": [{"ip": "192.168.1.5", "node": "node1"}]}}
    return role_vars("validate_dns", {}, dict(base, **extra))


def test_dns_plan_holds_the_host_path_and_the_analysis():
    out = args("validate_dns", "validate_plan.yml", DNS, dns())
    assert out["check"] == "dns" and out["stop"] == ""
    assert out["plan"]["dns"]["service_ip"] == "10.96.0.10"
    assert out["plan"]["dns"]["endpoints"] == [{"ip": "192.168.1.5", "node": "node1"}]
    analysis = out["plan"]["analyses"]["dns"]
    assert analysis["pods"] is True and analysis["cluster_result"]["service_ip"] == "10.96.0.10"


def test_dns_plan_without_the_host_path_plans_only_the_analysis():
    out = args("validate_dns", "validate_plan.yml", DNS, dns(validate_dns_host_path=False))
    assert out["stop"] == "" and "dns" not in out["plan"] and "dns" in out["plan"]["analyses"]


@pytest.mark.parametrize("extra, says", [
    ({"validate_dns_cluster_state": False, "validate_dns_host_path": False, "validate_dns_pod_probe": False},
     "validate_dns_cluster_state, validate_dns_host_path or validate_dns_pod_probe"),
    ({"validate_dns_cluster_state": False, "validate_dns_endpoints": []}, "set validate_dns_endpoints"),
])
def test_dns_stops_naming_the_variables_to_set(extra, says):
    assert says in args("validate_dns", "validate_plan.yml", DNS, dns(**extra))["stop"]


def test_dns_endpoints_given_by_hand_need_no_cluster_reads():
    out = args("validate_dns", "validate_plan.yml", DNS,
               dns(validate_dns_cluster_state=False, validate_dns_endpoints=[{"ip": "192.168.2.7", "node": "node2"}]))
    assert out["stop"] == "" and out["plan"]["dns"]["endpoints"] == [{"ip": "192.168.2.7", "node": "node2"}]


def test_the_role_on_its_own_stops_with_the_same_message():
    task = task_by_name("validate_dns", "main.yml", "Stop if no path of the DNS check is enabled")
    off = dns(validate_dns_cluster_state=False, validate_dns_host_path=False, validate_dns_pod_probe=False)
    assert not assert_holds(task, off) and assert_holds(task, dns())
    assert expr(task["ansible.builtin.assert"]["fail_msg"], off) == args("validate_dns", "validate_plan.yml", DNS, off)["stop"]
