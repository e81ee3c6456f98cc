#!/usr/bin/env node
// The performance goals (issue 13) as ratios measured in one run, with their
// baselines: restore to first exec versus a plain cold boot, the first exec
// of a freshly handed-out VM versus a steady one, the exec round trip versus
// the guest's own fork+exec, idle memory of 10 VMs from one snapshot (PSS,
// private, and where the private memory goes), cycle throughput with 4
// workers, and stdout streaming versus readFile. Restores and execs are
// broken into phases. Prints a table and writes bench-results/perf.json.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  cpuMs,
  memoryBreakdownKib,
  printTable,
  summarize,
  writeResults,
} from "../../../scripts/bench/stats.mjs";
import {
  core,
  cycleThroughput,
  layouts,
  plainBootToFirstExec,
  qemuPids,
  r1,
  sleep,
  startRegistry,
} from "./support.mjs";

const { Image } = core;
const { Machine, openAgentSession, warmTranslation } = await import("@supermachine/vmm-native");
const N = Number(process.env.BENCH_PERF_RUNS ?? 12);
const CYCLES = Number(process.env.BENCH_PERF_CYCLES ?? 40);
const IDLE_VMS = Number(process.env.BENCH_PERF_IDLE_VMS ?? 10);
const rows = [];
const results = {};
const work = mkdtempSync(join(tmpdir(), "sm-bench-perf-"));
const p50 = (xs) => summarize(xs).p50;

function row(metric, value, unit, note) {
  rows.push({ metric, value: typeof value === "number" ? r1(value) : value, unit, note });
}
function ratioRow(metric, value, goal, note) {
  rows.push({ metric, value: Math.round(value * 100) / 100, unit: "x", note: `goal ${goal}; ${note}` });
  results.ratios ??= {};
  results.ratios[metric] = value;
}

async function ms(fn) {
  const t0 = performance.now();
  const result = await fn();
  return { ms: performance.now() - t0, result };
}

/**
 * QEMU started ahead (off the clock), then each phase of a restore up to a
 * first exec: wall time, and the CPU time QEMU spent in each (what a pool
 * pays per recycled VM before it is ready: start, complete, session, warm-up).
 */
async function restorePhases(snapshotDir) {
  const phases = { complete: [], session: [], warmup: [], firstExec: [], total: [] };
  const cpu = { start: [], complete: [], session: [], warmup: [], firstExec: [], untilReady: [] };
  for (let i = 0; i < N; i++) {
    const prepared = await Machine.prepareRestore(snapshotDir);
    await sleep(300);
    const pid = prepared.machine.pid;
    const c0 = cpuMs(pid);
    const t0 = performance.now();
    const m = await prepared.complete();
    const t1 = performance.now();
    const c1 = cpuMs(pid);
    const session = await openAgentSession(m);
    const t2 = performance.now();
    const c2 = cpuMs(pid);
    await warmTranslation(m, session);
    const t3 = performance.now();
    const c3 = cpuMs(pid);
    await session.run({ argv: ["true"] });
    const t4 = performance.now();
    const c4 = cpuMs(pid);
    phases.complete.push(t1 - t0);
    phases.session.push(t2 - t1);
    phases.warmup.push(t3 - t2);
    phases.firstExec.push(t4 - t3);
    phases.total.push(t4 - t0);
    cpu.start.push(c0);
    cpu.complete.push(c1 - c0);
    cpu.session.push(c2 - c1);
    cpu.warmup.push(c3 - c2);
    cpu.firstExec.push(c4 - c3);
    cpu.untilReady.push(c3);
    await session.close();
    await m.close();
  }
  results.restorePhases = phases;
  results.restoreCpu = cpu;
  return { phases, cpu };
}

/** Steady exec round trips, and the guest timing its own fork+exec of the same binary. */
async function execFloor(image) {
  const pool = await image.pool({ min: 1, max: 1 });
  const vm = await pool.acquire();
  const first = await ms(() => vm.exec({ argv: ["true"] }));
  const steady = [];
  for (let i = 0; i < 10; i++) await vm.exec({ argv: ["true"] });
  for (let i = 0; i < N * 5; i++) steady.push((await ms(() => vm.exec({ argv: ["true"] }))).ms);
  // busybox sh runs `true` as a builtin: name the binary so it forks and execs
  const loops = 200;
  const r = await vm.exec({
    argv: [
      "sh",
      "-c",
      // /proc/uptime in centiseconds, read with builtins (busybox date has no %N)
      `cs() { read u x < /proc/uptime; echo \${u%.*}\${u#*.}; }; s=$(cs); i=0; while [ $i -lt ${loops} ]; do /bin/true; i=$((i+1)); done; e=$(cs); echo $(( (e - s) * 10000 ))`,
    ],
  });
  const guestForkExec = Number(r.stdout.toString().trim()) / 1000 / loops;
  // The same VM, long past its restore, after the same 200 ms pause the idle-queue
  // measure makes: what any idle VM pays (the host's and the guest's caches went cold).
  const afterPause = [];
  for (let i = 0; i < N; i++) {
    await sleep(200);
    afterPause.push((await ms(() => vm.exec({ argv: ["true"] }))).ms);
  }
  await vm.release();
  await pool.shutdown();
  results.exec = { firstOnReadyVm: first.ms, steady, guestForkExec, afterPause };
  return { first: first.ms, steady: p50(steady), guestForkExec, afterPause: p50(afterPause) };
}

