"""Benchmark: first vs second provisioning run against moto's EC2 server, plus teardown.

The cluster is the HA, multi-AZ layout: 3 control planes behind the API network load balancer and
2 workers, over subnets in the region's first 2 zones (the defaults but for the control-plane count).

For each run: wall time and the number of AWS API calls (EC2 and ELBv2) (moto's request recorder,
/moto-api/recorder/), with a per-action breakdown. Prints the figures and writes
bench/results/provision.json.

Run: .venv/bin/python bench/bench_provision.py
"""

import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import tests.conftest  # noqa: E402,F401  # pylint: disable=unused-import
from tests.integration.moto_harness import MotoServer, run_playbook  # noqa: E402

EXTRA_VARS = {
    "kubeadm_ec2_cluster_name": "bench",
    "kubeadm_ec2_admin_cidr": "203.0.113.7/32",
    "ec2_nodes_ami_owners": ["137112412989"],
    "ec2_nodes_ami_name_pattern": "al2022-ami-2022.0.*-kernel-5.15-*",
    "ec2_nodes_worker_instance_type": "t4g.medium",
    "ec2_nodes_worker_arch": "arm64",
    "kubeadm_ec2_control_plane_count": 3,
}


def measure(moto, label, playbook, extra_vars):
    with moto.recording() as rec:
        result = run_playbook(playbook, moto, extra_vars=extra_vars)
    if result.returncode != 0:
        raise SystemExit("%s failed: %r\n%s" % (label, result, result.stderr[-2000:]))
    return {
        "run": label,
        "seconds": round(result.seconds, 2),
        "api_calls": rec.total,
        "changed": result.changed(),
        "actions": dict(sorted(rec.actions.items())),
    }


def main():
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        key = os.path.join(tmp, "id")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        extra = dict(EXTRA_VARS, ec2_nodes_ssh_public_key_file=key + ".pub")
        with MotoServer() as moto:
            runs.append(measure(moto, "provision #1 (create)", "playbooks/provision.yml", extra))
            runs.append(measure(moto, "provision #2 (no-op)", "playbooks/provision.yml", extra))
            runs.append(measure(moto, "teardown #1", "playbooks/teardown.yml", extra))
            runs.append(measure(moto, "teardown #2 (no-op)", "playbooks/teardown.yml", extra))
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    report = {
        "benchmark": "provision",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"cpus": os.cpu_count(), "loadavg": load, "python": platform.python_version()},
        "nodes": "3 control planes (t3.medium, amd64) behind the API NLB + 2 workers (t4g.medium, arm64), 2 zones",
        "runs": runs,
    }
    print("%-24s %9s %10s %8s" % ("run", "seconds", "API calls", "changed"))
    for run in runs:
        print("%-24s %9.1f %10d %8d" % (run["run"], run["seconds"], run["api_calls"], run["changed"]))
    for run in runs:
        print("\n%s: %s" % (run["run"], ", ".join("%s=%d" % kv for kv in run["actions"].items())))
    outdir = os.path.join(ROOT, "bench", "results")
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, "provision.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    print("\nwritten: %s (load average at the end: %s)" % (os.path.relpath(path, ROOT), load))


if __name__ == "__main__":
    main()
