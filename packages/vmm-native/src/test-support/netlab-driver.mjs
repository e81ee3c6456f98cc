// Driver of the network lab for the engine's tests: runs in the lab's host
// namespace (test-support/netlab-host.mjs) and drives real VMs through the
// built engine (dist). Each export is an op the test calls.
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { busyboxRootfs, descendantsOf } from "../../../../scripts/bench/guest.mjs";

const engine = await import(new URL("../../dist/index.js", import.meta.url).href);
const { Machine, openAgentSession, resolveGuestAssets, liveNetworkNamespaces } = engine;

const work = mkdtempSync(join(tmpdir(), "sm-netlab-engine-"));
const assets = resolveGuestAssets();
const rootfs = busyboxRootfs(work);
const vms = new Map();
const prepared = new Map();
let nextId = 1;

/** Boots a busybox guest (with or without a network card), captures it and returns the snapshot dir. */
export async function snapshot({ network = true, policy }) {
  const dir = join(work, `snap-${nextId++}`);
  const m = await Machine.boot(
    { kernel: assets.kernel, initrd: assets.initrd, memoryMib: 256, vcpus: 1, rootfs, network },
    { memoryFile: join(dir, "memory.bin"), network: policy },
  );
  try {
    const s = await openAgentSession(m);
    if (network) {
      // QEMU's user network gives IPv6 by router advertisement: capture once the guest has its address
      const r = await s.run({
        argv: [
          "sh",
          "-c",
          "for i in $(seq 100); do ip -6 addr show dev eth0 | grep -q 'scope site' && exit 0; sleep 0.1; done; exit 1",
        ],
      });
      if (r.exitCode !== 0) throw new Error("the guest got no IPv6 address");
    }
    await s.close();
    await m.captureSnapshot(dir);
  } finally {
    await m.close();
  }
  return dir;
}

async function track(m) {
  const session = await openAgentSession(m);
  const id = nextId++;
  vms.set(id, { m, session });
  return { id, pid: m.pid };
}

/** Restores a VM from `dir` under `policy`; returns its id and QEMU pid. */
export async function start({ dir, policy }) {
  return track(await Machine.restore(dir, { network: policy }));
}

/** Starts a QEMU waiting in `-incoming defer` (as a pool's spare); returns its id and pid. */
export async function prepare({ dir, policy }) {
  const p = await Machine.prepareRestore(dir, { network: policy });
  const id = nextId++;
  prepared.set(id, p);
  return { id, pid: p.machine.pid };
}

/** Completes a prepared restore; returns the VM's id and pid. */
export async function complete({ id }) {
  const p = prepared.get(id);
  prepared.delete(id);
  return track(await p.complete());
}

/** Runs `sh -c cmd` in a VM: `{exitCode, out}` (stdout and stderr together). */
export async function sh({ id, cmd }) {
  const { session } = vms.get(id);
  const r = await session.run({ argv: ["sh", "-c", `${cmd} 2>&1`], timeoutMs: 60_000 });
  if (r.timedOut) throw new Error(`${cmd} did not finish within 60 s: ${r.stdout}`);
  return { exitCode: r.exitCode, out: r.stdout.toString().trim() };
}

/** Stops a VM. */
export async function stop({ id }) {
  const vm = vms.get(id);
  vms.delete(id);
  await vm.session.close().catch(() => {});
  await vm.m.close();
}

/** Processes under this one (QEMU, uplinks, namespace holders): `[{pid, comm}]`. */
export function processes() {
  return descendantsOf(process.pid).map(({ pid, comm }) => ({ pid, comm }));
}

/** Network namespaces the engine holds open. */
export function namespaces() {
  return liveNetworkNamespaces();
}

/** The network namespace inode of a process (to tell whether two share one). */
export function netns({ pid }) {
  return statSync(`/proc/${pid}/ns/net`).ino;
}

/** Text of a file on the host (e.g. /proc/PID/status). */
export function readHostFile({ path }) {
  return readFileSync(path, "utf8");
}

export async function close() {
  for (const id of [...vms.keys()]) await stop({ id });
  for (const p of prepared.values()) await p.close();
  rmSync(work, { recursive: true, force: true });
}
