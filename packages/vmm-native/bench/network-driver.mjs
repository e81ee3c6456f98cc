// Driver of the network benchmark: runs in the network lab's host namespace
// (test-support/netlab-host.mjs), so the guests' downloads come from the
// lab's "internet" server and every packet stays in the lab. Each export is
// one measurement; `mode` picks how the VM's network runs:
//   "unfiltered": QEMU's user network in the host's namespace (before network policies);
//   "policy":     QEMU in the namespace of the default policy (nftables filter + slirp4netns uplink).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { busyboxRootfs, since, sleep } from "../../../scripts/bench/guest.mjs";
import { memoryKib } from "../../../scripts/bench/stats.mjs";

const engine = await import(new URL("../dist/index.js", import.meta.url).href);
const { Machine, openAgentSession, resolveGuestAssets, acquireNetwork } = engine;

const work = mkdtempSync(join(tmpdir(), "sm-bench-network-"));
let snap;
/** A lease that keeps the default policy's namespace alive (as a pool's pre-started QEMU does). */
let held;

function setMode(mode) {
  if (mode === "unfiltered") process.env.SUPERMACHINE_UNFILTERED_NETWORK = "1";
  else delete process.env.SUPERMACHINE_UNFILTERED_NETWORK;
}

async function execTrue(session) {
  const r = await session.run({ argv: ["true"] });
  if (r.exitCode !== 0) throw new Error(`true exited ${r.exitCode}`);
}

/** Bakes the busybox guest once (under the default policy). */
export async function setup() {
  const assets = resolveGuestAssets();
  const spec = {
    kernel: assets.kernel,
    initrd: assets.initrd,
    memoryMib: 256,
    vcpus: 1,
    rootfs: busyboxRootfs(work),
  };
  snap = join(work, "snap");
  const m = await Machine.boot(spec, { memoryFile: join(snap, "memory.bin") });
  try {
    const s = await openAgentSession(m);
    await execTrue(s);
    await s.close();
    await m.captureSnapshot(snap);
  } finally {
    await m.close();
  }
  return { accel: m.accel, qemuVersion: m.qemuVersion };
}

/** Holds (or drops) a lease on the default policy's namespace. */
export async function hold({ on }) {
  setMode("policy");
  if (on && !held) held = await acquireNetwork();
  if (!on && held) {
    await held.release();
    held = undefined;
  }
}

/** Time to create the default policy's namespace (holder, nftables, uplink) and the uplink's memory. */
export async function namespaceCost() {
  setMode("policy");
  const t0 = performance.now();
  const lease = await acquireNetwork();
  const ms = since(t0);
  await sleep(500);
  const mem = memoryKib(lease.namespace.uplinkPid);
  await lease.release();
  return { ms, uplinkRssKib: mem.rssKib, uplinkPssKib: mem.pssKib };
}

/** Machine.restore + session + run(true): restore to first exec with a fresh QEMU. */
export async function freshRestore({ mode }) {
  setMode(mode);
  const t0 = performance.now();
  const m = await Machine.restore(snap);
  try {
    const s = await openAgentSession(m);
    await execTrue(s);
    const total = since(t0);
    await s.close();
    return total;
  } finally {
    await m.close();
  }
}

/** prepareRestore off the clock (as a pool's spare), then complete + session + run(true). */
export async function preparedRestore({ mode }) {
  setMode(mode);
  const p = await Machine.prepareRestore(snap);
  await sleep(300);
  const t0 = performance.now();
  const m = await p.complete();
  try {
    const s = await openAgentSession(m);
    await execTrue(s);
    const total = since(t0);
    await s.close();
    return total;
  } finally {
    await m.close();
  }
}

/**
 * Restores a VM, then times `wget` of `bytes` from the lab's HTTP server
 * (198.51.100.1:8080) to /dev/null in the guest, `runs` times; also the exec
 * round trip. Returns MiB/s per download and round trips (ms).
 */
export async function throughput({ mode, url, bytes, runs, execs }) {
  setMode(mode);
  const m = await Machine.restore(snap);
  // the namespace this VM runs in (same policy, same namespace): to read the uplink's CPU time
  const lease = mode === "policy" ? await acquireNetwork() : undefined;
  try {
    const s = await openAgentSession(m);
    const mibps = [];
    const qemuCpu = [];
    const uplinkCpu = [];
    for (let i = 0; i < runs; i++) {
      const q0 = cpuSeconds(m.pid);
      const p0 = lease ? cpuSeconds(lease.namespace.uplinkPid) : 0;
      const t0 = performance.now();
      const r = await s.run({ argv: ["wget", "-q", "-O", "/dev/null", url] });
      const sec = since(t0) / 1000;
      if (r.exitCode !== 0) throw new Error(`wget failed (${mode}): ${r.stderr}`);
      mibps.push(bytes / 1024 / 1024 / sec);
      qemuCpu.push(cpuSeconds(m.pid) - q0);
      if (lease) uplinkCpu.push(cpuSeconds(lease.namespace.uplinkPid) - p0);
    }
    for (let i = 0; i < 10; i++) await execTrue(s);
    const rtt = [];
    for (let i = 0; i < execs; i++) {
      const t0 = performance.now();
      await execTrue(s);
      rtt.push(since(t0));
    }
    await s.close();
    return { mibps, rtt, qemuCpu, uplinkCpu };
  } finally {
    await m.close();
    await lease?.release();
  }
}

/** User + system CPU seconds a process has used (all threads). */
function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

export async function close() {
  if (held) await held.release();
  rmSync(work, { recursive: true, force: true });
}
