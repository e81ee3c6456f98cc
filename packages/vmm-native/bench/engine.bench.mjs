#!/usr/bin/env node
// Engine benchmark (issue 2): cold boot to first exec, snapshot capture,
// restore to first exec (fresh QEMU process and QEMU started ahead), exec
// round trip, idle restored VM host memory (RSS/PSS, 1 VM and 4 VMs sharing
// one snapshot), and the baseline: a plain QEMU cold boot (spawned directly,
// no QMP, no setpriv) of the same kernel, initramfs and root fs to a first
// exec. Prints a table and writes bench-results/engine.json.
//
// Knobs: BENCH_ENGINE_BOOTS (5), BENCH_ENGINE_RESTORES (10), BENCH_ENGINE_EXECS (200).
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  busyboxRootfs,
  qemuDescendants,
  r1,
  repoRoot,
  sampleRow,
  since,
  sleep,
} from "../../../scripts/bench/guest.mjs";
import { memoryKib, printTable, summarize, writeResults } from "../../../scripts/bench/stats.mjs";

const {
  ConsoleSink,
  Machine,
  acquireNetwork,
  buildQemuArgs,
  chooseEngine,
  openAgentSession,
  resolveGuestAssets,
} = await import(join(repoRoot, "packages/vmm-native/dist/index.js"));
const { AgentSession } = await import(join(repoRoot, "packages/agent-protocol/dist/index.js"));

const BOOTS = Number(process.env.BENCH_ENGINE_BOOTS ?? 5);
const RESTORES = Number(process.env.BENCH_ENGINE_RESTORES ?? 10);
const EXECS = Number(process.env.BENCH_ENGINE_EXECS ?? 200);
const IDLE_MS = 4000;
const MEMORY_MIB = 256;

const work = mkdtempSync(join(tmpdir(), "sm-bench-engine-"));
const assets = resolveGuestAssets();
const spec = {
  kernel: assets.kernel,
  initrd: assets.initrd,
  memoryMib: MEMORY_MIB,
  vcpus: 1,
  rootfs: busyboxRootfs(work),
};
// chosen (and the accelerator probed, if any) once, off the clock
const engine = await chooseEngine({ kernel: assets.kernel, initrd: assets.initrd });
const { accel, qemu } = engine;
// VMs of one network policy share a namespace; in a pool the pre-started QEMU keeps it, here this lease
// (making it costs tens of ms, once per policy: see bench/network.bench.mjs)
const netLease = await acquireNetwork();
const live = new Set(); // Machines and PreparedRestores to close on the way out
const plainChildren = new Set(); // plain QEMU children of the baseline
process.on("exit", () => {
  for (const c of plainChildren) c.kill("SIGKILL");
});

const rows = [];
const results = { accel, qemuVersion: qemu.version, spec: { memoryMib: MEMORY_MIB, vcpus: 1 }, samples: {} };

function addSamples(key, metric, xs, unit, note) {
  rows.push(sampleRow(metric, xs, unit, note));
  results.samples[key] = { unit, ...summarize(xs), values: xs.map(r1) };
}

function track(x) {
  live.add(x);
  return x;
}

async function closeTracked(x) {
  live.delete(x);
  await x.close();
}

/** `run(["true"])` must succeed: the VM really execs. */
async function execTrue(session) {
  const r = await session.run({ argv: ["true"] });
  if (r.exitCode !== 0) throw new Error(`true exited ${r.exitCode}`);
}

/**
 * Times `start()` (which yields a running Machine), the agent handshake and a
 * first `run(["true"])`, from one clock: `{ m, tStart, tSession, total }`.
 * The session is closed again; the machine is the caller's.
 */
async function timeToFirstExec(start) {
  const t0 = performance.now();
  const m = await start();
  const tStart = since(t0);
  const session = await openAgentSession(m);
  const tSession = since(t0);
  await execTrue(session);
  const total = since(t0);
  await session.close();
  return { m, tStart, tSession, total };
}

