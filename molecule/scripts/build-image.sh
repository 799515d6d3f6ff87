#!/usr/bin/env bash
# Build (once) and cache a bootable Debian 12 image for the molecule scenarios.
#
# Output, under ${MOLECULE_IMAGE_DIR:-<repo>/.cache/molecule/debian12}:
#   rootfs.raw    ext4 root filesystem (sparse, built with mkfs.ext4 -d; VMs use qcow2 overlays on it)
#   vmlinuz       kernel  (linux-image-cloud-amd64 installed inside the chroot)
#   initrd.img    initramfs
#   id_ed25519    SSH key authorised for root in the image
#   stamp         recipe hash; the image is rebuilt when this script's recipe changes
#
# Everything the node_prep role installs is pre-installed with debootstrap --include, so converge
# needs no network inside the VM. The Debian mirror is the one configured on this machine.
# Needs root (debootstrap, chroot, mkfs.ext4 -d preserving ownership).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${MOLECULE_IMAGE_DIR:-$ROOT/.cache/molecule/debian12}"
SUITE=bookworm
SIZE=4G
INCLUDE=(
  systemd-sysv udev dbus kmod iproute2 procps e2fsprogs sudo less
  openssh-server python3 python3-apt
  containerd runc chrony iptables ca-certificates gnupg curl apt-transport-https
  linux-image-cloud-amd64 initramfs-tools
)
RECIPE_VERSION=6
STAMP_VALUE="$(printf '%s\n' "$RECIPE_VERSION" "$SUITE" "$SIZE" "${INCLUDE[*]}" | sha256sum | cut -c1-16)"

log() { printf '[build-image %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if [ -f "$OUT/stamp" ] && [ "$(cat "$OUT/stamp")" = "$STAMP_VALUE" ] \
   && [ -s "$OUT/rootfs.raw" ] && [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/initrd.img" ] && [ -s "$OUT/id_ed25519" ]; then
  log "cached image $OUT (recipe $STAMP_VALUE)"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || { log "must run as root (debootstrap/chroot)"; exit 1; }
for tool in debootstrap mkfs.ext4 ssh-keygen; do
  command -v "$tool" >/dev/null || { log "missing $tool (scripts/sysdeps.sh installs it)"; exit 1; }
done

mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock -w 1800 9 || { log "timed out waiting for another build"; exit 1; }
# another build may have finished while we waited for the lock
if [ -f "$OUT/stamp" ] && [ "$(cat "$OUT/stamp")" = "$STAMP_VALUE" ]; then
  log "cached image $OUT (built concurrently)"
  exit 0
fi

# The mirror configured for this machine's apt (deb822 or one-line format), else deb.debian.org.
MIRROR="${DEBIAN_MIRROR:-}"
if [ -z "$MIRROR" ]; then
  MIRROR="$(grep -hsE '^\s*URIs:' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
            | awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)"
fi
if [ -z "$MIRROR" ]; then
  MIRROR="$(grep -hsE '^\s*deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)"
fi
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
log "mirror $MIRROR"

