#!/usr/bin/env bash
# Set up (idempotent), build every test image, then lint, typecheck and run
# every test through `npm test`: unit tests, the integration tests that boot
# real VMs under QEMU and pull from a real registry on 127.0.0.1, and the
# agent's C tests; it ends with one line, "N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "[test] test images (each checked against its inputs, rebuilt when stale)" >&2
bash scripts/test-images/build.sh "${SUPERMACHINE_TEST_IMAGES:-${SUPERMACHINE_CACHE:-$HOME/.cache/supermachine}/test-images}" >/dev/null
echo "[test] lint and typecheck" >&2
npx biome check .
npx turbo run typecheck --output-logs=errors-only
echo "[test] package shape: publint, arethetypeswrong, npm publish --dry-run, changeset version" >&2
bash scripts/check-packages.sh
npm test
