#!/usr/bin/env bash
# Builds the test OCI image layouts into OUTDIR. Each layout is checked on its
# own (a stamp of its inputs, every blob present) and rebuilt when stale or
# incomplete, whatever else OUTDIR holds:
#   busybox     Debian's busybox-static + applet symlinks, /etc/passwd (root, www), Cmd ["/bin/sh"]
#   multilayer  whiteouts, opaque dir, hardlinks across layers, symlinks, devices, xattr, long names (gzip/zstd/plain layers)
#   multiarch   index with linux/amd64, linux/arm64/v8, linux/arm/v7
#   busybox-multiarch  index with linux/amd64 and linux/arm64/v8 busybox, each runnable
#               in a guest of its architecture (arm64 busybox-static fetched by apt,
#               see scripts/arm64-deb.sh)
#   debian      debootstrap --variant=minbase bookworm plus the few packages the guest
#               feature tests run (bubblewrap, inotify-tools, fuse2fs); the rootfs tarball
#               is cached under ~/.cache/supermachine/test-images/, keyed by
#               suite/variant/packages/mirror, not by date
#   debian-arm64  linux/arm64/v8 bookworm minbase: `debootstrap --foreign` on the host (the
#               first stage runs no arm64 program), then the second stage (dpkg configures
#               every package) inside an aarch64 guest of this project's engine
#               (debian-second-stage.mjs; needs the packages built); cached like the amd64
#               tarball
# Usage: build.sh OUTDIR [--no-debian]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:?usage: build.sh OUTDIR [--no-debian]}"
mkdir -p "$out"
# One build at a time per OUTDIR: others wait, then find the layouts current.
exec 8>"$out/.build.lock"
flock 8
node "$here/build-images.mjs" "$out" busybox multilayer multiarch >/dev/null

# arm64 busybox-static from the Debian mirror (same version as the host's: the
# applet list is taken from the host's busybox)
debcache="${SUPERMACHINE_CACHE:-$HOME/.cache/supermachine}/test-images"
mkdir -p "$debcache"
debs=$(bash "$here/../arm64-deb.sh" "$debcache" busybox-static)
deb=$(ls "$debs"/busybox-static_*_arm64.deb)
host_ver=$(dpkg-query -W -f='${Version}' busybox-static)
arm_ver=$(dpkg-deb -f "$deb" Version)
if [ "$host_ver" != "$arm_ver" ]; then
  echo "[test-images] arm64 busybox-static $arm_ver differs from the host's $host_ver (apt-get install busybox-static)" >&2
  exit 1
fi
if [ ! -s "$debs/busybox" ]; then
  x=$(mktemp -d "$debs/.x.XXXXXX")
  dpkg-deb -x "$deb" "$x"
  mv "$x/bin/busybox" "$debs/busybox"
  rm -rf "$x"
fi
node "$here/build-images.mjs" "$out" "busybox-multiarch=$debs/busybox" >/dev/null

if [ "${2:-}" != "--no-debian" ]; then
  cache="${SUPERMACHINE_CACHE:-$HOME/.cache/supermachine}/test-images"
  mkdir -p "$cache"
  suite=bookworm variant=minbase mirror="${DEBIAN_MIRROR:-$(bash "$here/../debian-mirror.sh" "$suite")}"
  # programs the guest kernel-feature tests run (packages/core/src/fidelity.integration.test.ts)
  include=bubblewrap,inotify-tools,fuse2fs
  key=$(printf '%s\n' "v1" "$suite" "$variant" "$include" "$mirror" amd64 | sha256sum | cut -c1-16)
  tarball="$cache/debootstrap-$suite-$variant-$key.tar.gz"
  # One debootstrap at a time per cache (other runs wait, then reuse the tarball).
  exec 9>"$cache/.debootstrap.lock"
  flock 9
  if [ ! -s "$tarball" ]; then
    work=$(mktemp -d "$cache/debootstrap.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    echo "[test-images] debootstrap $suite ($variant) from $mirror; takes a few minutes" >&2
    debootstrap --variant="$variant" --include="$include" --arch=amd64 "$suite" "$work/root" "$mirror" >"$work/log" 2>&1 || {
      tail -20 "$work/log" >&2
      exit 1
    }
    rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"* 2>/dev/null || true
    tar --sort=name --numeric-owner --xattrs --xattrs-include='*' -C "$work/root" -cf - . | gzip -n -6 >"$work/rootfs.tar.gz"
    mv "$work/rootfs.tar.gz" "$tarball"
    rm -rf "$work"
    trap - EXIT
  fi
  akey=$(printf '%s\n' "v2-second-stage-in-guest" "$suite" "$variant" "$mirror" arm64 | sha256sum | cut -c1-16)
  atarball="$cache/debootstrap-$suite-$variant-arm64-$akey.tar.gz"
  if [ ! -s "$atarball" ]; then
    work=$(mktemp -d "$cache/debootstrap.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    echo "[test-images] debootstrap --arch=arm64 $suite ($variant) from $mirror; the second stage runs in an aarch64 guest, a few minutes" >&2
    debootstrap --foreign --variant="$variant" --arch=arm64 "$suite" "$work/root" "$mirror" >"$work/log" 2>&1 || {
      tail -20 "$work/log" >&2
      exit 1
    }
    tar --sort=name --numeric-owner --xattrs --xattrs-include='*' -C "$work/root" -cf - . | gzip -n -1 >"$work/first.tar.gz"
    rm -rf "$work/root"
    node "$here/debian-second-stage.mjs" "$work/first.tar.gz" "$work/rootfs.tar.gz"
    mv "$work/rootfs.tar.gz" "$atarball"
    rm -rf "$work"
    trap - EXIT
  fi
  flock -u 9
  node "$here/build-images.mjs" "$out" "debian=$tarball" "debian-arm64=$atarball" >/dev/null
fi
echo "$out"