/** First exec on a VM taken from the idle queue (restored and made ready in the background). */
async function firstExecOnIdle(image) {
  const pool = await image.pool({ min: 1, max: 1 });
  const xs = [];
  for (let i = 0; i < N; i++) {
    while (pool.stats().idle < 1) await sleep(5);
    await sleep(200);
    const vm = await pool.acquire();
    xs.push((await ms(() => vm.exec({ argv: ["true"] }))).ms);
    await vm.release();
  }
  await pool.shutdown();
  results.firstExecOnIdle = xs;
  return p50(xs);
}

async function idleMemory(image) {
  const before = new Set(qemuPids());
  const pool = await image.pool({ min: IDLE_VMS, max: IDLE_VMS, acquireTimeoutMs: 0 });
  const vms = [];
  for (let i = 0; i < IDLE_VMS; i++) vms.push(await pool.acquire());
  for (const vm of vms) await vm.exec({ argv: ["true"] });
  await sleep(3000);
  const pids = new Set(vms.map((vm) => vm.worker.machine.pid));
  const procs = qemuPids()
    .filter((p) => !before.has(p) && pids.has(p))
    .map((pid) => memoryBreakdownKib(pid));
  for (const vm of vms) await vm.release();
  await pool.shutdown();
  results.idleMemory = procs;
  const mib = (kib) => kib / 1024;
  const pss = procs.map((p) => mib(p.pss));
  const priv = procs.map((p) => mib(p.private));
  row(`idle VM PSS (${procs.length} VMs, one snapshot)`, p50(pss), "MiB", "p50; goal <= 16");
  row(`idle VM private (${procs.length} VMs, one snapshot)`, p50(priv), "MiB", "p50; goal <= 12");
  for (const part of Object.keys(procs[0].parts)) {
    const xs = procs.map((p) => mib(p.parts[part].private));
    const shared = procs.map((p) => mib(p.parts[part].pss - p.parts[part].private));
    row(`  private: ${part}`, p50(xs), "MiB", `p50; shared part of its PSS ${r1(p50(shared))} MiB`);
  }
}

async function throughput(image, workers) {
  const perSec = await cycleThroughput(image, workers, CYCLES);
  row(`cycle throughput, ${workers} workers`, perSec, "cycles/s", `${CYCLES} acquire+exec+release`);
  results[`throughput${workers}`] = perSec;
}

async function streams(image) {
  const pool = await image.pool({ min: 1, max: 1 });
  const vm = await pool.acquire();
  const pid = vm.worker.machine.pid;
  const mib = 64;
  await vm.exec({ argv: ["sh", "-c", `dd if=/dev/zero of=/tmp/big bs=1M count=${mib} 2>/dev/null`] });
  const out = [];
  const file = [];
  // QEMU's CPU (the guest's and the device's work) per stream, and the same
  // bytes crossing a pipe inside the guest with no agent involved: the part
  // of stdout's cost that readFile does not have.
  const cpu = { stdout: [], readFile: [], guestPipe: [] };
  // and this process's own CPU (the host side: socket reads, frames, flow control, the result)
  const hostCpu = { stdout: [], readFile: [] };
  const withCpu = async (list, fn, host) => {
    const c0 = cpuMs(pid);
    const h0 = process.cpuUsage();
    const r = await ms(fn);
    list.push(cpuMs(pid) - c0);
    const h = process.cpuUsage(h0);
    host?.push((h.user + h.system) / 1000);
    return r;
  };
  for (let i = 0; i < 3; i++) {
    const o = await withCpu(cpu.stdout, () => vm.exec({ argv: ["cat", "/tmp/big"] }), hostCpu.stdout);
    if (o.result.stdout.length !== mib * 2 ** 20) throw new Error("short stdout");
    out.push(mib / 1.048576 / (o.ms / 1000));
    const f = await withCpu(cpu.readFile, () => vm.readFile("/tmp/big"), hostCpu.readFile);
    if (f.result.length !== mib * 2 ** 20) throw new Error("short readFile");
    file.push(mib / 1.048576 / (f.ms / 1000));
    await withCpu(cpu.guestPipe, () => vm.exec({ argv: ["sh", "-c", "cat /tmp/big | cat > /dev/null"] }));
  }
  // Chatty output: a shell printing 20000 short lines, against the same loop
  // writing to /dev/null in the guest (what the agent adds per line).
  const loop = "i=0; while [ $i -lt 20000 ]; do echo line $i; i=$((i+1)); done";
  const lines = [];
  const devNull = [];
  for (let i = 0; i < 3; i++) {
    const l = await ms(() => vm.exec({ argv: ["sh", "-c", loop] }));
    if (l.result.stdout.toString().split("\n").length !== 20001) throw new Error("lines lost");
    lines.push(l.ms);
    devNull.push((await ms(() => vm.exec({ argv: ["sh", "-c", `${loop} > /dev/null`] }))).ms);
  }
  await vm.release();
  await pool.shutdown();
  results.streams = {
    stdoutMBs: out,
    readFileMBs: file,
    qemuCpuMs: cpu,
    hostCpuMs: hostCpu,
    linesMs: lines,
    linesToDevNullMs: devNull,
  };
  return {
    stdout: p50(out),
    readFile: p50(file),
    cpu: { stdout: p50(cpu.stdout), readFile: p50(cpu.readFile), guestPipe: p50(cpu.guestPipe) },
    hostCpu: { stdout: p50(hostCpu.stdout), readFile: p50(hostCpu.readFile) },
    lines: p50(lines),
    devNull: p50(devNull),
  };
}

