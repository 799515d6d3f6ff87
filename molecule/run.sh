#!/usr/bin/env bash
# `make molecule`: build (or reuse) the cached Debian 12 VM image, then `molecule test` every scenario
# under molecule/. Exits non-zero when the image build or any scenario fails.
#   MOLECULE_SCENARIOS="default multinode"   scenarios to run (default: "default", one VM)
#   MOLECULE_TIMEOUT=2400          seconds allowed per scenario (hard bound; an idle 2-core host needs far less)
#   MOLECULE_QEMU_ACCEL=auto|kvm|tcg  see molecule/scripts/vm.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$ROOT/ansible.cfg"
# per-play wall time in the output (parsed for the summary below)
export ANSIBLE_CALLBACKS_ENABLED="ansible.posix.timer"
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 NO_COLOR=1 PY_COLORS=0

mkdir -p .collections/ansible_collections/kubeadm_ec2 .cache/molecule
[ -e .collections/ansible_collections/kubeadm_ec2/cluster ] || ln -sfn ../../.. .collections/ansible_collections/kubeadm_ec2/cluster

for tool in qemu-system-x86_64 qemu-img debootstrap mkfs.ext4; do
  command -v "$tool" >/dev/null || { echo "molecule/run.sh: $tool missing (run scripts/sysdeps.sh)" >&2; exit 1; }
done

t0=$(date +%s)
bash molecule/scripts/build-image.sh
t_image=$(( $(date +%s) - t0 ))

read -r -a scenarios <<<"${MOLECULE_SCENARIOS:-default}"

rc=0
summary=()
for s in "${scenarios[@]}"; do
  log=".cache/molecule/$s.log"
  ts=$(date +%s)
  echo "== molecule test -s $s (log: $log)"
  set +e
  timeout --kill-after=30 "${MOLECULE_TIMEOUT:-2400}" molecule test -s "$s" 2>&1 | tee "$log"
  src=${PIPESTATUS[0]}
  set -e
  dur=$(( $(date +%s) - ts ))
  boot="$(grep -oE 'reachable over SSH [0-9.]+s after qemu started \(accelerator: [a-z]+\)' "$log" | tail -n1 || true)"
  # the timer callback prints "Playbook run took ..." after each playbook; molecule announces each action
  # with "[<scenario> > <action>] Executing": pair them up
  times="$(awk '
    /\] Executing/ { if (match($0, /> [a-z_]+\]/)) { action = substr($0, RSTART + 2, RLENGTH - 3) } }
    /Playbook run took/ {
      n = split($0, f, /[ ,]+/)
      for (i = 1; i <= n; i++) { if (f[i] == "hours") h = f[i-1]; if (f[i] == "minutes") m = f[i-1]; if (f[i] == "seconds") s = f[i-1] }
      printf "%s=%ds ", action, h * 3600 + m * 60 + s
    }' "$log")"
  idem="$(grep -qE "\[$s > idempotence\] Executed: Successful|Idempotence completed successfully" "$log" && echo passed || echo FAILED/not-run)"
  summary+=("$s: rc=$src total=${dur}s; ${boot:-boot=n/a}; playbooks: ${times:-n/a}; idempotence=$idem")
  [ "$src" -eq 0 ] || rc=$src
done

echo
echo "== molecule summary (image build/cache check ${t_image}s)"
printf '  %s\n' "${summary[@]}"
exit "$rc"
