#!/usr/bin/env bash
# Cross-builds the guest init/agent (sm-init) and its initramfs for another
# guest architecture, cached by content (the sources, this script and the
# musl packages it links):
#   build-agent-cross.sh aarch64  -> $cache/agent-aarch64/<hash>/{sm-init,initramfs.cpio.gz}
# Like the x86_64 agent (build-agent.sh, musl-gcc) it links musl statically:
# Debian has no musl cross compiler, so Debian's arm64 `musl-dev` package is
# fetched by apt (scripts/arm64-deb.sh, a private arm64-only apt setup: the
# host's apt is untouched) and Debian's aarch64-linux-gnu-gcc uses it through
# the package's own musl-gcc.specs, its paths pointed at the unpacked copy.
# Run from the supermachine repository. Prints the output directory (only
# that line) on stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$here/agent"
cache="${SUPERMACHINE_CACHE:-$HOME/.cache/supermachine}"
arch="${1:?usage: build-agent-cross.sh aarch64}"
case "$arch" in
aarch64) cc=aarch64-linux-gnu-gcc; pkg=gcc-aarch64-linux-gnu; triple=aarch64-linux-musl ;;
*) echo "build-agent-cross: unknown architecture '$arch' (aarch64)" >&2; exit 2 ;;
esac
command -v "$cc" >/dev/null || { echo "$cc not found (apt-get install $pkg)" >&2; exit 1; }
mkdir -p "$cache"
debs="$(bash "$here/../../../scripts/arm64-deb.sh" "$cache/debs" musl musl-dev | tail -n1)"
hash="$( (echo "arch=$arch"; cat "$0"; (cd "$debs" && ls ./*.deb); for f in "$src"/*.c "$src"/*.h; do
  echo "== ${f##*/}"; cat "$f"; done) | sha256sum | cut -c1-16)"
flags=(-std=c11 -Os -Wall -Wextra -ffunction-sections -fdata-sections -Wl,--gc-sections)
out="$cache/agent-$arch/$hash"
if [[ ! -f "$out/initramfs.cpio.gz" ]]; then
  tmp="$(mktemp -d "$cache/.agent-$arch.XXXXXX")"
  chmod 0755 "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  for d in "$debs"/musl*.deb; do dpkg-deb -x "$d" "$tmp/musl"; done
  sed -e "s|/usr/include/$triple|$tmp/musl/usr/include/$triple|g" \
    -e "s|/usr/lib/$triple|$tmp/musl/usr/lib/$triple|g" \
    "$tmp/musl/usr/lib/$triple/musl-gcc.specs" >"$tmp/musl.specs"
  "$cc" "${flags[@]}" -specs "$tmp/musl.specs" -static -s -o "$tmp/sm-init" "$src"/*.c >&2
  rm -rf "$tmp/musl" "$tmp/musl.specs"
  root="$tmp/root"
  mkdir -p "$root"/{dev,proc,sys,lower,rw,newroot,etc,tmp}
  cp "$tmp/sm-init" "$root/init"
  chmod 0755 "$root/init"
  (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) \
    | gzip -9n > "$tmp/initramfs.cpio.gz"
  rm -rf "$root"
  mkdir -p "$(dirname "$out")"
  rm -rf "$out"
  mv "$tmp" "$out"
  trap - EXIT
fi
echo "$out"