/** Machine.boot + openAgentSession + run(["true"]); then captures a snapshot into `dir` (timed apart). */
async function coldBootAndCapture(dir) {
  let m;
  try {
    const r = await timeToFirstExec(async () => {
      m = track(await Machine.boot(spec, { memoryFile: join(dir, "memory.bin") }));
      return m;
    });
    const { total, tSession } = r;
    const tBoot = r.tStart;
    const t1 = performance.now();
    const files = await m.captureSnapshot(dir);
    const capture = since(t1);
    const stateBytes = statSync(files.stateFile).size;
    const memAllocated = statSync(files.memoryFile).blocks * 512;
    return { total, tBoot, tSession, capture, stateBytes, memAllocated };
  } finally {
    if (m) await closeTracked(m);
  }
}

function connectWithRetry(path, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = connect(path);
      s.once("connect", () => {
        s.removeAllListeners("error");
        resolve(s);
      });
      s.once("error", (err) => {
        if (Date.now() > deadline) reject(err);
        else setTimeout(attempt, 5);
      });
    };
    attempt();
  });
}

/**
 * The baseline: `qemu-system-x86_64` spawned directly with the engine's own
 * device model (buildQemuArgs, minus the QMP socket), timed from spawn to the
 * first `true` exec returned over the agent's virtio-serial socket.
 */
