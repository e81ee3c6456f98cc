#!/usr/bin/env bash
# Builds the guest init/agent (sm-init) and its initramfs, cached by content.
#   build-agent.sh           static musl build -> $cache/agent/<hash>/{sm-init,initramfs.cpio.gz}
#   build-agent.sh --native  host build (gcc)  -> $cache/agent-native/<hash>/sm-init
# Prints the output directory (only that line) on stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$here/agent"
cache="${SUPERMACHINE_CACHE:-$HOME/.cache/supermachine}"
native=0
[[ "${1:-}" == "--native" ]] && native=1

sources=("$src"/*.c)
hash="$( (cat "$0"; for f in "$src"/*.c "$src"/*.h; do echo "== ${f##*/}"; cat "$f"; done) \
  | sha256sum | cut -c1-16)"
flags=(-std=c11 -Os -Wall -Wextra -ffunction-sections -fdata-sections -Wl,--gc-sections)

if [[ $native == 1 ]]; then
  out="$cache/agent-native/$hash"
  if [[ ! -x "$out/sm-init" ]]; then
    tmp="$(mktemp -d "$cache/.agent-native.XXXXXX")"
    chmod 0755 "$tmp"
    trap 'rm -rf "$tmp"' EXIT
    gcc "${flags[@]}" -g -o "$tmp/sm-init" "${sources[@]}" >&2
    mkdir -p "$(dirname "$out")"
    rm -rf "$out"
    mv "$tmp" "$out"
    trap - EXIT
  fi
  echo "$out"
  exit 0
fi

out="$cache/agent/$hash"
if [[ ! -f "$out/initramfs.cpio.gz" ]]; then
  command -v musl-gcc >/dev/null || { echo "musl-gcc not found (apt-get install musl-tools)" >&2; exit 1; }
  mkdir -p "$cache"
  tmp="$(mktemp -d "$cache/.agent.XXXXXX")"
  chmod 0755 "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  musl-gcc "${flags[@]}" -static -s -o "$tmp/sm-init" "${sources[@]}" >&2
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