WORK="$(mktemp -d "$OUT/.build.XXXXXX")"
ROOTFS="$WORK/rootfs"
cleanup() {
  for m in proc sys dev/pts dev; do umount -l "$ROOTFS/$m" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

start=$(date +%s)
log "debootstrap $SUITE (minbase + ${#INCLUDE[@]} packages)"
debootstrap --variant=minbase --components=main \
  --include="$(IFS=,; echo "${INCLUDE[*]}")" \
  "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
  || { tail -n 40 "$WORK/debootstrap.log" >&2; log "debootstrap failed"; exit 1; }
log "debootstrap done in $(( $(date +%s) - start ))s"

# --- configure the guest ----------------------------------------------------------------------
cat >"$ROOTFS/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
SRC
echo "molecule" >"$ROOTFS/etc/hostname"
cat >"$ROOTFS/etc/hosts" <<'H'
127.0.0.1 localhost
H
# a swap file that node_prep has to disable (live and in fstab)
cat >"$ROOTFS/etc/fstab" <<'F'
/dev/vda / ext4 rw,errors=remount-ro 0 1
/swapfile none swap sw 0 0
F
# random, not zero, content: mkfs.ext4 -d stores all-zero blocks as holes and swapon refuses files with holes
dd if=/dev/urandom of="$ROOTFS/swapfile" bs=1M count=64 status=none
chmod 600 "$ROOTFS/swapfile"
mkswap "$ROOTFS/swapfile" >/dev/null

# DHCP on the qemu user-mode NIC (eth0) with systemd-networkd; static resolv.conf (qemu's DNS
# forwarder). The node-to-node link (eth1) is configured from the kernel command line (ip=...) by
# systemd-network-generator.
mkdir -p "$ROOTFS/etc/systemd/network"
cat >"$ROOTFS/etc/systemd/network/10-dhcp.network" <<'N'
[Match]
Name=eth0

[Network]
DHCP=ipv4
N
echo "nameserver 10.0.2.3" >"$ROOTFS/etc/resolv.conf"

# root SSH by key only
ssh-keygen -q -t ed25519 -N '' -C molecule -f "$WORK/id_ed25519"
install -d -m 0700 "$ROOTFS/root/.ssh"
install -m 0600 "$WORK/id_ed25519.pub" "$ROOTFS/root/.ssh/authorized_keys"
cat >"$ROOTFS/etc/ssh/sshd_config.d/molecule.conf" <<'S'
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
S
# Host keys are baked into the image (throwaway test VMs; molecule does not check host keys).
[ -s "$ROOTFS/etc/ssh/ssh_host_ed25519_key" ] || chroot "$ROOTFS" ssh-keygen -A

# Boot speed (matters under TCG when KVM is unusable): a small initramfs with just the virtio
# drivers for the root disk, and no periodic jobs or unused consoles.
sed -i 's/^MODULES=.*/MODULES=list/' "$ROOTFS/etc/initramfs-tools/initramfs.conf"
printf '%s\n' virtio_pci virtio_blk >>"$ROOTFS/etc/initramfs-tools/modules"
chroot "$ROOTFS" update-initramfs -u >/dev/null 2>&1
chroot "$ROOTFS" systemctl mask apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
  e2scrub_all.timer e2scrub_reap.service fstrim.timer systemd-pstore.service \
  systemd-networkd-wait-online.service getty@tty1.service >/dev/null 2>&1
printf 'blacklist %s\n' kvm kvm_amd kvm_intel pcspkr >"$ROOTFS/etc/modprobe.d/molecule-blacklist.conf"

# serial console for debugging (console.log of each VM)
chroot "$ROOTFS" systemctl enable systemd-networkd ssh serial-getty@ttyS0 >/dev/null 2>&1
echo "GRUB-less image: the kernel and initrd are booted directly by qemu -kernel/-initrd" >"$ROOTFS/etc/motd"
# services the roles manage start disabled/stopped state is left to the roles: containerd and
# chrony are enabled by their packages, which is what a Debian cloud image looks like too.

# fresh apt lists so `cache_valid_time` in the roles does not trigger a refresh inside the VM
chroot "$ROOTFS" apt-get update -qq >/dev/null 2>&1 || log "apt-get update in chroot failed (not fatal)"
chroot "$ROOTFS" apt-get clean
# unique machine-id per VM (generated at first boot)
: >"$ROOTFS/etc/machine-id"
rm -f "$ROOTFS/var/lib/dbus/machine-id"

KVER="$(find "$ROOTFS/boot" -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sed -n 's/^vmlinuz-//p' | sort -V | tail -n1)"
[ -n "$KVER" ] || { log "no kernel in chroot /boot"; exit 1; }
cp "$ROOTFS/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
cp "$ROOTFS/boot/initrd.img-$KVER" "$WORK/initrd.img"
log "kernel $KVER"

log "mkfs.ext4 -d ($SIZE sparse)"
truncate -s "$SIZE" "$WORK/rootfs.raw"
mkfs.ext4 -q -F -L root -d "$ROOTFS" "$WORK/rootfs.raw"

for f in rootfs.raw vmlinuz initrd.img id_ed25519 id_ed25519.pub; do mv -f "$WORK/$f" "$OUT/$f"; done
echo "$KVER" >"$OUT/kernel-version"
echo "$STAMP_VALUE" >"$OUT/stamp"
log "image ready in $(( $(date +%s) - start ))s: $OUT"
