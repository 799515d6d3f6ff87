#!/usr/bin/env bash
# Install the Debian packages the demo and the tests need (idempotent, quiet when present).
# Used by `make demo`, `make test` and .ci/run. Needs root (or sudo) on a Debian machine.
set -euo pipefail
PKGS=(
  iproute2 iptables            # network lab: namespaces, veth, bridge, iptables as the SG
  dnsmasq-base bind9-dnsutils  # real DNS server standing in for CoreDNS, dig for humans
  docker-registry skopeo       # real registry for image manifests, skopeo for the benchmark
  qemu-system-x86 qemu-utils debootstrap e2fsprogs openssh-client  # local VMs for molecule
  rsync git make shellcheck    # shellcheck: ansible-test sanity lints our shell scripts
  containerd runc buildah      # reference image puller (ctr) and offline multi-arch image builds
  nftables                     # fault injection: numgen random drops (no tc netem here)
  chromium                     # headless rendering of the HTML report in tests
  busybox                      # runs the path probe pod's script as the busybox image would
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "sysdeps: installing ${missing[*]}"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# the Debian registry package starts a system service on :5000; the tests start their own
$SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
