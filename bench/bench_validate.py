"""Benchmark: playbooks/validate.yml (every check) against N lab nodes, in Ansible "rounds".

For each N and each security group (healthy: with the self-reference; seed: without), in the same
lab and the same run:
* validate_s   wall time of playbooks/validate.yml with every check (sg_audit against moto's EC2
               server, node_reachability and the DNS host path in the node namespaces, DNS cluster
               reads and probe pods against the Kubernetes API fake, image_arch against the registry);
* one_round_s  wall time of a one-task play (ansible.builtin.ping) over the same hosts with the
               same connection settings and forks: the floor any Ansible run over these hosts pays;
* rounds       validate_s / one_round_s (targets: <= 2.5 healthy, <= 3.5 seed; 50 nodes under 30 s).

Each row takes R validate runs (--repeat; default 5 up to 10 nodes, where one noisy second weighs most,
else 3), each after a ping round, and a last ping round. validate_s is the median validate run and
one_round_s the median ping round: both are taken the same way, alternating in the same lab, so the
machine's noise weighs on both alike (the fastest ping against the median validate would count the
noise once, against validate). Every run is in validate_runs and one_round_runs, and
rounds_vs_fastest_ping keeps the stricter ratio (median validate / fastest ping).

The machine is shared: the 1-minute load average is recorded with each row, compare ratios.

Usage (root): .venv/bin/python bench/bench_validate.py [N ...] [--healthy-only|--seed-only]
              [--forks F] [--repeat R] [--out FILE]
Default sizes 3 10 50 100; forks default max(20, N) (see docs/validate.md: every node must run the
node task at the same time). Writes bench/results/validate.json (a list of rows).
"""

import argparse
import json
import os
import sys
import time
from statistics import median

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import tests.conftest  # noqa: E402,F401  # pylint: disable=unused-import
from tests.lab.netlab import HEALTHY_SG, SEED_SG  # noqa: E402
from tests.lab.validatelab import ValidateLab  # noqa: E402


def one(n, label, forks, repeat=1):
    """One row: ``repeat`` validate runs, each after a ping round, and a last ping round, in one lab; validate_s and
    one_round_s are the medians of their runs (all of them in validate_runs and one_round_runs)."""
    sg = HEALTHY_SG if label == "healthy" else SEED_SG
    walls, pings, seen = [], [], []
    with ValidateLab(nodes=n, sg=sg, control_planes=min(3, n)) as vlab:
        load_before = os.getloadavg()[0]
        for _run in range(max(1, repeat)):
            pings.append(vlab.ping_round(forks=forks))
            rc, report, wall, text = vlab.validate(forks=forks)
            walls.append(wall)
            checks = (report or {}).get("checks", report or {})
            seen.append({k: v.get("status") for k, v in checks.items() if isinstance(v, dict)})
        pings.append(vlab.ping_round(forks=forks))
    wall = median(walls)
    one_round = median(pings)
    statuses = seen[-1]
    row = {"nodes": n, "sg": label, "validate_s": round(wall, 2), "one_round_s": round(one_round, 2),
           "rounds": round(wall / one_round, 2), "rounds_vs_fastest_ping": round(wall / min(pings), 2),
           "rc": rc, "forks": forks, "statuses": statuses,
           "validate_runs": [round(w, 2) for w in walls], "one_round_runs": [round(p, 2) for p in pings],
           "statuses_agree": all(st == statuses for st in seen),
           "load_1m_before": round(load_before, 2), "load_1m_after": round(os.getloadavg()[0], 2),
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if report is None:
        row["error"] = text[-3000:]
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[3, 10, 50, 100])
    parser.add_argument("--healthy-only", action="store_true")
    parser.add_argument("--seed-only", action="store_true")
    parser.add_argument("--forks", type=int, default=0, help="default: max(20, N)")
    parser.add_argument("--repeat", type=int, default=0,
                        help="validate runs per row, the median is reported (default 5 up to 10 nodes, else 3)")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "validate.json"))
    opts = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_validate: needs root (network namespaces); skipped")
        return 0
    labels = ["healthy"] if opts.healthy_only else ["seed"] if opts.seed_only else ["healthy", "seed"]
    rows = []
    print("%6s %8s %11s %12s %7s %4s %6s" % ("nodes", "sg", "validate_s", "one_round_s", "rounds", "rc", "load"))
    for n in opts.sizes:
        for label in labels:
            row = one(n, label, opts.forks or max(20, n), opts.repeat or (5 if n <= 10 else 3))
            rows.append(row)
            print("%6d %8s %11.2f %12.2f %7.2f %4d %6.2f  %s" % (
                n, label, row["validate_s"], row["one_round_s"], row["rounds"], row["rc"], row["load_1m_after"],
                " ".join("%s=%s" % kv for kv in sorted(row["statuses"].items()))), flush=True)
            if "error" in row:
                print(row["error"])
            os.makedirs(os.path.dirname(opts.out), exist_ok=True)
            with open(opts.out, "w") as fh:
                json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
