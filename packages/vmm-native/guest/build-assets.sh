#!/usr/bin/env bash
# Builds (or finds cached) the guest kernel and the guest init/agent, then
#  - records them in $SUPERMACHINE_CACHE/guest-assets.json (the user cache the
#    engine falls back to), and
#  - copies them into the guest package packages/guest-x86_64/assets/ with its
#    manifest.json (what `npm pack` ships and an installed engine finds first).
# Idempotent; both builds are cached by content hash.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${SUPERMACHINE_CACHE:-$HOME/.cache/supermachine}"
pkg="$here/../../guest-x86_64"
mkdir -p "$cache"
kernel="$(bash "$here/build-kernel.sh" | tail -n1)"
agentdir="$(bash "$here/build-agent.sh" | tail -n1)"
initrd="$agentdir/initramfs.cpio.gz"
khash="$(basename "$(dirname "$kernel")")"
ahash="$(basename "$agentdir")"
tmp="$cache/guest-assets.json.$$"
cat > "$tmp" <<JSON
{
  "kernel": "$kernel",
  "kernelHash": "$khash",
  "initrd": "$initrd",
  "agent": "$agentdir/sm-init",
  "agentHash": "$ahash"
}
JSON
mv "$tmp" "$cache/guest-assets.json"

if [ -d "$pkg" ]; then
  mkdir -p "$pkg/assets"
  cmp -s "$kernel" "$pkg/assets/bzImage" || cp "$kernel" "$pkg/assets/bzImage"
  cmp -s "$initrd" "$pkg/assets/initramfs.cpio.gz" || cp "$initrd" "$pkg/assets/initramfs.cpio.gz"
  ksha="$(sha256sum "$kernel" | cut -d' ' -f1)"
  isha="$(sha256sum "$initrd" | cut -d' ' -f1)"
  cat > "$pkg/assets/manifest.json.$$" <<JSON
{
  "format": 1,
  "arch": "x86_64",
  "kernel": "bzImage",
  "kernelHash": "$khash",
  "kernelSha256": "$ksha",
  "initrd": "initramfs.cpio.gz",
  "agentHash": "$ahash",
  "initrdSha256": "$isha"
}
JSON
  mv "$pkg/assets/manifest.json.$$" "$pkg/assets/manifest.json"
fi
echo "$cache/guest-assets.json"
