#!/usr/bin/env bash
# Builds (or finds cached) the guest kernel and the guest init/agent of one
# guest architecture (x86_64, the default, or aarch64), then
#  - records them in $SUPERMACHINE_CACHE/guest-assets.json (x86_64) or
#    guest-assets-aarch64.json (the user cache the engine falls back to), and
#  - copies them into the guest package packages/guest-<arch>/assets/ with its
#    manifest.json (what `npm pack` ships and an installed engine finds first).
# Idempotent; both builds are cached by content hash.
#   build-assets.sh [x86_64|aarch64]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${SUPERMACHINE_CACHE:-$HOME/.cache/supermachine}"
arch="${1:-x86_64}"
case "$arch" in
x86_64) kname=bzImage; record=guest-assets.json; agent=(bash "$here/build-agent.sh") ;;
aarch64) kname=Image; record=guest-assets-aarch64.json; agent=(bash "$here/build-agent-cross.sh" aarch64) ;;
*) echo "build-assets: unknown architecture '$arch' (x86_64 or aarch64)" >&2; exit 2 ;;
esac
pkg="$here/../../guest-$arch"
mkdir -p "$cache"
kernel="$(bash "$here/build-kernel.sh" "$arch" | tail -n1)"
agentdir="$("${agent[@]}" | tail -n1)"
initrd="$agentdir/initramfs.cpio.gz"
khash="$(basename "$(dirname "$kernel")")"
ahash="$(basename "$agentdir")"
tmp="$cache/$record.$$"
cat > "$tmp" <<JSON
{
  "kernel": "$kernel",
  "kernelHash": "$khash",
  "initrd": "$initrd",
  "agent": "$agentdir/sm-init",
  "agentHash": "$ahash"
}
JSON
mv "$tmp" "$cache/$record"

if [ -d "$pkg" ]; then
  mkdir -p "$pkg/assets"
  cmp -s "$kernel" "$pkg/assets/$kname" || cp "$kernel" "$pkg/assets/$kname"
  cmp -s "$initrd" "$pkg/assets/initramfs.cpio.gz" || cp "$initrd" "$pkg/assets/initramfs.cpio.gz"
  ksha="$(sha256sum "$kernel" | cut -d' ' -f1)"
  isha="$(sha256sum "$initrd" | cut -d' ' -f1)"
  cat > "$pkg/assets/manifest.json.$$" <<JSON
{
  "format": 1,
  "arch": "$arch",
  "kernel": "$kname",
  "kernelHash": "$khash",
  "kernelSha256": "$ksha",
  "initrd": "initramfs.cpio.gz",
  "agentHash": "$ahash",
  "initrdSha256": "$isha"
}
JSON
  mv "$pkg/assets/manifest.json.$$" "$pkg/assets/manifest.json"
fi
echo "$cache/$record"
