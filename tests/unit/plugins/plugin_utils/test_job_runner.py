"""The controller's background job runner (plugins/plugin_utils/job_runner.py): the job file it leaves
is what async_status and job_wait read, a module past its time limit is killed with its children, and
the private directory of the arguments is always removed."""

import json
import os
import sys
import time

import pytest

from ansible_collections.kubeadm_ec2.cluster.plugins.plugin_utils import job_runner
from ansible_collections.kubeadm_ec2.cluster.plugins.plugin_utils.local_async import import_name


def private_args(tmp_path):
    d = tmp_path / "args"
    d.mkdir(mode=0o700)
    args = d / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"x": 1}}))
    return str(args)


def job(tmp_path, cmd, limit=10.0):
    path = str(tmp_path / "j1.123")
    args = private_args(tmp_path)
    job_runner.run(path, limit, args, cmd)
    assert not os.path.exists(os.path.dirname(args))
    with open(path) as fh:
        return json.load(fh)


def test_the_module_result_is_the_job_result(tmp_path):
    out = job(tmp_path, [sys.executable, "-c", "print('noise'); print('{\"changed\": false, \"msg\": \"ok\"}')"])
    assert out == {"changed": False, "msg": "ok", "ansible_job_id": "j1.123", "finished": 1}


def test_output_without_a_result_is_a_failure_with_the_output(tmp_path):
    out = job(tmp_path, [sys.executable, "-c", "import sys; print('Traceback: boom'); sys.exit(3)"])
    assert out["failed"] is True and out["rc"] == 3 and out["finished"] == 1
    assert out["msg"] == "the module printed no JSON result (rc=3)" and "boom" in out["module_stdout"]


def test_a_module_past_its_limit_is_killed_with_its_children(tmp_path):
    pidfile = tmp_path / "child.pid"
    hang = ("import os, subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; "
            "time.sleep(60)']); open(%r, 'w').write(str(p.pid)); time.sleep(60)" % str(pidfile))
    start = time.monotonic()
    out = job(tmp_path, [sys.executable, "-c", hang], limit=1.0)
    assert time.monotonic() - start < 10
    assert out["failed"] is True and "did not finish within its time limit of 1.0s" in out["msg"]
    child = int(pidfile.read_text())
    time.sleep(0.2)
    try:
        os.kill(child, 0)
        alive = open("/proc/%d/stat" % child).read().split()[2] != "Z"
    except OSError:
        alive = False
    assert not alive


def test_a_command_that_cannot_start(tmp_path):
    out = job(tmp_path, [str(tmp_path / "no-such-python")])
    assert out["failed"] is True and out["msg"].startswith("the module could not start:")


def test_usage():
    assert job_runner.main(["only", "two"]) == 2


def test_import_name_of_a_collection_module():
    root = os.sep + os.path.join("x", "collections")
    path = os.path.join(root, "ansible_collections", "kubeadm_ec2", "cluster", "plugins", "modules", "sg_audit.py")
    assert import_name(path) == (root, "ansible_collections.kubeadm_ec2.cluster.plugins.modules.sg_audit")
    assert import_name("/usr/lib/python3/dist-packages/ansible/modules/ping.py") is None


def test_a_started_job_is_handed_to_the_report():
    from ansible_collections.kubeadm_ec2.cluster.plugins.plugin_utils.local_async import hand_job

    start = {"started": 1, "finished": 0, "ansible_job_id": "j1.2", "results_file": "/x/j1.2", "changed": False}
    out = hand_job(start, {"jobs": {"sg_audit": {"timeout": 125}}, "become": True}, "image_arch", 60, "cp1", True)
    plan = out["ansible_facts"]["validate_plan"]
    assert plan["become"] is True and plan["jobs"]["sg_audit"] == {"timeout": 125}
    assert plan["jobs"]["image_arch"] == {"job": start, "timeout": 65, "delegate": "cp1", "become": True}
    # the task's own result is kept, and the job entry holds no copy of the facts
    assert out["ansible_job_id"] == "j1.2" and "ansible_facts" not in plan["jobs"]["image_arch"]["job"]
    assert hand_job(start, None, "dns_pods", 30)["ansible_facts"]["validate_plan"]["jobs"]["dns_pods"]["delegate"] == "localhost"


def test_a_start_that_failed_is_handed_over_as_a_finished_failure():
    from ansible_collections.kubeadm_ec2.cluster.plugins.action.validate_record import normalise
    from ansible_collections.kubeadm_ec2.cluster.plugins.plugin_utils.local_async import hand_job

    failed = {"failed": True, "msg": "async_wrapper: no python on cp1"}
    out = hand_job(failed, {}, "image_arch", 60, "cp1", True)
    # the task succeeds (ansible-core would drop the facts of a failed one) and says why
    assert "failed" not in out and out["start_failed"] is True and "no python on cp1" in out["msg"]
    job = out["ansible_facts"]["validate_plan"]["jobs"]["image_arch"]["job"]
    assert job == failed
    # what the report makes of it: the check failed, with the start's message
    check = normalise(dict(job, job_failed=True))
    assert check["status"] == "failed" and check["msg"] == "async_wrapper: no python on cp1"


@pytest.mark.parametrize("stop, msg, ids", [
    ("Stop: set validate_images_images", "Stop: set validate_images_images", []),
    ({"failed": True, "msg": "Kubernetes API https://cp:6443 does not answer", "findings": [{"id": "API_UNREACHABLE"}]},
     "Kubernetes API https://cp:6443 does not answer", ["API_UNREACHABLE"]),
])
def test_a_stopped_check_is_handed_over_with_its_reason_and_findings(stop, msg, ids):
    from ansible_collections.kubeadm_ec2.cluster.plugins.action.validate_record import normalise
    from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.checks import stop_result
    from ansible_collections.kubeadm_ec2.cluster.plugins.plugin_utils.local_async import hand_job

    result = stop_result(stop)
    assert result["failed"] is True and result["msg"] == msg
    out = hand_job(result, {}, "image_arch", 60, stopped=True)
    # a reason known before the start is no surprise: no warning, the task says why
    assert "warnings" not in out and out["start_failed"] is True and msg in out["msg"]
    check = normalise(dict(out["ansible_facts"]["validate_plan"]["jobs"]["image_arch"]["job"], job_failed=True))
    assert check["status"] == "failed" and check["msg"] == msg
    assert [f["id"] for f in check["findings"]] == ids
    # a start that failed unexpectedly still warns
    assert hand_job(result, {}, "image_arch", 60)["warnings"]
