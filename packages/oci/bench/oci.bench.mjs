#!/usr/bin/env node
// OCI benchmark: pull + root fs build of the Debian test image (debootstrap
// minbase bookworm, ~49 MB gzip / ~117 MB unpacked) from a real docker-registry
// on 127.0.0.1, cold and warm cache, against the baseline a user would reach
// for: `skopeo copy docker://... oci:...` followed by `umoci unpack`.
// Runs against the built dist (npm run bench builds first).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { printTable, writeResults } from "../../../scripts/bench/stats.mjs";
import { startRegistry } from "../../../test-support/registry.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..", "..");
const { pullImage, buildRootfs } = await import(join(here, "..", "dist", "index.js"));
const RUNS = Number(process.env.OCI_BENCH_RUNS ?? 3);

const imagesDir = execFileSync(
  "bash",
  [
    join(root, "scripts/test-images/build.sh"),
    process.env.SUPERMACHINE_TEST_IMAGES ??
      join(process.env.SUPERMACHINE_CACHE ?? join(process.env.HOME, ".cache/supermachine"), "test-images"),
  ],
  { stdio: ["ignore", "pipe", "inherit"] },
)
  .toString()
  .trim();
const work = mkdtempSync(join(tmpdir(), "oci-bench-"));
const reg = await startRegistry();
const now = () => performance.now();
const secs = (ms) => ms / 1000;
const min = (xs) => Math.min(...xs);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

try {
  const ref = await reg.pushLayout(join(imagesDir, "debian"), "bench/debian:bookworm");
  const cold = [];
  let compressedBytes = 0;
  let rootfsBytes = 0;
  let unpackedBytes = 0;
  let format = "";
  let lastCache;
  for (let i = 0; i < RUNS; i++) {
    const cacheDir = join(work, `cache-${i}`);
    const t0 = now();
    const img = await pullImage(ref, { cacheDir });
    const t1 = now();
    const fs = await buildRootfs(img);
    const t2 = now();
    cold.push({ pullMs: t1 - t0, rootfsMs: t2 - t1, totalMs: t2 - t0 });
    compressedBytes = img.layers.reduce((a, l) => a + l.size, 0);
    rootfsBytes = fs.sizeBytes;
    const meta = JSON.parse(readFileSync(fs.path.replace(/\.(img|ext4)$/, ".json"), "utf8"));
    unpackedBytes = meta.stats.dataBytes;
    format = fs.format;
    if (lastCache) rmSync(lastCache, { recursive: true, force: true });
    lastCache = cacheDir;
  }
  // Warm: everything cached (pullPolicy "missing" does not touch the network; the root fs is reused).
  const warm = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = now();
    const img = await pullImage(ref, { cacheDir: lastCache });
    const fs = await buildRootfs(img);
    warm.push(now() - t0);
    if (!fs.reused) throw new Error("warm run did not reuse the root fs");
  }
  // Blobs cached but the root fs gone (e.g. another image sharing layers): decompress, merge, encode.
  const rebuild = [];
  const always = [];
  for (let i = 0; i < RUNS; i++) {
    rmSync(join(lastCache, "rootfs"), { recursive: true, force: true });
    const t0 = now();
    const img = await pullImage(ref, { cacheDir: lastCache, pullPolicy: "always" });
    const t1 = now();
    await buildRootfs(img);
    always.push(t1 - t0);
    rebuild.push(now() - t1);
  }
  // Baseline: skopeo copy to an OCI layout, then umoci unpack (a directory tree, not a disk image).
  const base = [];
  for (let i = 0; i < RUNS; i++) {
    const layout = join(work, `skopeo-${i}`);
    const bundle = join(work, `bundle-${i}`);
    const t0 = now();
    execFileSync("skopeo", [
      "copy",
      "--quiet",
      "--insecure-policy",
      "--src-tls-verify=false",
      `docker://${ref}`,
      `oci:${layout}:bookworm`,
    ]);
    const t1 = now();
    execFileSync("umoci", ["unpack", "--image", `${layout}:bookworm`, bundle], { stdio: "ignore" });
    const t2 = now();
    base.push({ copyMs: t1 - t0, unpackMs: t2 - t1, totalMs: t2 - t0 });
    rmSync(layout, { recursive: true, force: true });
    rmSync(bundle, { recursive: true, force: true });
  }
  const MB = 1e6;
  const coldTotal = min(cold.map((c) => c.totalMs));
  const baseTotal = min(base.map((b) => b.totalMs));
  const rows = [
    {
      metric: `image (compressed / unpacked / ${format})`,
      value: `${(compressedBytes / MB).toFixed(1)} / ${(unpackedBytes / MB).toFixed(1)} / ${(rootfsBytes / MB).toFixed(1)}`,
      unit: "MB",
      note: "debootstrap minbase bookworm",
    },
    {
      metric: "cold pull (registry -> verified blobs)",
      value: secs(min(cold.map((c) => c.pullMs))),
      unit: "s",
      note: `${(compressedBytes / MB / secs(min(cold.map((c) => c.pullMs)))).toFixed(1)} MB/s compressed`,
    },
    {
      metric: `cold root fs (unpack + verify, merge, encode ${format})`,
      value: secs(min(cold.map((c) => c.rootfsMs))),
      unit: "s",
      note: `${(unpackedBytes / MB / secs(min(cold.map((c) => c.rootfsMs)))).toFixed(1)} MB/s unpacked`,
    },
    {
      metric: "cold pull + root fs",
      value: secs(coldTotal),
      unit: "s",
      note: `${(unpackedBytes / MB / secs(coldTotal)).toFixed(1)} MB/s unpacked; best of ${RUNS}`,
    },
    {
      metric: "warm pull + root fs (all cached)",
      value: secs(median(warm)) * 1000,
      unit: "ms",
      note: "no network, root fs reused",
    },
    {
      metric: "pullPolicy always, blobs cached",
      value: secs(median(always)) * 1000,
      unit: "ms",
      note: "manifest re-resolved",
    },
    {
      metric: "root fs rebuild, blobs cached",
      value: secs(min(rebuild)),
      unit: "s",
      note: "no download",
    },
    {
      metric: "baseline skopeo copy",
      value: secs(min(base.map((b) => b.copyMs))),
      unit: "s",
      note: "docker:// -> oci:",
    },
    {
      metric: "baseline umoci unpack",
      value: secs(min(base.map((b) => b.unpackMs))),
      unit: "s",
      note: "oci: -> directory",
    },
    {
      metric: "baseline total",
      value: secs(baseTotal),
      unit: "s",
      note: `${(unpackedBytes / MB / secs(baseTotal)).toFixed(1)} MB/s unpacked; best of ${RUNS}`,
    },
    {
      metric: "speedup vs baseline (cold)",
      value: baseTotal / coldTotal,
      unit: "x",
      note: `ours also yields a bootable ${format} image`,
    },
  ];
  printTable("OCI pull + root fs (Debian bookworm minbase, local docker-registry)", rows);
  writeResults("oci", {
    image: { compressedBytes, unpackedBytes, rootfsBytes },
    runs: RUNS,
    cold,
    warmMs: warm,
    alwaysMs: always,
    rebuildMs: rebuild,
    baseline: base,
    rows,
  });
} finally {
  await reg.close();
  rmSync(work, { recursive: true, force: true });
}
