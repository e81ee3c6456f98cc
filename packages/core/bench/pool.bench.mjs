#!/usr/bin/env node
// Pool benchmark: acquire with a warm idle VM, acquire that has to restore,
// release-to-ready recycle, cycle throughput with 1 and 4 workers, idle VM
// host memory; and the baselines: a plain QEMU cold boot of the same image to
// a first exec, a container start of the same root fs with crun, and gVisor
// runsc. Prints a table and writes bench-results/pool.json.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memoryKib, printTable, summarize, writeResults } from "../../../scripts/bench/stats.mjs";
import {
  core,
  cycleThroughput,
  layouts,
  plainBootToFirstExec,
  qemuPids,
  r1,
  sleep,
  startRegistry,
  timed,
} from "./support.mjs";

const { Image } = core;
const N = Number(process.env.BENCH_POOL_RUNS ?? 20);
const CYCLES = Number(process.env.BENCH_POOL_CYCLES ?? 40);
const rows = [];
const results = {};
const work = mkdtempSync(join(tmpdir(), "sm-bench-pool-"));
const { busybox } = layouts();

function row(metric, xs, note = "") {
  const s = summarize(xs);
  rows.push({
    metric,
    value: r1(s.p50),
    unit: "ms",
    note: `p50; n=${s.n}, p99 ${r1(s.p99)}, min ${r1(s.min)}${note ? `; ${note}` : ""}`,
  });
  results[metric] = xs.map(r1);
}

async function idleCount(pool, n, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (pool.stats().idle < n) {
    if (Date.now() > deadline)
      throw new Error(`pool never reached ${n} idle VMs: ${JSON.stringify(pool.stats())}`);
    await sleep(1);
  }
}

async function warmAcquire(image) {
  const pool = await image.pool({ min: 1, max: 1 });
  const xs = [];
  for (let i = 0; i < N; i++) {
    await idleCount(pool, 1);
    await sleep(200); // let the background restore settle
    const { ms, result: vm } = await timed(() => pool.acquire());
    xs.push(ms);
    await vm.release();
  }
  await pool.shutdown();
  row("acquire, warm idle VM", xs);
}

async function restoringAcquire(image) {
  // min 0: the first acquire of a new pool restores with no QEMU started
  // ahead; the second (while the first is held) uses the pre-started one.
  const cold = [];
  const prestarted = [];
  for (let i = 0; i < Math.ceil(N / 2); i++) {
    const pool = await image.pool({ min: 0, max: 2 });
    const a = await timed(() => pool.acquire());
    cold.push(a.ms);
    await sleep(1500);
    const b = await timed(() => pool.acquire());
    prestarted.push(b.ms);
    await a.result.release();
    await b.result.release();
    await pool.shutdown();
  }
  row("acquire that restores (QEMU started on demand)", cold);
  row("acquire that restores (QEMU pre-started)", prestarted);
}

async function recycle(image) {
  const pool = await image.pool({ min: 1, max: 1 });
  const releaseMs = [];
  const readyMs = [];
  for (let i = 0; i < N; i++) {
    await idleCount(pool, 1);
    const vm = await pool.acquire();
    await vm.exec({ argv: ["sh", "-c", "echo x > /tmp/dirty"] });
    const t0 = performance.now();
    await vm.release();
    releaseMs.push(performance.now() - t0);
    await idleCount(pool, 1);
    readyMs.push(performance.now() - t0);
  }
  await pool.shutdown();
  row("release() returns", releaseMs);
  row("release to ready (recycled by restore)", readyMs);
}

async function throughput(image, workers) {
  const perSec = await cycleThroughput(image, workers, CYCLES);
  rows.push({
    metric: `cycle throughput, ${workers} worker(s)`,
    value: r1(perSec),
    unit: "cycles/s",
    note: `${CYCLES} acquire+exec+release cycles, pool min=max=${workers}`,
  });
  results[`throughput${workers}`] = perSec;
}

async function idleMemory(image) {
  const before = new Set(qemuPids());
  const pool = await image.pool({ min: 4, max: 4 });
  await idleCount(pool, 4);
  await sleep(3000);
  const procs = qemuPids()
    .filter((p) => !before.has(p))
    .map((pid) => ({ pid, ...memoryKib(pid) }));
  await pool.shutdown();
  const rss = procs.map((p) => p.rssKib / 1024);
  const pss = procs.map((p) => p.pssKib / 1024);
  const anon = procs.map((p) => p.anonKib / 1024);
  const note = `${procs.length} QEMU processes of a min=max=4 pool (4 idle VMs + the pre-started restore QEMU)`;
  rows.push({
    metric: "idle VM RSS",
    value: r1(summarize(rss).p50),
    unit: "MiB",
    note: `p50; ${note}; max ${r1(Math.max(...rss))}`,
  });
  rows.push({
    metric: "idle VM PSS",
    value: r1(summarize(pss).p50),
    unit: "MiB",
    note: `p50; sum over all ${r1(pss.reduce((a, b) => a + b, 0))} MiB`,
  });
  rows.push({
    metric: "idle VM anonymous",
    value: r1(summarize(anon).p50),
    unit: "MiB",
    note: "p50; private to each QEMU",
  });
  results.idleMemory = procs;
}

