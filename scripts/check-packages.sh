#!/usr/bin/env bash
# Checks every publishable package the way a consumer's tools will see it:
#  - publint --strict (package.json shape: exports, files, types, engines)
#  - @arethetypeswrong/cli on the packed tarball (types resolve for node10,
#    node16 from ESM and CJS, and bundler); the guest packages ship no code
#  - npm publish --dry-run of each package
#  - `changeset version` succeeds (run in a throwaway copy of the repository)
# Prints one line per package and exits non-zero on the first problem.
# Expects the packages to be built (npm run build).
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(errors agent-protocol oci snapshot pool vmm-native core guest-x86_64 guest-aarch64)
for p in "${pkgs[@]}"; do
  dir="packages/$p"
  out=$( (cd "$dir" && npx publint --strict) 2>&1) || { echo "$out"; echo "check-packages: publint failed for $p" >&2; exit 1; }
  if grep -q "^Errors:\|^Warnings:" <<<"$out"; then echo "$out"; echo "check-packages: publint found problems in $p" >&2; exit 1; fi
  if [[ "$p" != guest-* ]]; then
    out=$( (cd "$dir" && npx attw --pack . --format ascii) 2>&1) || { echo "$out"; echo "check-packages: attw failed for $p" >&2; exit 1; }
  fi
  out=$( (cd "$dir" && npm publish --dry-run --ignore-scripts=false) 2>&1) || { echo "$out"; echo "check-packages: npm publish --dry-run failed for $p" >&2; exit 1; }
  echo "check-packages: $p ok ($(grep -o 'total files: *[0-9]*' <<<"$out" | grep -o '[0-9]*$') files)"
done

# changeset version, in a copy so the work tree is untouched
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar --exclude=./node_modules --exclude='./packages/*/node_modules' --exclude=./.turbo --exclude='*/dist' \
  --exclude='./packages/guest-x86_64/assets' --exclude='./packages/guest-aarch64/assets' -cf - . | tar -xf - -C "$tmp"
ln -s "$PWD/node_modules" "$tmp/node_modules"
(cd "$tmp" && npx changeset version >/dev/null 2>&1) || { echo "check-packages: changeset version failed" >&2; exit 1; }
bumped=$(cd "$tmp" && node -e 'console.log(require("./packages/core/package.json").version)')
echo "check-packages: changeset version ok (core would become $bumped)"
