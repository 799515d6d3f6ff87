#!/usr/bin/env bash
# Start / stop one local Debian 12 VM for molecule (qemu + KVM, user-mode networking on loopback).
#   vm.sh start NAME STATE_DIR [MEMORY_MB] [CPUS]  -> prints "PORT" (SSH forwarded on 127.0.0.1:PORT)
#   vm.sh stop  NAME STATE_DIR
# With MOLECULE_VM_LINK_IP=10.10.0.x the VM gets a second NIC (eth1) with that address on a private
# L2 segment shared by all VMs of the same STATE_DIR: a qemu multicast socket bound to 127.0.0.1,
# so node-to-node traffic never leaves loopback.
# The VM disk is a qcow2 overlay on the cached base image (molecule/scripts/build-image.sh), so every
# scenario run starts from a pristine image and the base is never modified.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
IMG="${MOLECULE_IMAGE_DIR:-$ROOT/.cache/molecule/debian12}"
cmd="$1"; name="$2"; state="$3"
dir="$state/$name"

case "$cmd" in
start)
  mem="${4:-1024}"; cpus="${5:-2}"
  mkdir -p "$dir"
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    cat "$dir/port"; exit 0
  fi
  rm -f "$dir/disk.qcow2" "$dir/console.log"
  qemu-img create -q -f qcow2 -F raw -b "$IMG/rootfs.raw" "$dir/disk.qcow2"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
  # MOLECULE_QEMU_ACCEL: "kvm" (default when /dev/kvm is usable), "tcg" (software emulation) or a full
  # set of qemu arguments such as "-accel kvm -cpu host".
  accel_choice="${MOLECULE_QEMU_ACCEL:-auto}"
  if [ "$accel_choice" = auto ]; then
    if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then accel_choice=kvm; else accel_choice=tcg; fi
  fi
  link_args=()
  append_extra=""
  if [ -n "${MOLECULE_VM_LINK_IP:-}" ]; then
    sum="$(printf '%s' "$state" | cksum | cut -d' ' -f1)"
    group="239.192.$(( (sum >> 8) % 256 )).$(( sum % 256 )):$(( 20000 + (sum >> 16) % 20000 ))"
    last="${MOLECULE_VM_LINK_IP##*.}"
    mac="$(printf '52:54:00:10:%02x:%02x' $(( (sum >> 3) % 256 )) "$last")"
    link_args=(-netdev "socket,id=n1,mcast=$group,localaddr=127.0.0.1" -device "virtio-net-pci,netdev=n1,mac=$mac")
    append_extra=" ip=${MOLECULE_VM_LINK_IP}:::255.255.255.0::eth1:off"
  fi
  launch() {
    smp="$cpus"
    case "$1" in
      kvm) accel=(-accel kvm -cpu "${MOLECULE_QEMU_CPU:-host}") ;;
      # software emulation: one vCPU per VM (MOLECULE_TCG_CPUS) keeps a small, busy host responsive
      tcg) accel=(-accel "tcg,thread=multi" -cpu max); smp="${MOLECULE_TCG_CPUS:-1}" ;;
      *) read -r -a accel <<<"$1" ;;
    esac
    rm -f "$dir/console.log" "$dir/pid"
    qemu-system-x86_64 "${accel[@]}" -smp "$smp" -m "$mem" -name "molecule-$name" \
    -uuid "$(cat /proc/sys/kernel/random/uuid)" \
    -kernel "$IMG/vmlinuz" -initrd "$IMG/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 net.ifnames=0 systemd.hostname=$name$append_extra" \
    -drive "file=$dir/disk.qcow2,if=virtio,format=qcow2,cache=unsafe" \
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:22" -device virtio-net-pci,netdev=n0 \
    "${link_args[@]}" -device virtio-rng-pci \
    -display none -serial "file:$dir/console.log" -monitor none \
    -pidfile "$dir/pid" -daemonize
  }
  if ! launch "$accel_choice" 2>"$dir/qemu.err"; then
    if [ "$accel_choice" != kvm ]; then cat "$dir/qemu.err" >&2; exit 1; fi
    echo "vm.sh: qemu with KVM failed to start ($(tail -n1 "$dir/qemu.err")); using TCG" >&2
    accel_choice=tcg; launch tcg
  fi
  # Some nested-virtualisation hosts expose a /dev/kvm whose guests never get past the
  # decompressor: if the kernel prints nothing within MOLECULE_KVM_PROBE_SECONDS, use TCG.
  if [ "$accel_choice" = kvm ]; then
    ok=0
    for _ in $(seq 1 $(( ${MOLECULE_KVM_PROBE_SECONDS:-10} * 5 ))); do
      if grep -q "Linux version" "$dir/console.log" 2>/dev/null; then ok=1; break; fi
      sleep 0.2
    done
    if [ "$ok" -eq 0 ]; then
      echo "vm.sh: KVM guest printed nothing in ${MOLECULE_KVM_PROBE_SECONDS:-10}s (broken nested KVM?); restarting $name with TCG" >&2
      kill "$(cat "$dir/pid")" 2>/dev/null || true
      sleep 1
      rm -f "$dir/disk.qcow2"
      qemu-img create -q -f qcow2 -F raw -b "$IMG/rootfs.raw" "$dir/disk.qcow2"
      accel_choice=tcg; launch tcg
    fi
  fi
  echo "$accel_choice" >"$dir/accel"
  echo "$port" >"$dir/port"
  echo "$port"
  ;;
stop)
  if [ -f "$dir/pid" ]; then
    pid="$(cat "$dir/pid")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -rf "$dir"
  ;;
*) echo "usage: $0 start|stop NAME STATE_DIR [MEMORY_MB] [CPUS]" >&2; exit 2 ;;
esac
