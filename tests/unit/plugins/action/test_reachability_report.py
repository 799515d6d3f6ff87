"""reachability_report (the action plugin): each node's subnet reaches the analysis, from the explicit
``subnets`` option or from the nodes' host variable ``subnet_id`` (what the aws_ec2 inventory sets).

A CrossSubnet mode must not report a blocked encapsulation between two nodes of one subnet as an
error (that traffic is routed natively there); only a node whose subnet is not known counts as crossing.
"""

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.action import reachability_report as rr
from tests.unit.plugins.module_utils.test_reachability import NODES, _listen_report, _probe_report

# cp1 and w2 share subnet-a, w1 is alone in subnet-b
SUBNETS = {"cp1": "subnet-a", "w1": "subnet-b", "w2": "subnet-a"}
ALL_PAIRS = set((a, b) for a in NODES for b in NODES if a != b)
CROSSING = set((a, b) for a, b in ALL_PAIRS if SUBNETS[a] != SUBNETS[b])


def _results(blocked):
    """{node: its registered node_probe result} with ``blocked`` checks dropped between every pair."""
    out = {}
    for name in NODES:
        rep = dict(_probe_report(name, blocked), **_listen_report(name, blocked))
        rep["seconds"] = 1.0
        out[name] = {"changed": False, "reachability": rep}
    return out


def _args(**kw):
    args = dict(nodes=NODES, control_planes=["cp1"], results=_results(("vxlan",)), result_var="validate_node_result",
                typha=False, ephemeral_port=40123, calico_encapsulation="VXLANCrossSubnet", security_group_id="sg-1",
                subnets=None, subnet_var="subnet_id", fail_on_findings=True)
    args.update(kw)
    return args


def _error_pairs(res):
    return set((f["details"]["src"], f["details"]["dst"]) for f in res["findings"] if f["severity"] == "error")


@pytest.mark.parametrize("mode,subnets,expected", [
    # the subnets known: only the pairs crossing subnets need VXLAN
    ("VXLANCrossSubnet", SUBNETS, CROSSING),
    # the same nodes without subnets: every pair counts as crossing (conservative, and said so)
    ("VXLANCrossSubnet", None, ALL_PAIRS),
    ("VXLANCrossSubnet", {}, ALL_PAIRS),
    # plain VXLAN encapsulates between every pair whatever the subnets
    ("VXLAN", SUBNETS, ALL_PAIRS),
    # every node in one subnet: VXLANCrossSubnet never encapsulates, a blocked 4789 is only a warning
    ("VXLANCrossSubnet", {"cp1": "s", "w1": "s", "w2": "s"}, set()),
])
def test_subnets_decide_which_pairs_need_the_encapsulation(mode, subnets, expected):
    res, failed = rr.analyse(_args(calico_encapsulation=mode, subnets=subnets))
    assert _error_pairs(res) == expected
    assert failed is bool(expected)
    assert res["evidence"]["subnets"] == (subnets or {})
    warnings = [f for f in res["findings"] if f["severity"] == "warning"]
    if expected != ALL_PAIRS:
        assert len(warnings) == 1
        assert "not needed by Calico encapsulation %s" % mode in warnings[0]["observed"]
        assert sorted(warnings[0]["details"]["pairs"]) == sorted("%s->%s" % p for p in ALL_PAIRS - expected)


def test_ipip_cross_subnet_same_subnet_pair_needs_no_ipip():
    """IPIPCrossSubnet with IP protocol 4 dropped: no error between cp1 and w2 (one subnet)."""
    res, _failed = rr.analyse(_args(calico_encapsulation="IPIPCrossSubnet", results=_results(("ipip",)),
                                    subnets=SUBNETS))
    errs = _error_pairs(res)
    assert errs and errs <= CROSSING
    assert not errs & {("cp1", "w2"), ("w2", "cp1")}
    without, _f = rr.analyse(_args(calico_encapsulation="IPIPCrossSubnet", results=_results(("ipip",)), subnets={}))
    # without the subnets the same-subnet pair's probed direction is an error too
    assert _error_pairs(without) - errs
    assert _error_pairs(without) - errs <= {("cp1", "w2"), ("w2", "cp1")}


def test_message_names_the_nodes_whose_subnet_is_unknown():
    res, _failed = rr.analyse(_args(subnets={"cp1": "subnet-a", "w1": "", "w2": None}))
    assert res["evidence"]["subnets"] == {"cp1": "subnet-a"}
    assert ("subnet unknown for w1, w2 (host variable subnet_id): VXLANCrossSubnet counts their pairs as crossing "
            "subnets") in res["msg"]
    # a mode that does not care about subnets says nothing about them
    res, _failed = rr.analyse(_args(calico_encapsulation="VXLAN", subnets={}))
    assert "subnet unknown" not in res["msg"]


class _HostVars(dict):
    """hostvars as the action plugin sees them: host -> that host's variables."""


def test_subnets_default_to_the_nodes_host_variable():
    task_vars = {"hostvars": _HostVars(
        cp1={"subnet_id": "subnet-a"}, w1={"subnet_id": "subnet-b"}, w2={"subnet_id": "subnet-a"})}
    assert rr.host_results(task_vars, list(NODES), "subnet_id") == SUBNETS
    # a host missing from hostvars, or without the variable, has no subnet
    task_vars["hostvars"].pop("w2")
    task_vars["hostvars"]["w1"] = {}
    assert rr.node_subnets(NODES, rr.host_results(task_vars, list(NODES), "subnet_id")) == {"cp1": "subnet-a"}


def test_registered_results_are_read_as_stored_from_ansibles_own_hostvars():
    # the real HostVars of ansible-core, with a result registered the way a task registers it
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.hostvars import HostVars
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources="cp1,w1,")
    variables = VariableManager(loader=loader, inventory=inventory)
    result = {"node": "cp1", "reachability": {"sent": [["w1", "tcp/10250", 1, True, 0.1, 0.1]]},
              "msg": "a {{ brace }} that is data, not a template"}
    variables.set_nonpersistent_facts("cp1", {"validate_node_result": result})
    variables.set_host_variable("w1", "subnet_id", "subnet-b")
    task_vars = {"hostvars": HostVars(inventory=inventory, variable_manager=variables, loader=loader)}
    raw = rr.host_results(task_vars, ["cp1", "w1", "gone"], "validate_node_result", registered=True)
    assert raw == {"cp1": result, "w1": None, "gone": None}
    # the same values as the templating read, without templating the result again
    assert rr.host_results(task_vars, ["cp1"], "validate_node_result") == {"cp1": result}
    assert rr.host_results(task_vars, ["w1"], "subnet_id") == {"w1": "subnet-b"}
