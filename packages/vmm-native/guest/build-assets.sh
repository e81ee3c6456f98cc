#!/usr/bin/env bash
# Builds (or finds cached) the guest kernel and the guest init/agent, then
# records them in $SUPERMACHINE_CACHE/guest-assets.json, which the engine reads
# at run time. Idempotent; both builds are cached by content hash.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${SUPERMACHINE_CACHE:-$HOME/.cache/supermachine}"
mkdir -p "$cache"
kernel="$(bash "$here/build-kernel.sh" | tail -n1)"
agentdir="$(bash "$here/build-agent.sh" | tail -n1)"
khash="$(basename "$(dirname "$kernel")")"
ahash="$(basename "$agentdir")"
tmp="$cache/guest-assets.json.$$"
cat > "$tmp" <<JSON
{
  "kernel": "$kernel",
  "kernelHash": "$khash",
  "initrd": "$agentdir/initramfs.cpio.gz",
  "agent": "$agentdir/sm-init",
  "agentHash": "$ahash"
}
JSON
mv "$tmp" "$cache/guest-assets.json"
echo "$cache/guest-assets.json"
