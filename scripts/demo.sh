#!/usr/bin/env bash
# The main job: set up (idempotent), then bake the built-in default image,
# acquire a VM from a pool restored from the snapshot, and exec in it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node apps/examples/dist/01-hello.js "$@"
