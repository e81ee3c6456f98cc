#!/usr/bin/env node
// Guest kernel benchmark (issue 12): the current guest kernel against the one
// before the container-parity options, in one run, with the same agent
// initramfs and busybox root fs: bzImage size, cold boot to first exec,
// restore to first exec (fresh QEMU), and the guest's free memory after boot.
// Runs alternate between the two kernels so drift on a shared machine hits
// both alike. Prints a table and writes bench-results/kernel.json.
//
// The "before" kernel is the build cache's entry for the previous fragment
// (BEFORE_HASH), or BENCH_KERNEL_BEFORE=path/to/bzImage. Build it with
//   git show 2915634:packages/vmm-native/guest/kernel/supermachine.config > /tmp/f
//   SUPERMACHINE_KERNEL_FRAGMENT=/tmp/f bash packages/vmm-native/guest/build-kernel.sh
// Knobs: BENCH_KERNEL_BOOTS (4), BENCH_KERNEL_RESTORES (6).
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { busyboxRootfs, qemuDescendants, r1, repoRoot, since } from "../../../scripts/bench/guest.mjs";
import { printTable, summarize, writeResults } from "../../../scripts/bench/stats.mjs";

const { Machine, chooseEngine, openAgentSession, resolveGuestAssets } = await import(
  join(repoRoot, "packages/vmm-native/dist/index.js")
);

/** Hash (build-kernel.sh) of the fragment before the container-parity options. */
const BEFORE_HASH = "eabb005858d47238";
const BOOTS = Number(process.env.BENCH_KERNEL_BOOTS ?? 4);
const RESTORES = Number(process.env.BENCH_KERNEL_RESTORES ?? 6);
const MEMORY_MIB = 256;

const assets = resolveGuestAssets();
const cache = process.env.SUPERMACHINE_CACHE ?? join(homedir(), ".cache", "supermachine");
const beforePath = process.env.BENCH_KERNEL_BEFORE ?? join(cache, "kernel", BEFORE_HASH, "bzImage");
const work = mkdtempSync(join(tmpdir(), "sm-bench-kernel-"));
const rootfs = busyboxRootfs(work);
const rows = [];
const results = { memoryMib: MEMORY_MIB, kernels: {} };
const live = new Set();

async function firstExec(m) {
  const session = await openAgentSession(m);
  const r = await session.run({ argv: ["true"] });
  if (r.exitCode !== 0) throw new Error(`true exited ${r.exitCode}`);
  return session;
}

/** Cold boot to first exec; the first boot of each kernel is also captured as the restore snapshot. */
async function coldBoot(k, dir) {
  const t0 = performance.now();
  const m = await Machine.boot(k.spec, { memoryFile: join(dir, "memory.bin"), engine: k.engine });
  live.add(m);
  try {
    const session = await firstExec(m);
    const ms = since(t0);
    const meminfo = (await session.run({ argv: ["cat", "/proc/meminfo"] })).stdout.toString();
    await session.close();
    const kib = (name) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(meminfo)?.[1] ?? Number.NaN);
    if (!k.snapshot) {
      await m.captureSnapshot(dir);
      k.snapshot = dir;
    }
    return { ms, memTotal: kib("MemTotal"), memAvailable: kib("MemAvailable") };
  } finally {
    live.delete(m);
    await m.close();
  }
}

async function restore(k) {
  const t0 = performance.now();
  const m = await Machine.restore(k.snapshot);
  live.add(m);
  try {
    const session = await firstExec(m);
    const ms = since(t0);
    await session.close();
    return ms;
  } finally {
    live.delete(m);
    await m.close();
  }
}

const p50 = (xs) => r1(summarize(xs).p50);

try {
  const kernels = [
    { name: "before", path: beforePath },
    { name: "after", path: assets.kernel },
  ].filter((k) => {
    if (existsSync(k.path)) return true;
    rows.push({
      metric: `${k.name}: kernel`,
      value: "-",
      unit: "",
      note: `${k.path} is missing (see the header)`,
    });
    return false;
  });
  for (const k of kernels) {
    k.spec = { kernel: k.path, initrd: assets.initrd, memoryMib: MEMORY_MIB, vcpus: 1, rootfs };
    k.engine = await chooseEngine({ kernel: k.path, initrd: assets.initrd }); // off the clock
    k.boots = [];
    k.restores = [];
    k.dir = (i) => join(work, `${k.name}-${i}`);
  }
  for (let i = 0; i < BOOTS; i++) for (const k of kernels) k.boots.push(await coldBoot(k, k.dir(i)));
  for (let i = 0; i < RESTORES; i++) for (const k of kernels) k.restores.push(await restore(k));
  for (const k of kernels) {
    const size = statSync(k.path).size;
    const boot = summarize(k.boots.map((b) => b.ms));
    const rest = summarize(k.restores);
    const avail = k.boots.map((b) => b.memAvailable / 1024);
    rows.push({ metric: `${k.name}: bzImage`, value: r1(size / 1024), unit: "KiB", note: k.path });
    rows.push({
      metric: `${k.name}: cold boot to first exec`,
      value: r1(boot.p50),
      unit: "ms",
      note: `p50 of ${boot.n}; min ${r1(boot.min)}, max ${r1(boot.max)}`,
    });
    rows.push({
      metric: `${k.name}: restore to first exec`,
      value: r1(rest.p50),
      unit: "ms",
      note: `fresh QEMU; p50 of ${rest.n}; min ${r1(rest.min)}, max ${r1(rest.max)}`,
    });
    rows.push({
      metric: `${k.name}: guest MemAvailable after boot`,
      value: p50(avail),
      unit: "MiB",
      note: `MemTotal ${r1(k.boots[0].memTotal / 1024)} MiB of ${MEMORY_MIB}`,
    });
    results.kernels[k.name] = {
      path: k.path,
      bzImageBytes: size,
      coldBootToFirstExecMs: { ...boot, values: k.boots.map((b) => r1(b.ms)) },
      restoreToFirstExecMs: { ...rest, values: k.restores.map(r1) },
      memAvailableMib: avail.map(r1),
      memTotalKib: k.boots[0].memTotal,
    };
  }
  printTable(
    `guest kernel before/after (${kernels[0]?.engine.accel.toUpperCase() ?? "?"}, ${MEMORY_MIB} MiB, 1 vCPU)`,
    rows,
  );
  writeResults("kernel", { rows, results });
} finally {
  for (const m of live) await m.close().catch(() => {});
  rmSync(work, { recursive: true, force: true });
  const left = qemuDescendants();
  if (left.length) {
    console.error(`QEMU processes left behind: ${left.join(" ")}`);
    process.exitCode = 1;
  }
}
