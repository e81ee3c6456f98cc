#!/usr/bin/env bash
# Tests of the guest agent (sm-init) on the host:
#  1. warning-free builds (gcc, musl-gcc and aarch64-linux-gnu-gcc, -Wall -Wextra -Werror)
#  2. frame codec vs the shared test vectors + our extra vectors
#  3. bounded-time seeded fuzz of parser + session under ASan/UBSan
#  4. end-to-end protocol checks against an ASan build of `sm-init --stdio`
#     (node), run in a private mount namespace with cgroup2 mounted so the
#     agent puts every exec in its own cgroup (SM_EXEC_CGROUP), as in a guest
# A missing tool or input is a failure, never a skip. Last line:
# "N passed, N failed, N skipped" (scripts/run-tests.mjs adds it to npm test's
# summary). Env: FUZZ_SECONDS (default 10, max 20), FUZZ_SEED.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$here/agent"
vectors="$here/../../agent-protocol/vectors/frames.txt"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
pass() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }
count() { # parse "...: N passed, N failed" from a suite's output; no such line is a failure
  local line p f
  line="$(grep -E '[0-9]+ passed, [0-9]+ failed' "$1" | tail -n1)"
  if [[ -z $line ]]; then
    fail "$2 printed no summary line"
    return
  fi
  p="$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+')"
  f="$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+')"
  passed=$((passed + p)); failed=$((failed + f))
  if [[ $p == 0 && $f == 0 ]]; then fail "$2 ran no checks"; fi
}
agent_srcs=("$src"/codec.c "$src"/util.c "$src"/session.c "$src"/guest-context.c "$src"/loop.c "$src"/exec.c \
  "$src"/exec-cgroup.c "$src"/clone-into.c "$src"/files.c "$src"/tcp.c "$src"/workload.c "$src"/init.c "$src"/guest-env.c)
san=(-fsanitize=address,undefined -fno-omit-frame-pointer)
cflags=(-std=c11 -Wall -Wextra -Werror -g -O1)

echo "== build (warnings are errors)"
if gcc "${cflags[@]}" -o "$work/sm-init-gcc" "$src"/*.c 2>"$work/gcc.log"; then
  pass "gcc build without warnings"
else
  cat "$work/gcc.log"; fail "gcc build"
fi
if ! command -v musl-gcc >/dev/null; then
  fail "musl-gcc build: musl-gcc not found (apt-get install musl-tools; npm run setup installs it)"
elif musl-gcc "${cflags[@]}" -static -Os -o "$work/sm-init-musl" "$src"/*.c 2>"$work/musl.log"; then
  pass "musl-gcc static build without warnings"
else
  cat "$work/musl.log"; fail "musl-gcc build"
fi
# the aarch64 guest's compiler (build-agent-cross.sh uses it with musl)
if ! command -v aarch64-linux-gnu-gcc >/dev/null; then
  fail "aarch64 cross build: aarch64-linux-gnu-gcc not found (apt-get install gcc-aarch64-linux-gnu; npm run setup installs it)"
elif aarch64-linux-gnu-gcc "${cflags[@]}" -static -Os -o "$work/sm-init-aarch64" "$src"/*.c 2>"$work/arm.log"; then
  pass "aarch64-linux-gnu-gcc static build without warnings (glibc headers; the guest build links musl)"
else
  cat "$work/arm.log"; fail "aarch64 cross build"
fi

echo "== codec vectors"
if [[ ! -f $vectors ]]; then
  fail "shared vectors $vectors missing"
else
  gcc "${cflags[@]}" "${san[@]}" -o "$work/test_vectors" "$src/tests/test_vectors.c" "$src/tests/render.c" \
    "$src/codec.c" "$src/util.c" && "$work/test_vectors" "$vectors" "$src/tests/extra-vectors.txt" >"$work/v.log" 2>&1
  cat "$work/v.log"; count "$work/v.log" "codec vectors"
fi

echo "== fuzz"
# in a scratch directory: the session it drives really runs what the random frames ask
# (a WRITE_FILE with a relative path lands in the current directory)
mkdir -p "$work/fuzz-cwd"
gcc "${cflags[@]}" "${san[@]}" -o "$work/test_fuzz" "$src/tests/test_fuzz.c" "${agent_srcs[@]}" &&
  (cd "$work/fuzz-cwd" && ASAN_OPTIONS=detect_leaks=0 "$work/test_fuzz" "${FUZZ_SECONDS:-10}" "${FUZZ_SEED:-0x5eed5eed}") >"$work/f.log" 2>&1
cat "$work/f.log"; count "$work/f.log" "fuzz"

echo "== end to end (--stdio, ASan build, per-exec cgroups)"
if ! command -v node >/dev/null; then
  fail "end to end: node not found"
elif ! gcc "${cflags[@]}" "${san[@]}" -o "$work/sm-init-asan" "$src"/*.c 2>"$work/asan.log"; then
  cat "$work/asan.log"; fail "end to end: ASan build"
else
  bash "$here/agent/tests/with-cgroup2.sh" node "$src/tests/e2e.mjs" --stdio "$work/sm-init-asan" >"$work/e.log" 2>&1
  cat "$work/e.log"; count "$work/e.log" "end to end"
fi
echo "$passed passed, $failed failed, 0 skipped"
[[ $failed == 0 ]]
