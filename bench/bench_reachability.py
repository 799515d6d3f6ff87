"""Wall time of the full node-to-node matrix (validate_network reachability: one node_probe task per node, through
ansible-playbook) on N lab nodes (network namespaces, real kernel, iptables SG).

Usage (root): .venv/bin/python bench/bench_reachability.py [N ...] [--seed]
Default sizes 3 10 20 50 with the healthy SG; --seed also runs the seed SG (every pair failing).
Prints a table and writes bench/results/reachability.json.
"""

import json
import os
import resource
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".collections"))
sys.path.insert(0, ROOT)

import tests.conftest  # noqa: E402,F401  # pylint: disable=unused-import
from tests.integration.test_network_reachability import run_reachability  # noqa: E402
from tests.lab.netlab import HEALTHY_SG, SEED_SG, NetLab  # noqa: E402


def bench(n, sg, label):
    t0 = time.time()
    with NetLab(n, sg=sg) as lab:
        setup = time.time() - t0
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        rc, res, wall, out = run_reachability(lab, control_planes=min(3, n), timeout=900)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary = res.get("summary", {})
    row = {
        "nodes": n,
        "sg": label,
        "rc": rc,
        "wall_seconds": round(wall, 2),
        "wall_per_node_seconds": round(wall / n, 3),
        "cpu_seconds": round(cpu, 2),
        "cpu_per_node_seconds": round(cpu / n, 3),
        "load_avg_1m": round(os.getloadavg()[0], 1),
        "probe_seconds_max": summary.get("probe_seconds_max"),
        "probes": summary.get("probes"),
        "ok": summary.get("ok"),
        "blocked": summary.get("blocked"),
        "unknown": summary.get("unknown"),
        "findings": len(res.get("findings", [])),
        "lab_setup_seconds": round(setup, 2),
    }
    if not res:
        row["error"] = out[-2000:]
    return row


def main(argv):
    sizes = [int(a) for a in argv if a.isdigit()] or [3, 10, 20, 50]
    cases = [(n, HEALTHY_SG, "healthy") for n in sizes]
    if "--seed" in argv:
        cases += [(n, SEED_SG, "seed") for n in sizes]
    rows = []
    print("%6s %8s %4s %9s %8s %10s %7s %7s %8s %9s %6s" % ("nodes", "sg", "rc", "wall(s)", "cpu(s)", "probe(s)",
                                                            "probes", "ok", "blocked", "findings", "load"))
    for n, sg, label in cases:
        row = bench(n, sg, label)
        rows.append(row)
        print("%6d %8s %4d %9.2f %8.1f %10s %7s %7s %8s %9s %6s" % (
            n, label, row["rc"], row["wall_seconds"], row["cpu_seconds"], row["probe_seconds_max"], row["probes"],
            row["ok"], row["blocked"], row["findings"], row["load_avg_1m"]), flush=True)
        if "error" in row:
            print(row["error"])
    out_dir = os.path.join(ROOT, "bench", "results")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "reachability.json"), "w") as fh:
        json.dump({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
                   "rows": rows}, fh, indent=1)
    return 0 if all(r["rc"] == (0 if r["sg"] == "healthy" else 2) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
