#!/usr/bin/env bash
# Builds the project's built-in default image (Debian's busybox-static as an OCI
# layout, tag "latest") into ${SUPERMACHINE_CACHE:-~/.cache/supermachine}/images/default
# and prints its path. Idempotent; takes well under a second.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
images="${SUPERMACHINE_CACHE:-$HOME/.cache/supermachine}/images"
mkdir -p "$images"
node "$here/build-images.mjs" "$images" busybox:default
