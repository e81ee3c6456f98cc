#!/usr/bin/env bash
# Downloads Debian arm64 packages (.deb) into a cache directory and prints
# the directory. apt itself does the download, with a private configuration
# (its own sources list, state and cache under the cache directory, arm64
# only), so the host's apt setup and architectures stay untouched. The mirror
# is the one this machine's apt sources already use (debian-mirror.sh).
# Cached by (suite, packages, mirror): a second run downloads nothing. Used
# for the aarch64 guest's musl (packages/vmm-native/guest/build-agent-cross.sh)
# and the arm64 busybox test image (scripts/test-images/build.sh).
# Usage: arm64-deb.sh CACHEDIR PACKAGE...
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${1:?usage: arm64-deb.sh CACHEDIR PACKAGE...}"
mkdir -p "$cache"
shift
[ $# -gt 0 ] || { echo "arm64-deb: name at least one package" >&2; exit 2; }
suite=bookworm
mirror="${DEBIAN_MIRROR:-$(bash "$here/debian-mirror.sh" "$suite")}"
key=$(printf '%s\n' v1 "$suite" "$mirror" "$@" | sha256sum | cut -c1-16)
out="$cache/arm64-debs-$key"
if [ -f "$out/.done" ]; then echo "$out"; exit 0; fi
work=$(mktemp -d "$cache/.arm64-debs.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/apt/state/lists/partial" "$work/apt/cache/archives/partial" "$work/debs"
echo "deb [arch=arm64] $mirror $suite main" > "$work/apt/sources.list"
opts=(
  -o "Dir::State=$work/apt/state" -o "Dir::Cache=$work/apt/cache"
  -o "Dir::Etc::SourceList=$work/apt/sources.list" -o "Dir::Etc::SourceParts=$work/apt/none"
  -o "Dir::State::status=/dev/null" -o "APT::Architecture=arm64" -o "APT::Architectures::=arm64"
  -o "APT::Sandbox::User=root" -o "Debug::NoLocking=1"
)
apt-get "${opts[@]}" -q update >"$work/log" 2>&1 || { tail -5 "$work/log" >&2; exit 1; }
(cd "$work/debs" && apt-get "${opts[@]}" -q download "${@/%/:arm64}") >>"$work/log" 2>&1 || {
  tail -5 "$work/log" >&2
  exit 1
}
rm -rf "$out"
mv "$work/debs" "$out"
touch "$out/.done"
echo "$out"
