"""A module started with async on the controller runs straight from the collection
(plugins/plugin_utils/local_async.py), not through async_wrapper: the same result as in the
foreground and through async_wrapper, bounded by its async limit, with no payload left behind."""

import glob
import os
import time

import pytest

from tests.fakes.k8s_api import FakeKubeAPI
from tests.support.ansible import localhost_inventory, run_playbook
from tests.support.lifecycle import SilentServer

VOLATILE = ("action", "elapsed", "ansible_job_id", "invocation", "changed", "finished", "job_failed", "failed", "started",
            "results_file", "_ansible_no_log")


@pytest.fixture()
def api():
    fake = FakeKubeAPI().start()
    fake.kubeconfig = fake.write_kubeconfig()
    yield fake
    fake.stop()


def play(kubeconfig, ways, tmp, limit=60, api_timeout=10, **extra):
    """Run playbooks/local_async.yml; returns (result, {way: the way's result}) with payloads kept in
    ``tmp``/remote."""
    env = {"ANSIBLE_KEEP_REMOTE_FILES": "1", "ANSIBLE_REMOTE_TEMP": os.path.join(tmp, "remote"),
           "ANSIBLE_ASYNC_DIR": os.path.join(tmp, "async")}
    result = run_playbook("local_async.yml", localhost_inventory(), dict(extra, **{
        "kubeconfig": kubeconfig, "ways": ways, "limit": limit, "api_timeout": api_timeout}), env=env, timeout=120)
    assert result.returncode == 0, result.output[-3000:]
    out = {}
    for way, task in (("warm", "Start the job host"), ("job_hosts", "Count the job hosts")):
        res = result.results_of(task).get("localhost", {})
        if res and not res.get("skipped"):
            out[way] = res
    fg = result.results_of("Read in the foreground").get("localhost", {})
    if not fg.get("skipped"):
        out["fg"] = fg
    waited = result.results_of("Wait for the jobs").get("localhost", {}).get("results", [])
    for way, res in zip([w for w in ("bg", "wrapped") if w in ways], waited):
        out[way] = res
    return result, out


def stable(res):
    return {k: v for k, v in res.items() if k not in VOLATILE and not k.startswith("ansible_loop")
            and k not in ("item", "_ansible_item_label", "_ansible_ignore_errors")}


def payloads(tmp):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(tmp, "remote", "*", "AnsiballZ_*")))


def test_background_result_is_the_foreground_result(api, tmp_path):
    tmp = str(tmp_path)
    _result, out = play(api.kubeconfig, ["fg", "bg", "wrapped"], tmp)
    assert out["bg"]["finished"] and out["wrapped"]["finished"]
    assert stable(out["bg"]) == stable(out["fg"]) == stable(out["wrapped"])
    assert out["bg"]["job_failed"] is out["wrapped"]["job_failed"] is bool(out["fg"].get("failed"))
    assert stable(out["fg"]), out["fg"]


def test_only_the_task_with_an_environment_goes_through_ansible_cores_payload(api, tmp_path):
    tmp = str(tmp_path)
    play(api.kubeconfig, ["bg"], tmp)
    assert payloads(tmp) == []
    play(api.kubeconfig, ["wrapped"], tmp)
    assert payloads(tmp) == ["AnsiballZ_dns_cluster_info.py"]
    # the job files of both are gone after job_wait, the runner's argument directory too, and the job host
    # (plugins/plugin_utils/job_host.py) ends, with its directory, once its ansible-playbook process is gone
    deadline = time.monotonic() + 5
    while os.listdir(os.path.join(tmp, "async")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.listdir(os.path.join(tmp, "async")) == []


def test_a_job_past_its_async_limit_is_killed_and_says_so(api, tmp_path):
    tmp = str(tmp_path)
    with SilentServer() as silent:
        kubeconfig = api.write_kubeconfig(os.path.join(tmp, "kubeconfig"), server="http://127.0.0.1:%d" % silent.port)
        result, out = play(kubeconfig, ["bg"], tmp, limit=2, api_timeout=30)
    assert out["bg"]["finished"] and out["bg"]["job_failed"], out["bg"]
    assert out["bg"]["msg"] == "the module did not finish within its time limit of 2.0s and was killed"
    assert result.seconds < 30


def test_a_host_started_first_loads_the_module_and_runs_its_later_job(api, tmp_path):
    # job_host_start (validate.yml's first task): the host it starts is the one the background task uses
    # (one host directory while the job runs), and the job's result is the foreground's
    tmp = str(tmp_path)
    _result, out = play(api.kubeconfig, ["warm", "fg", "bg"], tmp)
    assert out["warm"]["preloaded"] == ["ansible_collections.kubeadm_ec2.cluster.plugins.modules.dns_cluster_info"]
    assert out["warm"]["changed"] is False and not out["warm"].get("failed")
    assert out["job_hosts"]["matched"] == 1, out["job_hosts"]
    assert out["bg"]["finished"] and stable(out["bg"]) == stable(out["fg"])


def test_job_host_start_names_a_bad_module_and_says_when_there_is_nothing_to_start(api, tmp_path):
    tmp = str(tmp_path)
    _result, out = play(api.kubeconfig, ["warm"], tmp, warm_modules=["kubeadm_ec2.cluster.no_such_module"])
    assert out["warm"]["failed"] is True
    assert out["warm"]["msg"].startswith("job_host_start: modules: 'kubeadm_ec2.cluster.no_such_module' is not a module")
    # with an environment the jobs go through ansible-core's own payload: no host starts
    _result, out = play(api.kubeconfig, ["warm"], tmp, warm_environment={"KUBEADM_EC2_TEST": "1"})
    assert out["warm"]["preloaded"] == [] and "nothing to start" in out["warm"]["msg"]
    assert out["job_hosts"]["matched"] == 0
