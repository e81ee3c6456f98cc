#!/usr/bin/env bash
# Tests of the guest agent (sm-init) on the host:
#  1. warning-free builds (gcc and musl-gcc, -Wall -Wextra -Werror)
#  2. frame codec vs the shared test vectors + our extra vectors
#  3. bounded-time seeded fuzz of parser + session under ASan/UBSan
#  4. end-to-end protocol checks against an ASan build of `sm-init --stdio` (node)
# Last line: "N passed, N failed". Env: FUZZ_SECONDS (default 10, max 20),
# FUZZ_SEED.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$here/agent"
vectors="$here/../../agent-protocol/vectors/frames.txt"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
count() { # parse "...: N passed, N failed" from a suite's output
  local line p f
  line="$(grep -E '[0-9]+ passed, [0-9]+ failed' "$1" | tail -n1)"
  p="$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+')"
  f="$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+')"
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-1}))
}
agent_srcs=("$src"/codec.c "$src"/util.c "$src"/session.c "$src"/guest-context.c "$src"/loop.c "$src"/exec.c \
  "$src"/files.c "$src"/tcp.c "$src"/workload.c "$src"/init.c)
san=(-fsanitize=address,undefined -fno-omit-frame-pointer)
cflags=(-std=c11 -Wall -Wextra -Werror -g -O1)

echo "== build (warnings are errors)"
if gcc "${cflags[@]}" -o "$work/sm-init-gcc" "$src"/*.c 2>"$work/gcc.log" &&
  { ! command -v musl-gcc >/dev/null ||
    musl-gcc "${cflags[@]}" -static -Os -o "$work/sm-init-musl" "$src"/*.c 2>>"$work/gcc.log"; }; then
  echo "ok   gcc + musl-gcc builds without warnings"; passed=$((passed + 1))
else
  cat "$work/gcc.log"; echo "FAIL build"; failed=$((failed + 1))
fi

echo "== codec vectors"
vfiles=("$src/tests/extra-vectors.txt")
if [[ -f "$vectors" ]]; then vfiles+=("$vectors"); else echo "(shared vectors $vectors not present yet)"; fi
gcc "${cflags[@]}" "${san[@]}" -o "$work/test_vectors" "$src/tests/test_vectors.c" "$src/tests/render.c" \
  "$src/codec.c" "$src/util.c" && "$work/test_vectors" "${vfiles[@]}" >"$work/v.log" 2>&1
cat "$work/v.log"; count "$work/v.log"

echo "== fuzz"
gcc "${cflags[@]}" "${san[@]}" -o "$work/test_fuzz" "$src/tests/test_fuzz.c" "${agent_srcs[@]}" &&
  ASAN_OPTIONS=detect_leaks=0 "$work/test_fuzz" "${FUZZ_SECONDS:-10}" "${FUZZ_SEED:-0x5eed5eed}" >"$work/f.log" 2>&1
cat "$work/f.log"; count "$work/f.log"

echo "== end to end (--stdio, ASan build)"
if command -v node >/dev/null; then
  gcc "${cflags[@]}" "${san[@]}" -o "$work/sm-init-asan" "$src"/*.c &&
    node "$src/tests/e2e.mjs" --stdio "$work/sm-init-asan" >"$work/e.log" 2>&1
  cat "$work/e.log"; count "$work/e.log"
else
  echo "FAIL node not found"; failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
