#!/usr/bin/env node
// Bake once per fleet: what a second host gains from a snapshot published to
// the registry. Two hosts are simulated on this machine (separate HOME,
// cache and snapshots directory; one local registry on 127.0.0.1; the same
// guest build). Host A bakes the Debian test image and pushes the snapshot.
// Then, alternately and each time on a fresh host: host B builds the image
// with `registrySnapshots: "pull"` (image pull, root fs, snapshot pull, no
// boot), and the baseline, a fresh host's local cold bake (image pull, root
// fs, boot, snapshot). Also: bytes moved by the snapshot pull versus the
// snapshot's size on disk. Prints a table and writes bench-results/share.json.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { printTable, summarize, writeResults } from "../../../scripts/bench/stats.mjs";
import { core, layouts, qemuPids, r1, startRegistry } from "./support.mjs";

const { Image } = core;
const RUNS = Number(process.env.BENCH_SHARE_RUNS ?? 3);
const PROBE = ["sh", "-c", "cat /etc/debian_version; echo $((6*7))"];
const realCache = process.env.SUPERMACHINE_CACHE ?? join(homedir(), ".cache", "supermachine");
const { debian } = layouts();
const registry = await startRegistry();
const work = mkdtempSync(join(tmpdir(), "sm-bench-share-"));
process.env.SUPERMACHINE_RUN_DIR ??= join(work, "run");
mkdirSync(process.env.SUPERMACHINE_RUN_DIR, { recursive: true });
let hosts = 0;
// every host has the same guest installed: a copy of this checkout's guest manifest, taken once
// (other worktrees on this machine may rewrite the shared one meanwhile)
const guestManifest = join(work, "guest-assets.json");
writeFileSync(
  guestManifest,
  readFileSync(process.env.SUPERMACHINE_GUEST_ASSETS ?? join(realCache, "guest-assets.json")),
);

