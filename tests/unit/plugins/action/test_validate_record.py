"""validate_record's one step: a check's plan merged into validate_plan, or, with stop, the check recorded
as failed with that message (and nothing planned); a registered result recorded as the check's result."""

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.kubeadm_ec2.cluster.plugins.action.validate_record import record

PLAN = {"reachability": {"run_id": "1"}, "analyses": {"node_reachability": {"calico_encapsulation": "IPIP"}}}


def test_an_empty_stop_merges_the_plan():
    facts, check = record({"check": "node_reachability", "stop": "", "plan": PLAN},
                          {"validate_plan": {"analyses": {"dns": {"timeout": 2.0}}}})
    assert check is None and "validate_results" not in facts
    assert facts["validate_plan"]["reachability"] == {"run_id": "1"}
    assert set(facts["validate_plan"]["analyses"]) == {"dns", "node_reachability"}


def test_a_stop_records_the_check_as_failed_and_plans_nothing():
    facts, check = record({"check": "dns", "stop": "Stop: set validate_dns_endpoints", "plan": PLAN},
                          {"validate_results": {"sg_audit": {"status": "passed"}}})
    assert "validate_plan" not in facts
    assert check["status"] == "failed" and check["msg"] == "Stop: set validate_dns_endpoints"
    assert facts["validate_results"]["dns"] == check and facts["validate_results"]["sg_audit"]["status"] == "passed"


def test_a_registered_result_becomes_the_check_result():
    facts, check = record({"check": "image_arch", "result": {"failed": True, "msg": "API unreachable", "findings": []},
                           "stop": "", "plan": None}, {})
    assert check["status"] == "failed" and facts["validate_results"]["image_arch"]["msg"] == "API unreachable"


@pytest.mark.parametrize("args", [
    {"stop": "why", "plan": None},                                   # a stop must name its check
    {"plan": None, "stop": ""},                                      # nothing to record
    {"check": "dns", "result": {"msg": "x"}, "plan": PLAN, "stop": ""},  # a result and a plan at once
])
def test_bad_arguments_fail_the_task(args):
    with pytest.raises(AnsibleActionFail):
        record(args, {})
