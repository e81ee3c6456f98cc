#!/usr/bin/env bash
# Boots sm-init in a real VM (QEMU microvm, TCG) on a busybox root disk and
# runs tests/e2e.mjs over the virtio-serial socket, then a bake/restore check
# (tests/vm-snapshot.mjs). Needs the guest kernel (build-kernel.sh) and
# busybox-static. Kills the QEMU processes it starts.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
guest="$here/../.."
kernel="$(ls "${SUPERMACHINE_CACHE:-$HOME/.cache/supermachine}"/kernel/*/bzImage | head -n1)"
out="$(bash "$guest/build-agent.sh")"
w="$(mktemp -d /tmp/sm-vm.XXXXXX)"
qpid=""
cleanup() { [[ -n "$qpid" ]] && kill "$qpid" 2>/dev/null; rm -rf "$w"; }
trap cleanup EXIT
mkdir -p "$w/r/bin" "$w/r/etc" "$w/r/tmp" "$w/r/proc" "$w/r/sys" "$w/r/dev"
cp /bin/busybox "$w/r/bin/"
for a in sh ls cat echo uname sleep httpd stty tty head true false pwd stat mkdir env id grep; do
  ln -s busybox "$w/r/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' >"$w/r/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$w/r/etc/group"
mke2fs -q -t ext4 -d "$w/r" "$w/root.ext4" 64M
qemu-system-x86_64 -M microvm,acpi=off,pit=on,pic=on,rtc=on -accel tcg -nodefaults -no-user-config \
  -display none -m 256 -kernel "$kernel" -initrd "$out/initramfs.cpio.gz" \
  -append "console=ttyS0 quiet sm.root=/dev/vda" -serial "file:$w/con.log" \
  -device virtio-serial-device -chardev "socket,id=agent,path=$w/agent.sock,server=on,wait=off" \
  -device virtserialport,chardev=agent,name=sm.agent \
  -drive "file=$w/root.ext4,if=none,id=root,format=raw,readonly=on" -device virtio-blk-device,drive=root \
  -netdev user,id=net0 -device virtio-net-device,netdev=net0 &
qpid=$!
for _ in $(seq 200); do [[ -S "$w/agent.sock" ]] && break; sleep 0.05; done
rc=0
node "$here/e2e.mjs" --socket "$w/agent.sock" || rc=1
kill "$qpid"; wait "$qpid" 2>/dev/null || true; qpid=""
echo "console: $(tr '\n' ' ' <"$w/con.log")"
timeout 180 node "$here/vm-snapshot.mjs" "$out" "$kernel" "$w" || rc=1
exit $rc
