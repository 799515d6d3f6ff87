"""Benchmark: image_arch_check's engine vs a loop of `skopeo inspect --raw` over the same 100 references.

A local docker-registry (tests/integration/registry_harness.py) gets 25 distinct images: arm64-only
single manifests, OCI image indexes and Docker manifest lists. The list of 100 references repeats them
(as real clusters do: many workloads share an image). Both sides start cold. The engine resolves the
distinct references concurrently (bounded pool), reads config blobs of single manifests and caches per
digest; the baseline runs one skopeo process per reference, as a shell loop would.

Prints the figures and writes bench/results/image_arch.json.
"""

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, ".collections"))
if not os.path.exists(os.path.join(ROOT, ".collections", "ansible_collections", "kubeadm_ec2", "cluster")):
    os.makedirs(os.path.join(ROOT, ".collections", "ansible_collections", "kubeadm_ec2"), exist_ok=True)
    os.symlink("../../..", os.path.join(ROOT, ".collections", "ansible_collections", "kubeadm_ec2", "cluster"))

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes.registry import (  # noqa: E402
    RegistryClient,
    check_images,
)
from tests.integration.registry_harness import Registry  # noqa: E402

N_REFS = 100
N_DISTINCT = 25
WORKERS = 8


def main():
    skopeo = shutil.which("skopeo")
    if not skopeo:
        print("skopeo not installed (apt-get install skopeo)")
        return 1
    with Registry() as reg:
        distinct = []
        for i in range(N_DISTINCT):
            repo, tag = "bench/app%02d" % i, "v%d" % i
            if i % 3 == 0:
                reg.push_image(repo, tag, arch="arm64")
            elif i % 3 == 1:
                reg.push_index(repo, tag, ["amd64", "arm64"])
            else:
                reg.push_manifest_list(repo, tag, ["amd64", "arm64"])
            distinct.append("%s/%s:%s" % (reg.host, repo, tag))
        rng = random.Random(42)
        refs = distinct + [rng.choice(distinct) for _i in range(N_REFS - N_DISTINCT)]
        rng.shuffle(refs)

        # engine (cold client)
        client = RegistryClient(insecure_registries=[reg.host], timeout=10, max_workers=WORKERS)
        t0 = time.perf_counter()
        findings, report = check_images(client, refs, [], ["amd64"])
        engine_s = time.perf_counter() - t0

        # baseline: one skopeo process per reference
        t0 = time.perf_counter()
        raw = {}
        for ref in refs:
            out = subprocess.run([skopeo, "inspect", "--raw", "--tls-verify=false", "docker://" + ref],
                                 check=True, capture_output=True, timeout=60).stdout
            raw[ref] = out
        skopeo_s = time.perf_counter() - t0

        # for reference: skopeo over the distinct references only (a deduplicating script)
        t0 = time.perf_counter()
        for ref in distinct:
            subprocess.run([skopeo, "inspect", "--raw", "--tls-verify=false", "docker://" + ref],
                           check=True, capture_output=True, timeout=60)
        skopeo_distinct_s = time.perf_counter() - t0

    digests = {r["image"]: r["digest"] for r in report}
    agree = all("sha256:" + hashlib.sha256(raw[ref]).hexdigest() == digests[ref] for ref in distinct)
    # the arm64-only single manifests: pulled on amd64 nodes, then "exec format error" at start
    mismatches = sorted({f["where"] for f in findings if f["id"] == "IMAGE_EXEC_FORMAT"})
    result = {
        "refs": len(refs),
        "distinct": len(distinct),
        "workers": WORKERS,
        "engine_seconds": round(engine_s, 3),
        "engine_http_requests": client.requests,
        "skopeo_loop_seconds": round(skopeo_s, 3),
        "speedup": round(skopeo_s / engine_s, 1),
        "skopeo_distinct_loop_seconds": round(skopeo_distinct_s, 3),
        "speedup_vs_distinct_loop": round(skopeo_distinct_s / engine_s, 1),
        "digests_agree": agree,
        "arch_mismatches_found": len(mismatches),
        "note": "skopeo --raw only fetches the manifest; the engine also reads config blobs of single "
                "manifests to learn their architecture",
    }
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "image_arch.json"), "w") as fh:
        json.dump(result, fh, indent=2)
    print("image_arch_check engine: %d refs (%d distinct) in %.3fs with %d HTTP requests"
          % (len(refs), len(distinct), engine_s, client.requests))
    print("skopeo inspect --raw loop: %d refs in %.3fs" % (len(refs), skopeo_s))
    print("skopeo loop over the %d distinct refs only: %.3fs (%.1fx)"
          % (len(distinct), skopeo_distinct_s, result["speedup_vs_distinct_loop"]))
    print("speedup: %.1fx  (digests agree: %s; arm64-only images flagged: %d)"
          % (result["speedup"], agree, len(mismatches)))
    if not agree or len(mismatches) != len([i for i in range(N_DISTINCT) if i % 3 == 0]):
        print("FAIL: engine and skopeo disagree")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
