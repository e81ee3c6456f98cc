#!/usr/bin/env bash
# Installs the Debian packages supermachine needs. Idempotent: does nothing
# when every package is already present.
set -euo pipefail

BASE_PKGS=(
  build-essential bc bison flex libelf-dev libssl-dev cpio xz-utils zstd
  musl-tools busybox-static util-linux procps iproute2
  linux-source-6.1
  docker-registry skopeo umoci debootstrap apache2-utils
  erofs-utils squashfs-tools-ng isal crun
  passt slirp4netns bubblewrap nftables tmux zsh
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross
)
# qemu-system-arm brings qemu-system-aarch64 (aarch64 guests; same QEMU 10 as x86)
BACKPORT_PKGS=(qemu-system-x86 qemu-system-arm qemu-utils e2fsprogs)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${BASE_PKGS[@]}" "${BACKPORT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# QEMU must be 10.x (backports) for mapped-ram, e2fsprogs >= 1.47.1 for `mke2fs -d file.tar`.
need_bp=0
if ! qemu-system-x86_64 --version 2>/dev/null | grep -qE "version (9|[1-9][0-9])\."; then need_bp=1; fi
if ! qemu-system-aarch64 --version 2>/dev/null | grep -qE "version (9|[1-9][0-9])\."; then need_bp=1; fi
if ! mke2fs -V 2>&1 | grep -qE "1\.47\.[1-9]|1\.4[89]"; then need_bp=1; fi

if [ ${#missing[@]} -eq 0 ] && [ $need_bp -eq 0 ]; then
  echo "setup-system: all packages present"
  exit 0
fi

if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  # The mirror is the one this machine's apt sources already use; we name no host.
  mirror=$(bash "$(dirname "$0")/debian-mirror.sh" bookworm)
  echo "deb $mirror bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/supermachine-backports.list >/dev/null
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${BASE_PKGS[@]}"
$SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports "${BACKPORT_PKGS[@]}"
# runsc (gVisor) is optional: only used as a benchmark baseline.
$SUDO apt-get install -y -q --no-install-recommends runsc 2>/dev/null || echo "setup-system: runsc not available (optional)"
echo "setup-system: done"
