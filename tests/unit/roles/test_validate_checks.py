"""playbooks/vars/validate.yml: the paths check is on by default when validate_paths is non-empty, and off
(no controller host, no task) when it is empty; validate_checks still decides when it is set. The modules the
job host loads first (validate_background_modules) are the ones the checks' start files run in the background."""

import os

import pytest

from tests.unit.roles._render import BASE, LOADER, ROOT, Vars, _trusted

VARS = LOADER.load_from_file(os.path.join(ROOT, "playbooks", "vars", "validate.yml"), trusted_as_template=True)
ALL = ["sg_audit", "node_reachability", "dns", "image_arch", "paths"]
PATH = {"from": {"namespace": "shop", "selector": {"app": "marketplace"}}, "to": "recommendations:50051"}


@pytest.mark.parametrize("extra,expected", [
    ({}, ALL[:4]),                                         # no paths to judge: off
    ({"validate_paths": []}, ALL[:4]),
    ({"validate_paths": [PATH]}, ALL),                     # paths to judge: on, last in the report order
    ({"validate_paths": [PATH], "validate_checks": ["dns"]}, ["dns"]),
    ({"validate_checks": ["paths"]}, ["paths"]),           # asked for by name: the role reports it has nothing to do
])
def test_paths_on_by_default_only_with_paths(extra, expected):
    v = Vars([BASE, VARS, _trusted(extra)])
    assert v["validate_check_names"] == ALL
    assert list(v["validate_enabled"]) == expected


def _background_modules(path):
    """The collection modules a task file (and the files it imports) starts with ``async``, in order."""
    out = []
    for task in LOADER.load_from_file(path) or []:
        if "ansible.builtin.import_tasks" in task:
            out += _background_modules(os.path.join(os.path.dirname(path), task["ansible.builtin.import_tasks"]))
        elif "async" in task:
            out += [key for key in task if key.startswith("kubeadm_ec2.cluster.")]
    return out


def test_the_preloaded_modules_are_the_ones_the_start_files_run_in_the_background():
    v = Vars([BASE, VARS])
    starts = dict(v["validate_check_starts"])
    # validate.yml imports the dns start file itself (the node plan waits for its reads)
    play = LOADER.load_from_file(os.path.join(ROOT, "playbooks", "validate.yml"))[0]
    (dns,) = [t for t in play["tasks"] if (t.get("ansible.builtin.import_role") or {}).get("name") == "validate_dns"
              and t["ansible.builtin.import_role"].get("tasks_from") == "start.yml"]
    starts["dns"] = dns["ansible.builtin.import_role"]
    run = {}
    for check, start in starts.items():
        run[check] = _background_modules(os.path.join(ROOT, "roles", start.get("role") or start["name"], "tasks",
                                                      start["tasks_from"]))
    preloaded = v["validate_background_modules"]
    assert {k: sorted(m) for k, m in preloaded.items()} == {k: sorted(m) for k, m in run.items()}
    assert run["dns"] and run["sg_audit"] and run["image_arch"]
    # the probe pods first: with a seed SG their bounded wait ends the run
    assert list(preloaded)[0] == "dns" and preloaded["dns"][0] == "kubeadm_ec2.cluster.dns_probe_pods"
    # the job host's own task comes first in play 1
    assert "kubeadm_ec2.cluster.job_host_start" in play["tasks"][0]
