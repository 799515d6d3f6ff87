"""validate_report's gather(): every check host's validate_results merged, node_reachability and dns analysed from
the nodes' reports as validate_plan.analyses says, a result recorded before the node play kept; validate_record's
plan merge keeps every check's analyses entry."""

from ansible_collections.kubeadm_ec2.cluster.plugins.action import validate_record
from ansible_collections.kubeadm_ec2.cluster.plugins.action.validate_report import collect_checks, gather

ORDER = ["sg_audit", "node_reachability", "dns", "image_arch"]
NODES = {"node1": "10.0.0.11", "node2": "10.0.0.12"}


def passed(msg):
    return {"status": "passed", "msg": msg, "findings": [], "evidence": {}}


def args(**kw):
    out = dict(checks={}, check_hosts=[], jobs=[], plan={}, node_hosts=[], node_result_var="validate_node_result",
               enabled=list(ORDER))
    out.update(kw)
    return out


def plan(**analyses):
    return {"reachability": {"run_id": "1", "nodes": NODES, "control_planes": ["node1"], "typha": False,
                             "ephemeral_port": 40123}, "analyses": analyses}


def test_check_hosts_results_are_merged_over_localhosts():
    hostvars = {"validate_check_sg_audit": {"validate_results": {"sg_audit": passed("audit")}},
                "validate_check_image_arch": {"validate_results": {"image_arch": passed("images")}}}
    out = gather({"hostvars": hostvars}, args(checks={"sg_audit": passed("old")},
                                              check_hosts=sorted(hostvars)))
    assert out["sg_audit"]["msg"] == "audit" and out["image_arch"]["msg"] == "images"
    checks = collect_checks(ORDER, ORDER, out)
    # nothing analysed without analyses: those checks left no result, and say so
    assert checks["dns"]["status"] == "failed" and "left no result" in checks["dns"]["msg"]


def test_node_reachability_is_analysed_from_the_nodes_reports():
    # no node reported: each one is NODE_UNREACHABLE, named
    out = gather({"hostvars": {"node1": {}, "node2": {}}},
                 args(plan=plan(node_reachability={"calico_encapsulation": "IPIP", "security_group_id": "sg-1"})))
    res = out["node_reachability"]
    assert res["status"] == "failed"
    assert sorted(f["details"]["node"] for f in res["findings"] if f["id"] == "NODE_UNREACHABLE") == ["node1", "node2"]
    assert res["evidence"]["nodes"] == NODES and res["evidence"]["control_planes"] == ["node1"]
    # each node's subnet comes from its host variable subnet_id, as for the role's reachability_report
    out = gather({"hostvars": {"node1": {"subnet_id": "subnet-a"}, "node2": {"subnet_id": "subnet-b"}}},
                 args(plan=plan(node_reachability={"calico_encapsulation": "IPIPCrossSubnet"})))
    assert out["node_reachability"]["evidence"]["subnets"] == {"node1": "subnet-a", "node2": "subnet-b"}


def test_a_result_recorded_before_the_node_play_is_kept():
    failure = {"status": "failed", "msg": "validate_network_nodes needs a private_ip_address", "findings": [],
               "evidence": {}}
    out = gather({"hostvars": {}}, args(checks={"node_reachability": failure},
                                        plan=plan(node_reachability={"calico_encapsulation": "IPIP"})))
    assert out["node_reachability"] is failure
    # a check that is not enabled is not analysed
    out = gather({"hostvars": {}}, args(enabled=["sg_audit"], plan=plan(node_reachability={})))
    assert "node_reachability" not in out


def job(name, result, timeout=65):
    """One result of validate.yml's job_wait loop over validate_plan.jobs (dict2items)."""
    return dict(result, item={"key": name, "value": {"job": {"ansible_job_id": "j-" + name}, "timeout": timeout}})


