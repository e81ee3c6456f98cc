#!/usr/bin/env node
// Guest architectures side by side (issue 11): the same engine measurements
// for an x86_64 guest (QEMU microvm) and an aarch64 guest (QEMU virt), each
// with its own kernel and agent and Debian's busybox-static of its
// architecture, in one run: cold boot to first exec, restore to first exec
// (fresh QEMU, and QEMU started ahead as a pool does), exec round trip, idle
// host memory of a restored VM. On an x86_64 host without KVM both run under
// TCG; the aarch64 guest is then translated instruction by instruction from a
// foreign ISA. Prints a table and writes bench-results/arch.json.
//
// Knobs: BENCH_ARCH_BOOTS (3), BENCH_ARCH_RESTORES (5), BENCH_ARCH_EXECS (100).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { busyboxRootfs, qemuDescendants, r1, repoRoot, since, sleep } from "../../../scripts/bench/guest.mjs";
import { memoryKib, printTable, summarize, writeResults } from "../../../scripts/bench/stats.mjs";
import { arm64BusyboxPath } from "../../../test-support/test-images.mjs";

const { Machine, acquireNetwork, chooseEngine, openAgentSession, resolveGuestAssets } = await import(
  join(repoRoot, "packages/vmm-native/dist/index.js")
);

const BOOTS = Number(process.env.BENCH_ARCH_BOOTS ?? 3);
const RESTORES = Number(process.env.BENCH_ARCH_RESTORES ?? 5);
const EXECS = Number(process.env.BENCH_ARCH_EXECS ?? 100);
const IDLE_MS = 4000;
const MEMORY_MIB = 256;
const ARCHES = ["x86_64", "aarch64"];

const work = mkdtempSync(join(tmpdir(), "sm-bench-arch-"));
const live = new Set();
const netLease = await acquireNetwork();

async function execTrue(session) {
  const r = await session.run({ argv: ["true"] });
  if (r.exitCode !== 0) throw new Error(`true exited ${r.exitCode}`);
}

async function toFirstExec(start) {
  const t0 = performance.now();
  const m = await start();
  live.add(m);
  const s = await openAgentSession(m, 120_000);
  await execTrue(s);
  const ms = since(t0);
  await s.close();
  return { m, ms };
}

async function closeIt(x) {
  live.delete(x);
  await x.close();
}

/** Every measurement for one architecture. */
async function measure(arch) {
  const assets = resolveGuestAssets(arch);
  const dir = join(work, arch);
  const spec = {
    arch,
    kernel: assets.kernel,
    initrd: assets.initrd,
    memoryMib: MEMORY_MIB,
    vcpus: 1,
    rootfs: busyboxRootfs(dir, arch === "aarch64" ? arm64BusyboxPath() : "/bin/busybox"),
  };
  const engine = await chooseEngine({ arch, kernel: assets.kernel, initrd: assets.initrd });
  const out = { arch, accel: engine.accel, qemu: engine.qemu.path, samples: {} };
  // 1. cold boots; the first one is kept as the snapshot
  const boots = [];
  const snap = join(dir, "snap");
  for (let i = 0; i < BOOTS; i++) {
    const d = i === 0 ? snap : join(dir, `boot-${i}`);
    const { m, ms } = await toFirstExec(() =>
      Machine.boot(spec, { engine, memoryFile: join(d, "memory.bin") }),
    );
    boots.push(ms);
    if (i === 0) await m.captureSnapshot(snap);
    await closeIt(m);
    if (i > 0) rmSync(d, { recursive: true, force: true });
  }
  out.samples.coldBoot = boots;
  // 2. restores: a fresh QEMU each, and QEMU started ahead (complete() on the clock)
  const fresh = [];
  const ahead = [];
  for (let i = 0; i < RESTORES; i++) {
    const f = await toFirstExec(() => Machine.restore(snap));
    fresh.push(f.ms);
    await closeIt(f.m);
    const prepared = await Machine.prepareRestore(snap);
    live.add(prepared);
    await sleep(300);
    const a = await toFirstExec(() => prepared.complete());
    ahead.push(a.ms);
    live.delete(prepared);
    await closeIt(a.m);
  }
  out.samples.restoreFresh = fresh;
  out.samples.restoreAhead = ahead;
  // 3. exec round trip and 4. idle memory, on one restored VM
  const m = await Machine.restore(snap);
  live.add(m);
  try {
    const s = await openAgentSession(m, 120_000);
    for (let i = 0; i < 10; i++) await execTrue(s);
    const xs = [];
    for (let i = 0; i < EXECS; i++) {
      const t0 = performance.now();
      await execTrue(s);
      xs.push(since(t0));
    }
    out.samples.execRoundTrip = xs;
    await s.close();
    await sleep(IDLE_MS);
    out.idleMemoryKib = memoryKib(m.pid);
  } finally {
    await closeIt(m);
  }
  return out;
}

const p50 = (xs) => r1(summarize(xs).p50);
try {
  const by = {};
  for (const arch of ARCHES) by[arch] = await measure(arch);
  const rows = [];
  const row = (metric, f, unit, note = "") => {
    for (const arch of ARCHES) {
      rows.push({
        metric: `${metric} [${arch}]`,
        value: f(by[arch]),
        unit,
        note: arch === ARCHES[0] ? note : "",
      });
    }
  };
  row(
    "cold boot to first exec p50",
    (r) => p50(r.samples.coldBoot),
    "ms",
    `n=${BOOTS}; Machine.boot + session + run(true)`,
  );
  row("restore to first exec, fresh QEMU p50", (r) => p50(r.samples.restoreFresh), "ms", `n=${RESTORES}`);
  row(
    "restore to first exec, QEMU started ahead p50",
    (r) => p50(r.samples.restoreAhead),
    "ms",
    `n=${RESTORES}; as a pool does`,
  );
  row(
    "exec round trip p50",
    (r) => p50(r.samples.execRoundTrip),
    "ms",
    `n=${EXECS}; run(["true"]) sequential`,
  );
  row("exec round trip p99", (r) => r1(summarize(r.samples.execRoundTrip).p99), "ms");
  row(
    "idle restored VM RSS",
    (r) => r1(r.idleMemoryKib.rssKib / 1024),
    "MiB",
    `after one exec and ${IDLE_MS / 1000} s idle`,
  );
  row("idle restored VM PSS", (r) => r1(r.idleMemoryKib.pssKib / 1024), "MiB");
  row(
    "idle restored VM anonymous",
    (r) => r1(r.idleMemoryKib.anonKib / 1024),
    "MiB",
    "QEMU heap, TCG code cache, pages written since restore",
  );
  const accels = ARCHES.map((a) => `${a} ${by[a].accel.toUpperCase()}`).join(", ");
  printTable(`guest architectures (busybox rootfs, ${MEMORY_MIB} MiB, 1 vCPU; ${accels})`, rows);
  writeResults("arch", {
    rows,
    results: Object.fromEntries(
      ARCHES.map((a) => [
        a,
        {
          ...by[a],
          samples: Object.fromEntries(
            Object.entries(by[a].samples).map(([k, xs]) => [k, { ...summarize(xs), values: xs.map(r1) }]),
          ),
        },
      ]),
    ),
  });
} finally {
  for (const x of [...live]) await x.close().catch(() => {});
  await netLease.release();
  rmSync(work, { recursive: true, force: true });
  const left = qemuDescendants();
  if (left.length) {
    console.error(`QEMU processes left behind: ${left.join(" ")}`);
    process.exitCode = 1;
  }
}
