#!/usr/bin/env node
// Agent protocol benchmark (issue 3), all on one restored VM: exec round trip
// of `true`, stdout throughput, file write/read throughput (sha256 checked),
// 32 concurrent execs. The same numbers against the agent built for the host
// (`sm-init --stdio`, the session over the child's stdio) separate the
// protocol's own cost from the VM's. Prints a table and writes
// bench-results/agent.json.
//
// Knobs: BENCH_AGENT_EXECS (200), BENCH_AGENT_MIB (64), BENCH_AGENT_REPS (3).
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Duplex } from "node:stream";
import {
  busyboxRootfs,
  nativeAgentBinary,
  qemuDescendants,
  r1,
  repoRoot,
  since,
} from "../../../scripts/bench/guest.mjs";
import { printTable, summarize, writeResults } from "../../../scripts/bench/stats.mjs";

const { AgentSession } = await import(join(repoRoot, "packages/agent-protocol/dist/index.js"));
const { Machine, chooseEngine, openAgentSession, resolveGuestAssets } = await import(
  join(repoRoot, "packages/vmm-native/dist/index.js")
);

const EXECS = Number(process.env.BENCH_AGENT_EXECS ?? 200);
const MIB = Number(process.env.BENCH_AGENT_MIB ?? 64);
const REPS = Number(process.env.BENCH_AGENT_REPS ?? 3);
const CONCURRENT = 32;
const BYTES = MIB * 1024 * 1024;
const MB = 1e6;

const work = mkdtempSync(join(tmpdir(), "sm-bench-agent-"));

/** Sequential `run(["true"])` latencies (ms), after a short warm-up. */
async function execRoundTrips(session) {
  for (let i = 0; i < 10; i++) await session.run({ argv: ["true"] });
  const xs = [];
  for (let i = 0; i < EXECS; i++) {
    const t0 = performance.now();
    const r = await session.run({ argv: ["true"] });
    xs.push(since(t0));
    if (r.exitCode !== 0) throw new Error(`true exited ${r.exitCode}`);
  }
  return xs;
}

/** Producers of BYTES zero bytes on stdout: dd writes 64 KiB at a time; busybox head -c writes ~4-8 KiB. */
const PRODUCERS = {
  dd: ["dd", "if=/dev/zero", "bs=65536", `count=${BYTES / 65536}`, "status=none"],
  head: ["head", "-c", String(BYTES), "/dev/zero"],
};

/** MB/s of BYTES read from the exec's stdout stream, exec to exit. */
async function stdoutThroughput(session, argv) {
  const t0 = performance.now();
  const p = session.exec({ argv });
  let n = 0;
  for await (const chunk of p.stdout) n += chunk.length;
  const r = await p.wait();
  const ms = since(t0);
  if (r.exitCode !== 0 || n !== BYTES) throw new Error(`stdout: got ${n} bytes, exit ${r.exitCode}`);
  return n / MB / (ms / 1000);
}

/** MB/s of writeFile and readFile of a random BYTES buffer; the read-back sha256 must match. */
async function fileThroughput(session, path, data, digest) {
  const t0 = performance.now();
  const written = await session.writeFile(path, data, { mode: 0o600 });
  const wMs = since(t0);
  if (written !== data.length) throw new Error(`writeFile wrote ${written} of ${data.length} bytes`);
  const t1 = performance.now();
  const back = await session.readFile(path);
  const rMs = since(t1);
  const got = createHash("sha256").update(back).digest("hex");
  if (got !== digest) throw new Error(`readFile sha256 ${got} != written ${digest}`);
  await session.run({ argv: ["rm", "-f", path] });
  return { write: data.length / MB / (wMs / 1000), read: back.length / MB / (rMs / 1000) };
}

/** Wall time (ms) of 32 execs started at once, each echoing its index. */
async function concurrentExecs(session) {
  const t0 = performance.now();
  const rs = await Promise.all(
    Array.from({ length: CONCURRENT }, (_, i) => session.run({ argv: ["echo", String(i)] })),
  );
  const ms = since(t0);
  rs.forEach((r, i) => {
    if (r.exitCode !== 0 || r.stdout.toString() !== `${i}\n`) throw new Error(`concurrent exec ${i} failed`);
  });
  return ms;
}

/** Every measurement on one session; `filePath` is where the test file goes on that side. */
async function measure(session, filePath, data, digest) {
  const out = {
    execRoundTrip: await execRoundTrips(session),
    stdout: [],
    stdoutHead: [],
    write: [],
    read: [],
    concurrent: [],
  };
  for (let i = 0; i < REPS; i++) out.stdout.push(await stdoutThroughput(session, PRODUCERS.dd));
  out.stdoutHead = [await stdoutThroughput(session, PRODUCERS.head)];
  for (let i = 0; i < REPS; i++) {
    const f = await fileThroughput(session, filePath, data, digest);
    out.write.push(f.write);
    out.read.push(f.read);
  }
  for (let i = 0; i < 5; i++) out.concurrent.push(await concurrentExecs(session));
  return out;
}

