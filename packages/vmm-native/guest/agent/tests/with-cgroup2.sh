#!/usr/bin/env bash
# Runs a command with SM_EXEC_CGROUP pointing at a fresh cgroup2 directory, as
# the agent has in a guest: cgroup2 is mounted in a private mount namespace
# (the host may use cgroup v1 hierarchies; the v2 one is free), the command
# runs, then whatever it left in the directory is killed and removed.
#   with-cgroup2.sh CMD ARGS...
# Needs root (unshare -m, mount). When that is impossible it fails and says
# why, with a "0 passed, 1 failed" line for the test scripts that count.
set -uo pipefail
if [[ ${1:-} != --inside ]]; then
  if ! grep -qw cgroup2 /proc/filesystems; then
    echo "FAIL with-cgroup2: the kernel has no cgroup2 file system"
    echo "0 passed, 1 failed"
    exit 1
  fi
  if ! unshare -m --propagation private true 2>/dev/null; then
    echo "FAIL with-cgroup2: unshare -m failed (run as root)"
    echo "0 passed, 1 failed"
    exit 1
  fi
  exec unshare -m --propagation private bash "$0" --inside "$@"
fi
shift
mnt="$(mktemp -d /tmp/sm-cgroup2.XXXXXX)"
if ! mount -t cgroup2 none "$mnt"; then
  rmdir "$mnt"
  echo "FAIL with-cgroup2: cannot mount cgroup2 (run as root)"
  echo "0 passed, 1 failed"
  exit 1
fi
base="$mnt/sm-agent-test-$$"
mkdir "$base"
export SM_EXEC_CGROUP="$base"
"$@"
status=$?
# Kill and remove what the command left behind (deepest groups first).
while IFS= read -r d; do
  echo 1 >"$d/cgroup.kill" 2>/dev/null
  for _ in $(seq 500); do
    grep -q '^populated 0' "$d/cgroup.events" 2>/dev/null && break
    sleep 0.01
  done
  rmdir "$d" 2>/dev/null || echo "with-cgroup2: could not remove $d" >&2
done < <(find "$base" -mindepth 1 -type d | sort -r)
rmdir "$base"
umount "$mnt" && rmdir "$mnt"
exit "$status"
