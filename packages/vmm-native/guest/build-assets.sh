#!/usr/bin/env bash
# Builds (or finds cached) the guest kernel and the guest init/agent, then
# records them in $SUPERMACHINE_CACHE/guest-assets.json, which the engine reads
# at run time (or in $SUPERMACHINE_GUEST_ASSETS when set, the file the engine
# then reads instead: a worktree can test its own agent without changing the
# shared manifest). Idempotent; both builds are cached by content hash.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${SUPERMACHINE_CACHE:-$HOME/.cache/supermachine}"
mkdir -p "$cache"
kernel="$(bash "$here/build-kernel.sh" | tail -n1)"
agentdir="$(bash "$here/build-agent.sh" | tail -n1)"
khash="$(basename "$(dirname "$kernel")")"
ahash="$(basename "$agentdir")"
manifest="${SUPERMACHINE_GUEST_ASSETS:-$cache/guest-assets.json}"
tmp="$manifest.$$"
cat > "$tmp" <<JSON
{
  "kernel": "$kernel",
  "kernelHash": "$khash",
  "initrd": "$agentdir/initramfs.cpio.gz",
  "agent": "$agentdir/sm-init",
  "agentHash": "$ahash"
}
JSON
mv "$tmp" "$manifest"
echo "$manifest"