/** A fresh simulated host: runs `fn` with its own HOME, cache and snapshots dir. */
async function onFreshHost(fn) {
  const home = join(work, `host-${hosts++}`);
  const cache = join(home, ".cache", "supermachine");
  mkdirSync(cache, { recursive: true });
  // the accelerator verdict is per host; copied so a fresh cache does not probe KVM again
  const probes = join(realCache, "accel-probe");
  if (existsSync(probes)) cpSync(probes, join(cache, "accel-probe"), { recursive: true });
  const env = {
    HOME: home,
    SUPERMACHINE_CACHE: cache,
    SUPERMACHINE_SNAPSHOTS_DIR: join(home, "snapshots"),
    SUPERMACHINE_GUEST_ASSETS: guestManifest,
  };
  const saved = {};
  for (const [k, v] of Object.entries(env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** One build with per-phase timestamps (ms since start) and the events. */
async function timedBuild(options) {
  const marks = {};
  const events = [];
  const t0 = performance.now();
  const image = await Image.build({
    ...options,
    onProgress: (p) => {
      marks[p.phase] ??= performance.now() - t0;
      marks[`${p.phase}:end`] = performance.now() - t0;
      if (p.phase !== "pull" && p.phase !== "download" && p.phase !== "upload") events.push(p);
    },
  });
  return { image, ms: performance.now() - t0, marks, events };
}

async function firstExec(image) {
  const pool = await image.pool({ min: 0, max: 1 });
  try {
    const vm = await pool.acquire();
    const out = await vm.exec({ argv: PROBE });
    await vm.release();
    return out.stdout.toString();
  } finally {
    await pool.shutdown();
  }
}

const rows = [];
try {
  if (!debian) throw new Error("the debian test layout is not built (scripts/test-images/build.sh)");
  const ref = await registry.push(debian, "debian", "12", "bookworm");
  const base = { ref, insecureRegistries: [registry.host] };

  const a = await onFreshHost(async () => {
    const r = await timedBuild({ ...base, registrySnapshots: "pull-push" });
    if (!r.marks.boot || !r.marks.pushed) throw new Error("host A did not bake and push");
    return { ...r, out: await firstExec(r.image) };
  });
  const pushed = a.events.find((e) => e.phase === "pushed");
  const diskBytes = (await core.inspectSnapshot(a.image.snapshotPath)).sizes.diskBytes;

  const fromRegistry = [];
  const cold = [];
  let restoredBytes = 0;
  for (let i = 0; i < RUNS; i++) {
    const b = await onFreshHost(async () => {
      const before = qemuPids().length;
      const r = await timedBuild({ ...base, registrySnapshots: "pull" });
      if (r.marks.boot || !r.marks.restored || qemuPids().length !== before) throw new Error("host B booted");
      if (i === 0 && (await firstExec(r.image)) !== a.out) throw new Error("host B's exec output differs");
      return r;
    });
    restoredBytes = b.events.find((e) => e.phase === "restored").bytes;
    fromRegistry.push(b);
    const c = await onFreshHost(() => timedBuild(base));
    if (!c.marks.boot) throw new Error("the local cold bake did not boot");
    cold.push(c);
  }
  const bs = summarize(fromRegistry.map((r) => r.ms));
  const cs = summarize(cold.map((r) => r.ms));
  // host B after the image pull: artifact lookup + root fs build and byte check, then the snapshot transfer
  const rootfsPart = summarize(fromRegistry.map((r) => r.marks.download - r.marks.registry));
  const snapPart = summarize(fromRegistry.map((r) => r.marks.restored - r.marks.download));
  const bootPart = summarize(cold.map((r) => r.marks["snapshot:end"] - r.marks.boot));
  rows.push(
    {
      metric: "host B: Image.build from the registry p50",
      value: r1(bs.p50),
      unit: "ms",
      note: `n=${bs.n}, min ${r1(bs.min)}, max ${r1(bs.max)}; fresh host: image pull + root fs + snapshot pull, no boot`,
    },
    {
      metric: "baseline: local cold bake p50",
      value: r1(cs.p50),
      unit: "ms",
      note: `n=${cs.n}, min ${r1(cs.min)}, max ${r1(cs.max)}; fresh host: image pull + root fs + boot + snapshot`,
    },
    {
      metric: "  B: artifact lookup + root fs build p50",
      value: r1(rootfsPart.p50),
      unit: "ms",
      note: "the root fs is rebuilt from the layers (it must be the baked bytes); the snapshot downloads meanwhile",
    },
    {
      metric: "  B: rest of the snapshot pull after the root fs p50",
      value: r1(snapPart.p50),
      unit: "ms",
      note: "download left, digest checks, unpack into a sparse memory file, checks, store",
    },
    {
      metric: "  of which: boot + snapshot (cold bake) p50",
      value: r1(bootPart.p50),
      unit: "ms",
      note: "what host B skips",
    },
    {
      metric: "host A: publish (pack + upload)",
      value: r1(a.marks.pushed - a.marks.upload),
      unit: "ms",
      note: `after its bake of ${r1(a.marks.snapshot)} ms to snapshot`,
    },
    {
      metric: "bytes moved by the snapshot pull",
      value: restoredBytes,
      unit: "B",
      note: `${(restoredBytes / 2 ** 20).toFixed(1)} MiB (manifest not counted); the push sent ${pushed.bytes} B`,
    },
    {
      metric: "snapshot on disk (allocated)",
      value: diskBytes,
      unit: "B",
      note: `${(diskBytes / 2 ** 20).toFixed(1)} MiB of a ${a.image.memoryMib} MiB guest; moved/on disk = ${(restoredBytes / diskBytes).toFixed(2)}`,
    },
  );
  printTable("share: bake once per fleet (Debian, QEMU TCG, 256 MiB, 1 vCPU)", rows);
  writeResults("share", {
    rows,
    results: {
      fromRegistryMs: fromRegistry.map((r) => r.ms),
      fromRegistryMarks: fromRegistry.map((r) => r.marks),
      coldBakeMs: cold.map((r) => r.ms),
      coldBakeMarks: cold.map((r) => r.marks),
      hostA: a.marks,
      restoredBytes,
      pushedBytes: pushed.bytes,
      snapshotDiskBytes: diskBytes,
    },
  });
} finally {
  await registry.close();
  rmSync(work, { recursive: true, force: true });
}
