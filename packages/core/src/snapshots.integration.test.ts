// The snapshots API (listSnapshots, inspectSnapshot, pruneSnapshots) and
// pullRootfs on a real bake of the default image.
import { cpSync, existsSync, mkdtempSync, rmSync, statSync, truncateSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { computeFingerprint } from "@supermachine/snapshot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type BuildProgress,
  Image,
  inspectSnapshot,
  listSnapshots,
  pruneSnapshots,
  pullRootfs,
} from "./index.js";
import { qemuPids } from "./test-support/procs.js";

const cacheRoot = process.env.SUPERMACHINE_CACHE ?? join(homedir(), ".cache", "supermachine");
const ref = `oci:${join(cacheRoot, "images", "default")}:latest`;
const root = mkdtempSync(join(tmpdir(), "sm-snapshots-api-"));
const snapshotsDir = join(root, "snapshots");
let image: Image;

beforeAll(async () => {
  if (!existsSync(join(cacheRoot, "images", "default", "index.json"))) {
    throw new Error("the default image is missing: run `bash scripts/test-images/default-image.sh`");
  }
  image = await Image.build({ ref, snapshotsDir });
}, 300_000);
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
  expect(qemuPids()).toEqual([]);
});

describe("pullRootfs", () => {
  it("pulls and builds the root fs without booting, then reuses it", async () => {
    const events: BuildProgress[] = [];
    const r = await pullRootfs(ref, { onProgress: (p) => events.push(p) });
    expect(r.ref).toBe(image.metadata.image.ref);
    expect(r.manifestDigest).toBe(image.metadata.image.manifestDigest);
    expect(r.platform).toBe("linux/amd64");
    expect(r.layers.length).toBeGreaterThan(0);
    expect(r.rootfsPath).toBe(image.rootfsPath);
    expect(r.rootfsDigest).toBe(image.metadata.rootfs.digest);
    expect(statSync(r.rootfsPath).size).toBe(r.rootfsBytes);
    expect(r.rootfsDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(r.reused).toBe(true); // the bake above built it
    expect(events.some((e) => e.phase === "pull")).toBe(true);
    expect(events.at(-1)).toMatchObject({ phase: "rootfs" });
    expect(events.some((e) => e.phase === "boot" || e.phase === "snapshot")).toBe(false);
    const err = await pullRootfs("oci:/nonexistent/layout:latest").catch((e: { code?: string }) => e);
    expect((err as { code?: string }).code).toMatch(/^OCI_/);
  });
});

describe("snapshots API", () => {
  it("lists the bake with its metadata and disk use", async () => {
    const list = await listSnapshots({ snapshotsDir });
    expect(list).toHaveLength(1);
    const s = list[0]!;
    expect(s.path).toBe(image.snapshotPath);
    expect(s.valid).toBe(true);
    expect(s.problem).toBeUndefined();
    expect(s.metadata?.fingerprint).toBe(image.metadata.fingerprint);
    // the sparse memory file counts only touched pages: well under 256 MiB, above the device state
    expect(s.diskBytes).toBeGreaterThan(statSync(join(s.path, "restore.snap")).size);
    expect(s.diskBytes).toBeLessThan(256 * 1024 * 1024);
  });

  it("inspects by name, directory or restore.snap path: fingerprint inputs, platform, sizes", async () => {
    const name = image.snapshotPath.split("/").at(-1)!;
    const byName = await inspectSnapshot(name, { snapshotsDir });
    const byDir = await inspectSnapshot(image.snapshotPath);
    const bySnap = await inspectSnapshot(join(image.snapshotPath, "restore.snap"));
    for (const i of [byDir, bySnap]) expect(i).toEqual(byName);
    const i = byName;
    const m = image.metadata;
    expect(i).toMatchObject({ name, path: image.snapshotPath, valid: true, guestCurrent: true });
    expect(i.accel).toBe(m.engine.accel);
    expect(i.arch).toBe("x86_64");
    expect(i.platform).toBe("linux/amd64");
    expect(i.sizes.memoryBytes).toBe(m.memoryMib * 1024 * 1024);
    expect(i.sizes.memoryAllocatedBytes).toBeGreaterThan(0);
    expect(i.sizes.memoryAllocatedBytes).toBeLessThan(i.sizes.memoryBytes);
    expect(i.sizes.stateBytes).toBe(statSync(join(image.snapshotPath, "restore.snap")).size);
    expect(i.sizes.rootfsBytes).toBe(m.rootfs.size);
    // the recorded inputs are exactly what the fingerprint was computed from
    const f = i.fingerprintInputs;
    expect(
      computeFingerprint({
        manifestDigest: f.manifestDigest,
        memoryMib: f.memoryMib,
        vcpus: f.vcpus,
        guestPort: f.guestPort,
        listenerRequired: f.listenerRequired,
        extraFiles: f.extraFiles,
        warmupTag: f.warmupTag,
        kernelHash: f.kernelHash,
        agentHash: f.agentHash,
        accel: f.accel,
        cpuModel: f.cpuModel as string,
        qemuVersion: f.qemuVersion,
        arch: f.arch,
      }),
    ).toBe(i.fingerprint);
  });

  it("reports a damaged copy as invalid, and prunes by age and count", async () => {
    const other = join(root, "other");
    const copy = join(other, "copy");
    cpSync(image.snapshotPath, copy, { recursive: true });
    truncateSync(join(copy, "restore.snap"), 100);
    const [bad] = await listSnapshots({ snapshotsDir: other });
    expect(bad).toMatchObject({ name: "copy", valid: false, problem: { code: "SNAPSHOT_CORRUPT" } });
    const inspected = await inspectSnapshot("copy", { snapshotsDir: other });
    expect(inspected.valid).toBe(false);
    expect(inspected.problem?.message).toContain("restore.snap");

    expect((await pruneSnapshots({ snapshotsDir, keep: 1 })).removedSnapshots).toEqual([]);
    expect((await pruneSnapshots({ snapshotsDir, olderThan: 60 * 60_000 })).removedSnapshots).toEqual([]);
    const r = await pruneSnapshots({ snapshotsDir, olderThan: 0 });
    expect(r.removedSnapshots).toEqual([image.snapshotPath.split("/").at(-1)]);
    expect(r.freedBytes).toBeGreaterThan(0);
    expect(existsSync(image.snapshotPath)).toBe(false);
    expect(existsSync(image.rootfsPath)).toBe(true); // shared root fs kept without `rootfs: true`
  });
});
