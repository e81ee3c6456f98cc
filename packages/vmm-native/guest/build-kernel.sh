#!/usr/bin/env bash
# Builds the guest kernel from Debian's linux-source package and our config
# fragment. The result is cached by the hash of (source version, fragment,
# recipe, and the architecture for non-x86 builds) under $SUPERMACHINE_CACHE
# (default ~/.cache/supermachine), so a second run is instant. Prints the
# path of the cached kernel image.
#   build-kernel.sh [x86_64]   kernel/supermachine.config -> kernel/<hash>/bzImage
#   build-kernel.sh aarch64    kernel/aarch64.config, cross-compiled with
#                              aarch64-linux-gnu-gcc     -> kernel/<hash>/Image
# SUPERMACHINE_KERNEL_FRAGMENT=FILE builds another fragment (e.g. an older
# one, for the kernel benchmark's "before" column). kernel/patches/*.patch
# (applied with patch -p1, in name order) change the source for both.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${SUPERMACHINE_CACHE:-$HOME/.cache/supermachine}"
srcver="$(dpkg-query -W -f='${Version}' linux-source-6.1)"
tarball=/usr/src/linux-source-6.1.tar.xz
# Bump RECIPE when the build steps below change in a way that changes the output.
RECIPE=1
arch="${1:-x86_64}"
case "$arch" in
x86_64)
  fragment="${SUPERMACHINE_KERNEL_FRAGMENT:-$here/kernel/supermachine.config}"
  karch=x86; cross=""; target=bzImage; image=arch/x86/boot/bzImage; archtag="" ;;
aarch64)
  fragment="${SUPERMACHINE_KERNEL_FRAGMENT:-$here/kernel/aarch64.config}"
  karch=arm64; cross=aarch64-linux-gnu-; target=Image; image=arch/arm64/boot/Image; archtag=" arch=aarch64"
  command -v "${cross}gcc" >/dev/null || { echo "build-kernel: ${cross}gcc not found (apt-get install gcc-aarch64-linux-gnu)" >&2; exit 1; } ;;
*) echo "build-kernel: unknown architecture '$arch' (x86_64 or aarch64)" >&2; exit 2 ;;
esac
# Patches applied to the source before configuring (both architectures), in name order.
patches=("$here"/kernel/patches/*.patch)
[ -e "${patches[0]}" ] || patches=()
# (the x86_64 hash input is unchanged from before multi-arch builds, so its cache stays valid)
hash="$( { echo "recipe=$RECIPE source=$srcver$archtag"; cat "$fragment"; for p in "${patches[@]}"; do echo "== patch ${p##*/}"; cat "$p"; done; } | sha256sum | cut -c1-16)"
out="$cache/kernel/$hash"
if [ -f "$out/$target" ]; then echo "$out/$target"; exit 0; fi
# One build per hash at a time: a second one (another checkout, a test
# run's setup) waits here and then finds the first one's result.
mkdir -p "$cache/kernel"
exec 9>"$cache/kernel/.build-$hash.lock"
flock 9
if [ -f "$out/$target" ]; then echo "$out/$target"; exit 0; fi
work="$cache/kernel/build-$hash"
rm -rf "$work"; mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
echo "build-kernel: building $arch kernel $hash (linux-source $srcver); takes several minutes" >&2
export ARCH="$karch" CROSS_COMPILE="$cross"
started=$(date +%s)
tar -C "$work" -xf "$tarball"
src="$work/linux-source-6.1"
for p in "${patches[@]}"; do patch -s -d "$src" -p1 < "$p"; done
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
  make -s -j"$(nproc)" "$target" >&2
)
echo "build-kernel: $arch kernel built in $(($(date +%s) - started)) s" >&2
mkdir -p "$out.tmp"
cp "$src/$image" "$out.tmp/$target"
cp "$src/.config" "$out.tmp/config"
echo "$srcver" > "$out.tmp/source-version"
rm -rf "$out"; mv "$out.tmp" "$out"
rm -rf "$work"
echo "$out/$target"
