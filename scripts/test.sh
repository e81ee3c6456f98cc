#!/usr/bin/env bash
# Set up (idempotent), build the test images, then run every test: unit tests,
# the agent's C tests, and the integration tests that boot real VMs under QEMU
# and pull from a real registry on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "[test] test images" >&2
bash scripts/test-images/build.sh "${SUPERMACHINE_TEST_IMAGES:-$HOME/.cache/supermachine/test-images}" >/dev/null
echo "[test] guest agent C tests" >&2
bash packages/vmm-native/guest/test-agent.sh
echo "[test] lint and typecheck" >&2
npx biome check .
npx turbo run typecheck --output-logs=errors-only
echo "[test] package shape: publint, arethetypeswrong, npm publish --dry-run, changeset version" >&2
bash scripts/check-packages.sh
npm test
