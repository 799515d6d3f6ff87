#!/usr/bin/env python
"""Benchmark dns_check on the 3-node DNS lab (root: network namespaces).

Scenarios, each run REPEAT times through ansible-playbook (the validate_dns role) against the lab and
the Kubernetes API fake, with a 1 s per-query timeout:

* host path, healthy SG: cluster state + host path on 3 nodes + analysis (no probe pods);
* host path, seed SG: same, 4 cross-node endpoint pairs time out (bounded by the query timeout);
* pod path, healthy SG: the whole role, probe pods run by the lab kubelet (real lookups from the node).

Figures: wall time of ansible-playbook and the elapsed time the module reports for each step (the
module's own work, without Ansible's process start-up). JSON goes to bench/results/dns.json.
"""

import json
import os
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import tests.conftest  # noqa: E402,F401  # pylint: disable=unused-import
from tests.fakes.k8s_api import FakeKubeAPI  # noqa: E402
from tests.lab.dnslab import LOOP_COREFILE, DnsLab, LabKubelet, run_playbook, task_results  # noqa: E402
from tests.lab.netlab import SEED_SG  # noqa: E402

REPEAT = int(os.environ.get("BENCH_DNS_REPEAT", "3"))
TIMEOUT = 1.0
COREFILE = LOOP_COREFILE.replace("forward . /etc/resolv.conf", "forward . 10.231.0.200")


def one_run(lab, pod_probe):
    fake = FakeKubeAPI().start()
    tmp = tempfile.mkdtemp(prefix="kdnsbench-")
    try:
        kubelet = LabKubelet(lab, timeout=int(TIMEOUT))
        fake.cluster.add_all(lab.k8s_objects(corefile=COREFILE))
        fake.cluster.on_create["pods"] = kubelet
        evars = {"validate_dns_kubeconfig": fake.write_kubeconfig(os.path.join(tmp, "kubeconfig")),
                 "validate_dns_external_name": "example.test", "validate_dns_timeout": TIMEOUT,
                 "validate_dns_pod_probe": pod_probe, "validate_dns_probe_timeout": 30}
        rc, res, wall, _out, report = run_playbook("dns_validate.yml", lab.inventory(python=sys.executable), evars)
        kubelet.join()
        steps = {}
        for step, task in (("cluster", "Read the cluster DNS state"), ("host", "Query cluster DNS from the node"),
                           ("pods", "Resolve from probe pods"), ("analyze", "Analyse cluster DNS")):
            hosts = task_results(report, task)
            elapsed = [r.get("elapsed") for r in hosts.values() if isinstance(r, dict) and "elapsed" in r]
            if elapsed:
                steps[step] = max(elapsed)
        return {"rc": rc, "wall": round(wall, 2), "steps": steps,
                "findings": sorted({f["id"] for f in res.get("findings", [])})}
    finally:
        fake.stop()


def scenario(name, sg, pod_probe):
    runs = []
    with DnsLab(3, sg=sg) as lab:
        for _run in range(REPEAT):
            runs.append(one_run(lab, pod_probe))
    walls = [r["wall"] for r in runs]
    steps = {}
    for r in runs:
        for k, v in r["steps"].items():
            steps.setdefault(k, []).append(v)
    out = {"scenario": name, "runs": REPEAT, "wall_median_s": round(statistics.median(walls), 2),
           "wall_min_s": min(walls), "wall_max_s": max(walls),
           "module_elapsed_median_s": {k: round(statistics.median(v), 3) for k, v in steps.items()},
           "rc": sorted({r["rc"] for r in runs}), "findings": runs[-1]["findings"]}
    print("%-28s wall median %5.1fs (min %.1f, max %.1f)  module: %s  rc=%s findings=%s" % (
        name, out["wall_median_s"], out["wall_min_s"], out["wall_max_s"],
        ", ".join("%s %.2fs" % kv for kv in out["module_elapsed_median_s"].items()), out["rc"], out["findings"]))
    return out


def main():
    if os.geteuid() != 0:
        print("bench_dns: needs root (network namespaces); skipped")
        return 0
    load = os.getloadavg()
    print("dns_check on the 3-node lab (query timeout %.1fs, %d run(s) each, load avg %.1f)" % (TIMEOUT, REPEAT, load[0]))
    results = [
        scenario("host path, healthy SG", None, False),
        scenario("host path, seed SG", SEED_SG, False),
        scenario("host + pod path, healthy SG", None, True),
    ]
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    path = os.path.join(ROOT, "bench", "results", "dns.json")
    with open(path, "w") as fh:
        json.dump({"timeout_s": TIMEOUT, "load_avg_1m": load[0], "cpus": os.cpu_count(), "results": results},
                  fh, indent=1)
    print("written %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
