#!/usr/bin/env bash
# Builds the guest kernel from Debian's linux-source package and our config
# fragment. The result is cached by the hash of (source version, fragment,
# this script) under $SUPERMACHINE_CACHE (default ~/.cache/supermachine), so a
# second run is instant. Prints the path of the cached bzImage.
# SUPERMACHINE_KERNEL_FRAGMENT=FILE builds another fragment (e.g. an older
# one, for the kernel benchmark's "before" column).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${SUPERMACHINE_CACHE:-$HOME/.cache/supermachine}"
srcver="$(dpkg-query -W -f='${Version}' linux-source-6.1)"
tarball=/usr/src/linux-source-6.1.tar.xz
# Bump RECIPE when the build steps below change in a way that changes the output.
RECIPE=1
fragment="${SUPERMACHINE_KERNEL_FRAGMENT:-$here/kernel/supermachine.config}"
hash="$( { echo "recipe=$RECIPE source=$srcver"; cat "$fragment"; } | sha256sum | cut -c1-16)"
out="$cache/kernel/$hash"
if [ -f "$out/bzImage" ]; then echo "$out/bzImage"; exit 0; fi
work="$cache/kernel/build-$hash"
rm -rf "$work"; mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
echo "build-kernel: building kernel $hash (linux-source $srcver); takes several minutes" >&2
tar -C "$work" -xf "$tarball"
src="$work/linux-source-6.1"
(
  cd "$src"
  make -s tinyconfig >/dev/null
  ./scripts/kconfig/merge_config.sh -m .config "$fragment" >/dev/null
  make -s olddefconfig >&2
  # verify every option of the fragment survived, set or unset (catches
  # missing dependencies and options Kconfig turns back on)
  missing=0
  while IFS= read -r line; do
    case "$line" in
      CONFIG_*=* | "# CONFIG_"*" is not set")
        grep -qxF "$line" .config || { echo "build-kernel: option not as asked: $line" >&2; missing=1; } ;;
    esac
  done < "$fragment"
  [ $missing -eq 0 ] || exit 1
  make -s -j"$(nproc)" bzImage >&2
)
mkdir -p "$out.tmp"
cp "$src/arch/x86/boot/bzImage" "$out.tmp/bzImage"
cp "$src/.config" "$out.tmp/config"
echo "$srcver" > "$out.tmp/source-version"
rm -rf "$out"; mv "$out.tmp" "$out"
rm -rf "$work"
echo "$out/bzImage"
