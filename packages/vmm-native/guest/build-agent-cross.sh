#!/usr/bin/env bash
# Cross-builds the guest init/agent (sm-init) and its initramfs for another
# guest architecture, cached by content (the sources and this script):
#   build-agent-cross.sh aarch64  -> $cache/agent-aarch64/<hash>/{sm-init,initramfs.cpio.gz}
# Debian has no musl cross toolchain, so this links statically against the
# cross glibc of gcc-aarch64-linux-gnu (the agent uses no NSS, locale or
# dlopen, the parts of glibc that do not link statically). The x86_64 agent
# is built by build-agent.sh (musl). Prints the output directory (only that
# line) on stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$here/agent"
cache="${SUPERMACHINE_CACHE:-$HOME/.cache/supermachine}"
arch="${1:?usage: build-agent-cross.sh aarch64}"
case "$arch" in
aarch64) cc=aarch64-linux-gnu-gcc; pkg=gcc-aarch64-linux-gnu ;;
*) echo "build-agent-cross: unknown architecture '$arch' (aarch64)" >&2; exit 2 ;;
esac
command -v "$cc" >/dev/null || { echo "$cc not found (apt-get install $pkg)" >&2; exit 1; }
hash="$( (echo "arch=$arch"; cat "$0"; for f in "$src"/*.c "$src"/*.h; do echo "== ${f##*/}"; cat "$f"; done) \
  | sha256sum | cut -c1-16)"
flags=(-std=c11 -Os -Wall -Wextra -ffunction-sections -fdata-sections -Wl,--gc-sections)
out="$cache/agent-$arch/$hash"
if [[ ! -f "$out/initramfs.cpio.gz" ]]; then
  mkdir -p "$cache"
  tmp="$(mktemp -d "$cache/.agent-$arch.XXXXXX")"
  chmod 0755 "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  "$cc" "${flags[@]}" -static -s -o "$tmp/sm-init" "$src"/*.c >&2
  root="$tmp/root"
  mkdir -p "$root"/{dev,proc,sys,lower,rw,newroot,etc,tmp}
  cp "$tmp/sm-init" "$root/init"
  chmod 0755 "$root/init"
  (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) \
    | gzip -9n > "$tmp/initramfs.cpio.gz"
  rm -rf "$root"
  mkdir -p "$(dirname "$out")"
  rm -rf "$out"
  mv "$tmp" "$out"
  trap - EXIT
fi
echo "$out"
