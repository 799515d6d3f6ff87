"""Benchmark: the whole `make demo` story and, inside it, playbooks/validate.yml on the 3-node lab.

Target from the issue: the validate playbook on the 3-node lab under 20 s. Prints the figures and
writes bench/results/demo.json. Needs root (network namespaces).
"""

import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "demo.json")
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "tests.demo.run", "--no-color", "--json", report],
                              cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False)
        wall = time.monotonic() - started
        if proc.returncode != 0:
            print(proc.stdout[-4000:], proc.stderr[-2000:])
            return 1
        with open(report) as fh:
            timings = json.load(fh)["timings"]
    result = {"benchmark": "demo", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "cpus": os.cpu_count(), "loadavg_1m": os.getloadavg()[0], "wall_s": round(wall, 1),
              "timings_s": {k: round(v, 1) for k, v in timings.items()},
              "validate_target_s": 20}
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "demo.json"), "w") as fh:
        json.dump(result, fh, indent=1)
    print("demo total %.1fs" % wall)
    for key, val in result["timings_s"].items():
        print("  %-16s %6.1fs" % (key, val))
    return 0


if __name__ == "__main__":
    sys.exit(main())
