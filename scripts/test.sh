#!/usr/bin/env bash
# `make test` after `make setup`: every suite, with molecule running beside the others.
#
# Molecule spends most of its time in one qemu (TCG) process, and the other suites are mostly one
# ansible or pytest process at a time: on 2 cores each leaves a core idle, so they share the machine
# instead of taking turns. Molecule's output goes to .cache/molecule/run.log; its summary (and the
# whole log when it fails) is printed at the end. Every suite runs to its end even when another one
# failed, so the VM is always destroyed by its own scenario; the exit code is non-zero when any failed.
#   TEST_SUITES="unit lint sanity integration e2e"   the suites run in the foreground, in this order
#   TEST_MOLECULE=0                                  skip molecule
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
MAKE="${MAKE:-make}"
log=.cache/molecule/run.log
mkdir -p .cache/molecule

start=$(date +%s)
mpid=""
if [ "${TEST_MOLECULE:-1}" != 0 ]; then
  echo "== molecule: started in the background (log: $log)"
  bash molecule/run.sh >"$log" 2>&1 &
  mpid=$!
fi

failed=()
read -r -a suites <<<"${TEST_SUITES:-unit lint sanity integration e2e}"
for suite in "${suites[@]}"; do
  ts=$(date +%s)
  echo "== $suite"
  "$MAKE" --no-print-directory "$suite" || failed+=("$suite")
  echo "== $suite: $(( $(date +%s) - ts ))s"
done

if [ -n "$mpid" ]; then
  echo "== molecule: waiting for it"
  wait "$mpid"
  mrc=$?
  if [ "$mrc" -eq 0 ]; then
    sed -n '/^== molecule summary/,$p' "$log"
  else
    failed+=(molecule)
    echo "== molecule failed (rc=$mrc); its whole log:"
    cat "$log"
  fi
fi

echo "== make test: $(( $(date +%s) - start ))s; ${#failed[@]} suite(s) failed${failed[*]:+: ${failed[*]}}"
[ "${#failed[@]}" -eq 0 ]
