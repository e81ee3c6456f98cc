#!/usr/bin/env bash
# One-time (idempotent) setup of everything supermachine needs on a Debian
# machine: apt packages, npm dependencies, the guest kernel and agent (cached
# by content hash under ~/.cache/supermachine), the TypeScript build and the
# built-in default image. A second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "[setup] $*" >&2; }

log "system packages"
bash scripts/setup-system.sh

# The aarch64 guest (the cross-built kernel takes ~5 minutes of two idle cores
# the first time, 12 on a busy machine, then it is cached
# by content hash) builds in the background while the rest of setup runs.
log "aarch64 guest kernel and agent: building in the background"
arm_log="$(mktemp)"
bash packages/vmm-native/guest/build-assets.sh aarch64 >"$arm_log" 2>&1 &
arm_pid=$!

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm dependencies"
  # `npm install` (not `npm ci`): it installs exactly the locked versions, and
  # unlike `npm ci` it accepts a lock without the other platforms' optional
  # binaries (biome, rollup, turbo), which this registry does not serve.
  npm install --no-audit --no-fund
else
  log "npm dependencies: up to date"
fi

log "guest kernel and agent (first build of the kernel takes ~9 minutes)"
bash packages/vmm-native/guest/build-assets.sh >/dev/null

log "TypeScript build"
npx turbo run build --output-logs=errors-only

log "built-in default image"
bash scripts/test-images/default-image.sh >/dev/null

log "aarch64 guest kernel and agent: waiting for the background build"
if ! wait "$arm_pid"; then
  cat "$arm_log" >&2
  rm -f "$arm_log"
  echo "[setup] the aarch64 guest build failed" >&2
  exit 1
fi
grep -h "built in" "$arm_log" >&2 || true
rm -f "$arm_log"
log "done"