async function plainBoot(image) {
  const xs = [];
  for (let i = 0; i < 3; i++) xs.push((await plainBootToFirstExec(image)).ms);
  row("baseline: plain QEMU cold boot to first exec", xs, "same kernel, agent, root fs, RAM");
}

/** An OCI bundle of the busybox root fs running `argv` with no terminal. */
function bundle(name, argv) {
  const dir = join(work, name);
  execFileSync("umoci", ["unpack", "--image", `${busybox}:latest`, dir], { stdio: "ignore" });
  rmSync(join(dir, "config.json"));
  execFileSync("crun", ["spec"], { cwd: dir });
  const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  cfg.process.terminal = false;
  cfg.process.args = argv;
  cfg.root = { path: "rootfs", readonly: true };
  writeFileSync(join(dir, "config.json"), JSON.stringify(cfg, null, 1));
  return dir;
}

/** Times `cmd` N times inside one shell (so only the runtime is measured). */
function shellTimes(prefix, cmd, n) {
  const script = `${prefix}for i in $(seq ${n}); do s=$(date +%s%N); ${cmd} >/dev/null 2>/tmp/sm-bench-rt.err || { cat /tmp/sm-bench-rt.err >&2; exit 1; }; e=$(date +%s%N); echo $(( (e - s) / 1000 )); done`;
  const r = spawnSync("sh", ["-c", script], { encoding: "utf8" });
  if (r.status !== 0) return { error: (r.stderr || `exit ${r.status}`).trim().split("\n").at(-1) };
  return {
    ms: r.stdout
      .trim()
      .split("\n")
      .map((us) => Number(us) / 1000),
  };
}

function containers() {
  for (const [label, argv] of [
    ["true", ["true"]],
    ["uname -a", ["uname", "-a"]],
  ]) {
    const dir = bundle(`bundle-${argv[0]}`, argv);
    let r = shellTimes("", `crun run --bundle ${dir} sm-bench-$$-$i`, N);
    let note = "crun run (create+start+wait+delete)";
    if (r.error?.includes("hybrid")) {
      // This sandbox mounts cgroup v1 controllers plus a v2 hierarchy, which
      // crun refuses. Drop the v2 mount in a private mount namespace (never
      // on the host) and run without cgroups; unshare is inside the timing.
      const inner = `umount /sys/fs/cgroup/unified && exec crun --cgroup-manager=disabled run --bundle ${dir} sm-bench-$$-$i`;
      r = shellTimes("", `unshare -m sh -c "${inner}"`, N);
      note += "; hybrid cgroups here: unshare -m + umount cgroup2 + --cgroup-manager=disabled, all timed";
    }
    if (r.error)
      rows.push({ metric: `baseline: crun ${label}`, value: "-", unit: "", note: `crun failed: ${r.error}` });
    else row(`baseline: crun container start, ${label}`, r.ms, note);

    const g = shellTimes("", `runsc --network=none run --bundle ${dir} sm-bench-$$-$i`, Math.min(N, 10));
    if (g.error) {
      const rootless = shellTimes("", `runsc --rootless --network=none do ${argv.join(" ")}`, 1);
      rows.push({
        metric: `baseline: runsc ${label}`,
        value: "-",
        unit: "",
        note: `runsc run failed: ${g.error}; rootless do: ${rootless.error ?? "ok"}`,
      });
    } else
      row(
        `baseline: gVisor runsc container start, ${label}`,
        g.ms,
        "runsc run --network=none (ptrace platform)",
      );
  }
}

const registry = await startRegistry();
try {
  const ref = await registry.push(busybox, "busybox", "bench");
  const image = await Image.build({
    ref,
    insecureRegistries: [registry.host],
    snapshotsDir: join(work, "snapshots"),
  });
  await warmAcquire(image);
  await restoringAcquire(image);
  await recycle(image);
  await throughput(image, 1);
  await throughput(image, 4);
  await idleMemory(image);
  await plainBoot(image);
  containers();
  printTable("pool (busybox, QEMU TCG, 256 MiB, 1 vCPU, 2 host cores)", rows);
  writeResults("pool", { rows, results });
} finally {
  await registry.close();
  rmSync(work, { recursive: true, force: true });
}