def test_dns_combines_cluster_reads_nodes_and_the_probe_pods_job():
    pods = {"pod_results": [{"node": "node1", "pod": "p1", "outcome": "timeout", "detail": "did not finish within 5s",
                             "results": [], "image": "busybox"}], "finished": True, "job_failed": False}
    hostvars = {"node1": {}}
    dns = {"cluster_result": {"cluster_state": {}, "findings": []}, "pods": True, "timeout": 1.5,
           "dns_namespace": "kube-system", "probe_namespace": "default"}
    out = gather({"hostvars": hostvars}, args(jobs=[job("dns_pods", pods)], node_hosts=["node1"],
                                              plan={"analyses": {"dns": dns}}))
    assert out["dns"]["evidence"]["pod_results"] == pods["pod_results"]
    assert out["dns"]["status"] == "failed"  # the pod timed out
    # pods: false (the API is unusable, or validate_dns_pod_probe is off): the pods are not read
    out = gather({"hostvars": hostvars}, args(jobs=[job("dns_pods", pods)], node_hosts=["node1"],
                                              plan={"analyses": {"dns": dict(dns, pods=False)}}))
    assert out["dns"]["evidence"]["pod_results"] == []
    # probe pods that did not finish within their bound fail the check and say so
    late = {"finished": False, "ansible_job_id": "j-dns_pods", "msg": "job j-dns_pods did not finish within 65s"}
    out = gather({"hostvars": hostvars}, args(jobs=[job("dns_pods", late)], node_hosts=["node1"],
                                              plan={"analyses": {"dns": dns}}))
    assert out["dns"]["status"] == "failed" and "did not finish within 65s" in out["dns"]["msg"]


def test_a_background_job_named_after_a_check_becomes_its_result():
    audit = {"status": "failed", "msg": "sg_audit: 1 error", "findings": [{"id": "SG_NO_SELF_REFERENCE",
             "severity": "error", "message": "m"}], "evidence": {"groups": ["sg-1"]}, "finished": True}
    late = {"finished": False, "ansible_job_id": "j-image_arch"}
    out = gather({"hostvars": {}}, args(jobs=[job("sg_audit", audit), job("image_arch", late, timeout=125)]))
    assert out["sg_audit"]["status"] == "failed"
    assert [f["id"] for f in out["sg_audit"]["findings"]] == ["SG_NO_SELF_REFERENCE"]
    assert out["sg_audit"]["evidence"] == {"groups": ["sg-1"]}
    # a job that did not finish is a failed check naming its bound and job
    assert out["image_arch"]["status"] == "failed"
    assert "did not finish within 125s (job j-image_arch)" in out["image_arch"]["msg"]
    # a result recorded before (the check could not start) stays; a check not enabled takes no job
    kept = passed("recorded before")
    out = gather({"hostvars": {}}, args(checks={"sg_audit": kept}, enabled=["sg_audit"],
                                        jobs=[job("sg_audit", audit), job("image_arch", late)]))
    assert out == {"sg_audit": kept}


def test_record_merges_every_checks_analyses_entry():
    shared = {"reachability": {"run_id": "1"}, "analyses": {"node_reachability": {"security_group_id": "sg-1"}}}
    out = validate_record.merge_plan(shared, {"analyses": {"dns": {"timeout": 2.0}}, "reachability": {"run_id": "2"}})
    assert out["analyses"] == {"node_reachability": {"security_group_id": "sg-1"}, "dns": {"timeout": 2.0}}
    assert out["reachability"] == {"run_id": "2"}          # other keys are replaced
    assert shared["analyses"] == {"node_reachability": {"security_group_id": "sg-1"}}   # the input is not changed
    assert validate_record.merge_plan(None, {"become": True}) == {"become": True}
    # every check's background job is kept, as its analyses entry is
    out = validate_record.merge_plan({"jobs": {"sg_audit": {"timeout": 125}}}, {"jobs": {"dns_pods": {"timeout": 65}}})
    assert out["jobs"] == {"sg_audit": {"timeout": 125}, "dns_pods": {"timeout": 65}}