async function plainQemuBoot(i) {
  const dir = join(work, `plain-${i}`);
  mkdirSync(dir);
  const args = buildQemuArgs(spec, {
    accel,
    cpuModel: engine.cpuModel,
    memoryFile: join(dir, "memory.bin"),
    memoryShared: true,
    qmpSocket: join(dir, "qmp.sock"),
    agentSocket: join(dir, "agent.sock"),
    consolePipe: join(dir, "console.pipe"),
    incoming: false,
  });
  const consoleSink = await ConsoleSink.open(join(dir, "console.pipe"));
  const q = args.indexOf("-qmp");
  args.splice(q, 2);
  const t0 = performance.now();
  const child = spawn(qemu.path, args, { stdio: "ignore" });
  plainChildren.add(child);
  const exited = new Promise((r) => child.once("exit", r));
  try {
    const socket = await Promise.race([
      connectWithRetry(join(dir, "agent.sock"), 30_000),
      exited.then((code) => Promise.reject(new Error(`plain QEMU exited (${code})`))),
    ]);
    const session = await AgentSession.open(socket, { handshakeTimeoutMs: 60_000 });
    await execTrue(session);
    const ms = since(t0);
    await session.close();
    return ms;
  } finally {
    child.kill("SIGKILL");
    await exited;
    consoleSink.close();
    plainChildren.delete(child);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Machine.restore + openAgentSession + run(["true"]) with a fresh QEMU process. */
async function freshRestore(snap, opts = {}) {
  let m;
  try {
    const r = await timeToFirstExec(async () => {
      m = track(await Machine.restore(snap, opts));
      return m;
    });
    return { total: r.total, tRestore: r.tStart, tSession: r.tSession };
  } finally {
    if (m) await closeTracked(m);
  }
}

/** prepareRestore off the clock; then complete() + openAgentSession + run(["true"]). */
async function preparedRestore(snap, opts = {}) {
  const tp = performance.now();
  const prepared = track(await Machine.prepareRestore(snap, opts));
  const prepareMs = since(tp);
  await sleep(300); // the waiting QEMU settles, as in a pool that starts it ahead
  try {
    const r = await timeToFirstExec(() => prepared.complete());
    return { total: r.total, tRestore: r.tStart, tSession: r.tSession, prepareMs };
  } finally {
    await closeTracked(prepared);
  }
}

/** Restores `n` VMs from `snap`, execs once in each, waits idle, reads RSS/PSS of each QEMU. */
async function idleMemory(snap, n) {
  const vms = [];
  try {
    for (let i = 0; i < n; i++) {
      const m = track(await Machine.restore(snap));
      vms.push(m);
      const s = await openAgentSession(m);
      await execTrue(s);
      vms.push(s);
    }
    await sleep(IDLE_MS);
    return vms.filter((x) => x instanceof Machine).map((m) => ({ pid: m.pid, ...memoryKib(m.pid) }));
  } finally {
    for (const x of vms) {
      if (x instanceof Machine) await closeTracked(x);
      else await x.close();
    }
  }
}

const p50 = (xs) => r1(summarize(xs).p50);

/** Runs `a` then `b` on even `i`, `b` then `a` on odd; resolves with [a's result, b's result]. */
async function inOrder(i, a, b) {
  if (i % 2 === 0) {
    const x = await a();
    return [x, await b()];
  }
  const y = await b();
  return [await a(), y];
}

/** Confined vs unconfined runs taken in alternation: the ratio of p50s and the p50 of the pairwise differences (robust to load drift). */
function confinementCost(confined, unconfined) {
  const on = confined.map((r) => r.total);
  const off = unconfined.map((r) => r.total);
  const pct = r1((summarize(on).p50 / summarize(off).p50 - 1) * 100);
  return `${pct}% at p50, paired difference p50 ${p50(on.map((x, i) => x - off[i]))} ms`;
}
const mib = (kib) => kib / 1024;

try {
  // 1. cold boots (each captured into its own snapshot), interleaved with the plain QEMU baseline
  const boots = [];
  const plain = [];
  let snap;
  for (let i = 0; i < BOOTS; i++) {
    const dir = join(work, `snap-${i}`);
    boots.push(await coldBootAndCapture(dir));
    if (i === 0) snap = dir;
    else rmSync(dir, { recursive: true, force: true });
    plain.push(await plainQemuBoot(i));
  }
  addSamples(
    "coldBootToFirstExec",
    "cold boot to first exec",
    boots.map((b) => b.total),
    "ms",
    `Machine.boot + openAgentSession + run(true); boot() returns at p50 ${p50(boots.map((b) => b.tBoot))}, session at ${p50(boots.map((b) => b.tSession))}`,
  );
  addSamples(
    "plainQemuColdBootToFirstExec",
    "baseline: plain QEMU cold boot to first exec",
    plain,
    "ms",
    "qemu-system-x86_64 spawned with the same args (no QMP, no setpriv), AgentSession.open + run(true)",
  );
  addSamples(
    "snapshotCapture",
    "snapshot capture (booted VM)",
    boots.map((b) => b.capture),
    "ms",
    "captureSnapshot: pause + device state to restore.snap; RAM file is already the memory image",
  );
  addSamples(
    "snapshotStateFile",
    "snapshot state file (restore.snap)",
    boots.map((b) => b.stateBytes / 1024),
    "KiB",
    "",
  );
  addSamples(
    "snapshotMemoryAllocated",
    "snapshot memory.bin on disk",
    boots.map((b) => b.memAllocated / 1024 / 1024),
    "MiB",
    `allocated blocks of a sparse ${MEMORY_MIB} MiB file`,
  );

  // 2. restores (confined, as always; interleaved with unconfined ones to measure confinement's cost)
  const fresh = [];
  const freshPlain = [];
  for (let i = 0; i < RESTORES; i++) {
    // alternate which goes first, so that neither always runs on a warmer cache
    const [a, b] = await inOrder(
      i,
      () => freshRestore(snap),
      () => freshRestore(snap, { confine: false }),
    );
    fresh.push(a);
    freshPlain.push(b);
  }
  addSamples(
    "restoreFreshToFirstExec",
    "restore to first exec, fresh QEMU",
    fresh.map((r) => r.total),
    "ms",
    `Machine.restore + session + run(true); restore() returns at p50 ${p50(fresh.map((r) => r.tRestore))}, session at ${p50(fresh.map((r) => r.tSession))}`,
  );
  addSamples(
    "restoreFreshToFirstExecUnconfined",
    "restore to first exec, fresh QEMU, unconfined",
    freshPlain.map((r) => r.total),
    "ms",
    `confine: false (no bwrap/prlimit/setpriv/seccomp); confinement costs ${confinementCost(fresh, freshPlain)}`,
  );
  const prepared = [];
  const preparedPlain = [];
  for (let i = 0; i < RESTORES; i++) {
    const [a, b] = await inOrder(
      i,
      () => preparedRestore(snap),
      () => preparedRestore(snap, { confine: false }),
    );
    prepared.push(a);
    preparedPlain.push(b);
  }
  addSamples(
    "restorePreparedToFirstExec",
    "restore to first exec, QEMU started ahead",
    prepared.map((r) => r.total),
    "ms",
    `complete() + session + run(true); complete() returns at p50 ${p50(prepared.map((r) => r.tRestore))}, session at ${p50(prepared.map((r) => r.tSession))}`,
  );
  addSamples(
    "restorePreparedToFirstExecUnconfined",
    "restore to first exec, QEMU started ahead, unconfined",
    preparedPlain.map((r) => r.total),
    "ms",
    `confine: false; confinement costs ${confinementCost(prepared, preparedPlain)}`,
  );
  addSamples(
    "prepareRestoreUnconfined",
    "prepareRestore, unconfined (off the clock)",
    preparedPlain.map((r) => r.prepareMs),
    "ms",
    "",
  );
  addSamples(
    "prepareRestore",
    "prepareRestore (off the clock above)",
    prepared.map((r) => r.prepareMs),
    "ms",
    "QEMU process start to waiting in -incoming defer",
  );

  // 3. exec round trip on a restored VM
  {
    const m = track(await Machine.restore(snap));
    try {
      const session = await openAgentSession(m);
      for (let i = 0; i < 10; i++) await execTrue(session);
      const xs = [];
      for (let i = 0; i < EXECS; i++) {
        const t0 = performance.now();
        await execTrue(session);
        xs.push(since(t0));
      }
      const pings = [];
      for (let i = 0; i < 50; i++) {
        const t0 = performance.now();
        await session.ping();
        pings.push(since(t0));
      }
      await session.close();
      const s = summarize(xs);
      rows.push({
        metric: "exec round trip p50",
        value: r1(s.p50),
        unit: "ms",
        note: `run(["true"]) sequential on a restored VM; n=${s.n}, min ${r1(s.min)}, max ${r1(s.max)}`,
      });
      rows.push({ metric: "exec round trip p99", value: r1(s.p99), unit: "ms", note: "" });
      results.samples.execRoundTrip = { unit: "ms", ...s, values: xs.map(r1) };
      addSamples("pingRoundTrip", "agent ping round trip", pings, "ms", "PING/PONG, no process");
    } finally {
      await closeTracked(m);
    }
  }

  // 4. idle host memory: 1 VM alone, then 4 VMs restored from the same snapshot
  const one = await idleMemory(snap, 1);
  const four = await idleMemory(snap, 4);
  const avg = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const memRow = (metric, procs, key, note) =>
    rows.push({
      metric,
      value: r1(mib(avg(procs.map((p) => p[key])))),
      unit: "MiB",
      note: [
        procs.length > 1
          ? `mean of ${procs.length}; min ${r1(mib(Math.min(...procs.map((p) => p[key]))))}, max ${r1(mib(Math.max(...procs.map((p) => p[key]))))}`
          : "",
        note,
      ]
        .filter(Boolean)
        .join("; "),
    });
  const idleNote = `QEMU of a restored VM after one exec and ${IDLE_MS / 1000} s idle`;
  memRow("idle VM RSS, 1 VM", one, "rssKib", idleNote);
  memRow("idle VM PSS, 1 VM", one, "pssKib", "");
  memRow(
    "idle VM anonymous, 1 VM",
    one,
    "anonKib",
    "private: QEMU heap, TCG, guest pages written since restore",
  );
  memRow("idle VM RSS, 4 VMs", four, "rssKib", "4 VMs from one snapshot, alive together");
  memRow("idle VM PSS, 4 VMs", four, "pssKib", "snapshot pages shared via the page cache");
  memRow("idle VM anonymous, 4 VMs", four, "anonKib", "");
  results.idleMemory = { idleMs: IDLE_MS, oneVm: one, fourVms: four };

  printTable(
    `engine (busybox rootfs, QEMU ${qemu.version} ${accel.toUpperCase()}, ${MEMORY_MIB} MiB, 1 vCPU)`,
    rows,
  );
  writeResults("engine", { rows, results });
} finally {
  for (const x of [...live]) await closeTracked(x).catch(() => {});
  await netLease.release();
  for (const c of plainChildren) c.kill("SIGKILL");
  rmSync(work, { recursive: true, force: true });
  const left = qemuDescendants();
  if (left.length) {
    console.error(`QEMU processes left behind: ${left.join(" ")}`);
    process.exitCode = 1;
  }
}
