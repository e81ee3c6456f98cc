#!/usr/bin/env node
// Root fs formats side by side (issue 13): the Debian test image built as
// squashfs (layer tars used in place, the default) and as ext4 (mke2fs), from
// the same cached blobs, alternating; then each booted in a real guest: cold
// boot to first exec, a metadata walk of the whole tree, every file under
// /usr read once (cold page cache), a steady exec, and a restore of a
// snapshot to its first exec. Prints a table, writes bench-results/rootfs.json.
// Knobs: BENCH_ROOTFS_BUILDS (4 per format), BENCH_ROOTFS_BOOTS (2 per format).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { qemuDescendants, r1, repoRoot, since } from "../../../scripts/bench/guest.mjs";
import { printTable, summarize, writeResults } from "../../../scripts/bench/stats.mjs";
import { startRegistry } from "../../../test-support/registry.mjs";
import { ensureTestImages } from "../../../test-support/test-images.mjs";

const { pullImage, buildRootfs } = await import(join(repoRoot, "packages/oci/dist/index.js"));
const { Machine, openAgentSession, resolveGuestAssets } = await import(
  join(repoRoot, "packages/vmm-native/dist/index.js")
);

const BUILDS = Number(process.env.BENCH_ROOTFS_BUILDS ?? 4);
const BOOTS = Number(process.env.BENCH_ROOTFS_BOOTS ?? 2);
const MEMORY_MIB = 512;
const FORMATS = ["squashfs", "ext4"];

const work = mkdtempSync(join(tmpdir(), "sm-bench-rootfs-"));
const images = ensureTestImages();
const reg = await startRegistry();
const results = { memoryMib: MEMORY_MIB, formats: {} };
for (const f of FORMATS)
  results.formats[f] = { buildMs: [], bootMs: [], walkMs: [], readMs: [], execMs: [], restoreMs: [] };

/** Runs `sh -c script` in the guest; returns its wall time in ms (measured in the guest) and stdout. */
async function timed(session, script) {
  const r = await session.run({
    argv: ["/bin/sh", "-c", `s=$(date +%s%N); ${script}; e=$(date +%s%N); echo "#$(( (e - s) / 1000 ))"`],
  });
  if (r.exitCode !== 0) throw new Error(`${script}: exit ${r.exitCode}: ${r.stderr}`);
  const out = r.stdout.toString();
  const us = Number(/#(\d+)\s*$/.exec(out)?.[1]);
  return { ms: us / 1000, out: out.replace(/#\d+\s*$/, "") };
}

try {
  const ref = await reg.pushLayout(images.debian, "bench/debian:bookworm");
  const blobs = join(work, "blobs");
  const img = await pullImage(ref, { cacheDir: blobs });
  // Builds: alternate formats from the cached blobs, the previous image removed first (as the oci bench's rebuild).
  const built = {};
  for (let i = 0; i < BUILDS; i++) {
    for (const format of FORMATS) {
      rmSync(join(blobs, "rootfs"), { recursive: true, force: true });
      const t0 = performance.now();
      const fs = await buildRootfs(img, { cacheDir: blobs, format });
      results.formats[format].buildMs.push(since(t0));
      results.formats[format].imageBytes = fs.sizeBytes;
    }
  }
  rmSync(join(blobs, "rootfs"), { recursive: true, force: true });
  for (const format of FORMATS) built[format] = await buildRootfs(img, { cacheDir: blobs, format });

  const assets = resolveGuestAssets();
  for (let b = 0; b < BOOTS; b++) {
    for (const format of FORMATS) {
      const r = results.formats[format];
      const spec = {
        kernel: assets.kernel,
        initrd: assets.initrd,
        memoryMib: MEMORY_MIB,
        vcpus: 1,
        rootfs: built[format].path,
      };
      const dir = join(work, `snap-${b}-${format}`);
      const t0 = performance.now();
      const m = await Machine.boot(spec, { memoryFile: join(dir, "memory.bin") });
      try {
        const session = await openAgentSession(m);
        const first = await session.run({ argv: ["true"] });
        if (first.exitCode !== 0) throw new Error("true failed");
        r.bootMs.push(since(t0));
        // What the guest mounted as its lower root: the device's magic, as init reads it.
        const magic = (await session.run({ argv: ["head", "-c", "4", "/dev/vda"] })).stdout.toString(
          "latin1",
        );
        r.guestFsType = magic === "hsqs" ? "squashfs" : "ext4";
        r.walkMs.push((await timed(session, "find / -xdev > /dev/null")).ms);
        r.readMs.push(
          (await timed(session, "find /usr -xdev -type f -print0 | xargs -0 cat > /dev/null")).ms,
        );
        const steady = [];
        for (let i = 0; i < 20; i++) {
          const t = performance.now();
          await session.run({ argv: ["true"] });
          steady.push(since(t));
        }
        r.execMs.push(summarize(steady).p50);
        await session.close();
        await m.captureSnapshot(dir);
      } finally {
        await m.close();
      }
      const t1 = performance.now();
      const restored = await Machine.restore(dir);
      try {
        const session = await openAgentSession(restored);
        await session.run({ argv: ["true"] });
        r.restoreMs.push(since(t1));
        await session.close();
      } finally {
        await restored.close();
      }
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const rows = [];
  const med = (xs) => r1(summarize(xs).p50);
  const s = results.formats.squashfs;
  const e = results.formats.ext4;
  const row = (metric, key, unit = "ms") =>
    rows.push({
      metric,
      value: `${med(s[key])} / ${med(e[key])}`,
      unit,
      note: `ext4 / squashfs ${r1(summarize(e[key]).p50 / summarize(s[key]).p50)}x`,
    });
  row("root fs build, blobs cached (squashfs / ext4)", "buildMs");
  rows.push({
    metric: "image size (squashfs / ext4)",
    value: `${r1(s.imageBytes / 1e6)} / ${r1(e.imageBytes / 1e6)}`,
    unit: "MB",
    note: `guest mounts ${s.guestFsType} / ${e.guestFsType}`,
  });
  row("cold boot to first exec", "bootMs");
  row("guest: find / (cold dentries)", "walkMs");
  row("guest: read every file under /usr once (cold cache)", "readMs");
  row("guest: exec round trip `true`, p50", "execMs");
  row("restore to first exec", "restoreMs");
  printTable(
    `root fs formats (Debian bookworm minbase, TCG, ${MEMORY_MIB} MiB, 1 vCPU; medians of ${BUILDS} builds, ${BOOTS} boots)`,
    rows,
  );
  writeResults("rootfs", { ...results, rows });
  const left = qemuDescendants();
  if (left.length) throw new Error(`QEMU left running: ${JSON.stringify(left)}`);
} finally {
  await reg.close();
  rmSync(work, { recursive: true, force: true });
}