const registry = await startRegistry();
try {
  const { busybox } = layouts();
  const ref = await registry.push(busybox, "busybox", "perf");
  const image = await Image.build({
    ref,
    insecureRegistries: [registry.host],
    snapshotsDir: join(work, "snapshots"),
  });

  const cold = [];
  for (let i = 0; i < 3; i++) cold.push((await plainBootToFirstExec(image)).ms);
  const { phases, cpu } = await restorePhases(image.snapshotPath);
  const restore = p50(phases.total);
  row(
    "baseline: plain QEMU cold boot to first exec",
    p50(cold),
    "ms",
    "p50 of 3; same kernel, agent, root fs",
  );
  row("restore to first exec (QEMU started ahead)", restore, "ms", `p50 of ${N}`);
  for (const [k, xs] of Object.entries(phases)) if (k !== "total") row(`  phase: ${k}`, p50(xs), "ms", "p50");
  ratioRow("cold boot / restore to first exec", p50(cold) / restore, ">= 30", "higher is better");
  row("QEMU CPU per restored VM until ready", p50(cpu.untilReady), "ms", `p50 of ${N}; what a recycle costs`);
  for (const [k, xs] of Object.entries(cpu)) if (k !== "untilReady") row(`  cpu: ${k}`, p50(xs), "ms", "p50");

  const ex = await execFloor(image);
  const idleFirst = await firstExecOnIdle(image);
  row("exec round trip `true`, steady", ex.steady, "ms", `p50 of ${N * 5}`);
  row("guest's own fork+exec of /bin/true", ex.guestForkExec, "ms", "mean of 200, timed inside the guest");
  row("first exec on a VM from the idle queue", idleFirst, "ms", `p50 of ${N}; idle 200 ms`);
  row("exec on a long-running VM after a 200 ms pause", ex.afterPause, "ms", `p50 of ${N}`);
  ratioRow("steady exec / guest fork+exec", ex.steady / ex.guestForkExec, "<= 1.25", "lower is better");
  ratioRow(
    "first exec after restore / steady exec",
    p50(phases.firstExec) / ex.steady,
    "<= 2",
    "right after warm-up",
  );
  ratioRow(
    "first exec on an idle VM / steady exec",
    idleFirst / ex.steady,
    "<= 2",
    "includes the pause's cost",
  );
  ratioRow(
    "first exec on an idle VM / exec after the same pause",
    idleFirst / ex.afterPause,
    "<= 2",
    "the restore's own share",
  );

  await idleMemory(image);
  await throughput(image, 4);

  const s = await streams(image);
  row("stdout stream (cat of 64 MiB)", s.stdout, "MB/s", "p50 of 3");
  row("readFile (64 MiB)", s.readFile, "MB/s", "p50 of 3, same VM and file");
  ratioRow("stdout / readFile", s.stdout / s.readFile, ">= 1", "higher is better");
  row("  QEMU CPU: stdout of 64 MiB", s.cpu.stdout, "ms", "p50 of 3");
  row("  QEMU CPU: readFile of 64 MiB", s.cpu.readFile, "ms", "p50 of 3");
  row(
    "  QEMU CPU: the guest alone, 64 MiB through a pipe",
    s.cpu.guestPipe,
    "ms",
    "p50 of 3; `cat f | cat > /dev/null`: what stdout has more",
  );
  row("  host CPU (this Node process): stdout of 64 MiB", s.hostCpu.stdout, "ms", "p50 of 3");
  row("  host CPU (this Node process): readFile of 64 MiB", s.hostCpu.readFile, "ms", "p50 of 3");
  row("20000 short lines on stdout", s.lines, "ms", "p50 of 3; sh echo loop");
  row("the same loop to /dev/null in the guest", s.devNull, "ms", "p50 of 3; baseline");
  row(
    "short lines on stdout / to /dev/null",
    s.lines / s.devNull,
    "x",
    "what the agent adds; lower is better",
  );

  printTable("performance goals (busybox, QEMU TCG when no usable KVM, 256 MiB, 1 vCPU)", rows);
  writeResults("perf", { rows, results });
} finally {
  await registry.close();
  rmSync(work, { recursive: true, force: true });
}