async function onRestoredVm(data, digest) {
  const a = resolveGuestAssets();
  const spec = { kernel: a.kernel, initrd: a.initrd, memoryMib: 256, vcpus: 1, rootfs: busyboxRootfs(work) };
  const snap = join(work, "snap");
  const boot = await Machine.boot(spec, { memoryFile: join(snap, "memory.bin") });
  try {
    const s = await openAgentSession(boot);
    await s.run({ argv: ["true"] });
    await s.close();
    await boot.captureSnapshot(snap);
  } finally {
    await boot.close();
  }
  const m = await Machine.restore(snap);
  try {
    const session = await openAgentSession(m);
    try {
      return await measure(session, "/tmp/sm-bench.bin", data, digest);
    } finally {
      await session.close();
    }
  } finally {
    await m.close();
  }
}

async function onNativeAgent(data, digest) {
  const child = spawn(nativeAgentBinary(), ["--stdio"], { stdio: ["pipe", "pipe", "pipe"] });
  const stderr = [];
  child.stderr.on("data", (c) => stderr.push(c));
  const exited = new Promise((r) => child.once("exit", r));
  try {
    const session = await AgentSession.open(Duplex.from({ readable: child.stdout, writable: child.stdin }), {
      handshakeTimeoutMs: 10_000,
    });
    try {
      return await measure(session, join(work, "native.bin"), data, digest);
    } finally {
      await session.close();
    }
  } catch (err) {
    process.stderr.write(Buffer.concat(stderr));
    throw err;
  } finally {
    child.kill("SIGKILL");
    await exited;
  }
}

const rows = [];
function compare(metric, unit, vm, native, note, higherIsBetter) {
  const v = summarize(vm);
  const n = summarize(native);
  const ratio = higherIsBetter ? n.p50 / v.p50 : v.p50 / n.p50;
  rows.push({
    metric: `${metric}, restored VM`,
    value: r1(v.p50),
    unit,
    note: `p50; n=${v.n}, p99 ${r1(v.p99)}, min ${r1(v.min)}, max ${r1(v.max)}${note ? `; ${note}` : ""}`,
  });
  rows.push({
    metric: `${metric}, native agent`,
    value: r1(n.p50),
    unit,
    note: `p50; n=${n.n}, p99 ${r1(n.p99)}, min ${r1(n.min)}, max ${r1(n.max)}; VM is ${r1(ratio)}x ${higherIsBetter ? "slower" : "the time"}`,
  });
}

try {
  const data = randomBytes(BYTES);
  const digest = createHash("sha256").update(data).digest("hex");
  const vm = await onRestoredVm(data, digest);
  const native = await onNativeAgent(data, digest);
  compare(
    "exec round trip (true)",
    "ms",
    vm.execRoundTrip,
    native.execRoundTrip,
    `${EXECS} sequential run(["true"])`,
    false,
  );
  rows.push({
    metric: "exec round trip p99, restored VM",
    value: r1(summarize(vm.execRoundTrip).p99),
    unit: "ms",
    note: "",
  });
  rows.push({
    metric: "exec round trip p99, native agent",
    value: r1(summarize(native.execRoundTrip).p99),
    unit: "ms",
    note: "",
  });
  compare(
    "stdout throughput",
    "MB/s",
    vm.stdout,
    native.stdout,
    `dd if=/dev/zero bs=64k of ${MIB} MiB read from stdout; MB = 10^6 bytes`,
    true,
  );
  compare(
    "stdout throughput, head -c",
    "MB/s",
    vm.stdoutHead,
    native.stdoutHead,
    `head -c ${MIB}M /dev/zero: bound by busybox head's small writes under TCG, not by the channel`,
    true,
  );
  compare("file write", "MB/s", vm.write, native.write, `writeFile of ${MIB} MiB random bytes`, true);
  compare("file read", "MB/s", vm.read, native.read, `readFile of the same ${MIB} MiB, sha256 equal`, true);
  compare(
    `${CONCURRENT} concurrent execs`,
    "ms",
    vm.concurrent,
    native.concurrent,
    `wall time of ${CONCURRENT} run(["echo", i]) at once`,
    false,
  );
  const assets = resolveGuestAssets();
  const { accel } = await chooseEngine({ kernel: assets.kernel, initrd: assets.initrd });
  printTable(
    `agent protocol (one restored VM: busybox, QEMU ${accel.toUpperCase()}, 256 MiB, 1 vCPU, virtio-serial; vs sm-init --stdio on the host)`,
    rows,
  );
  const round = (o) =>
    Object.fromEntries(Object.entries(o).map(([k, xs]) => [k, { ...summarize(xs), values: xs.map(r1) }]));
  writeResults("agent", {
    rows,
    results: {
      accel,
      fileBytes: BYTES,
      units: {
        execRoundTrip: "ms",
        concurrent: "ms",
        stdout: "MB/s",
        stdoutHead: "MB/s",
        write: "MB/s",
        read: "MB/s",
      },
      restoredVm: round(vm),
      nativeAgent: round(native),
    },
  });
} finally {
  rmSync(work, { recursive: true, force: true });
  const left = qemuDescendants();
  if (left.length) {
    console.error(`QEMU processes left behind: ${left.join(" ")}`);
    process.exitCode = 1;
  }
}
