#!/usr/bin/env bash
# Runs every example in order; fails on the first that fails.
set -euo pipefail
cd "$(dirname "$0")"
for f in dist/0*.js; do
  echo "=== $f"
  node "$f"
done
