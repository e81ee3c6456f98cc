import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SnapshotStore } from "./store.js";
import { fakeBuild, fp, makeTestDirs, type TestDirs, writeRootfs } from "./test-support/fixtures.js";

let t: TestDirs;
let store: SnapshotStore;
const REF = "registry.local/app:1";

beforeEach(async () => {
  t = await makeTestDirs();
  store = new SnapshotStore({ dir: t.snapshots });
});
afterEach(async () => {
  await t.cleanup();
});

/** Publishes snapshot `name` created `ageMs` ago using root fs `rootfsPath`. */
async function publishAged(name: string, ageMs: number, rootfsPath: string, byte: string): Promise<void> {
  const createdAt = new Date(Date.now() - ageMs).toISOString();
  await store.publish({ name, ref: REF, fingerprint: fp(byte) }, async (tmp) => ({
    ...(await fakeBuild(rootfsPath)(tmp)),
    createdAt,
  }));
}

async function ageFile(path: string, ageMs: number): Promise<void> {
  const when = new Date(Date.now() - ageMs);
  await utimes(path, when, when);
}

const HOUR = 3_600_000;

describe("prune", () => {
  it("keeps everything valid when given no criteria", async () => {
    const r1 = await writeRootfs(t.rootfs, "r1");
    await publishAged("a", 5 * HOUR, r1, "a1");
    await publishAged("b", 1 * HOUR, r1, "b1");
    const res = await store.prune();
    expect(res.removedSnapshots).toEqual([]);
    expect((await store.list()).map((e) => e.name)).toEqual(["a", "b"]);
  });

  it("keeps the newest `keep` and removes by age with `olderThan`", async () => {
    const r1 = await writeRootfs(t.rootfs, "r1");
    await publishAged("oldest", 30 * HOUR, r1, "01");
    await publishAged("old", 20 * HOUR, r1, "02");
    await publishAged("new", 2 * HOUR, r1, "03");
    await publishAged("newest", 1 * HOUR, r1, "04");

    const byAgeAndKeep = await store.prune({ keep: 3, olderThan: 10 * HOUR });
    expect(byAgeAndKeep.removedSnapshots).toEqual(["oldest"]);

    const byAge = await store.prune({ olderThan: new Date(Date.now() - 10 * HOUR) });
    expect(byAge.removedSnapshots).toEqual(["old"]);

    const byKeep = await store.prune({ keep: 1 });
    expect(byKeep.removedSnapshots).toEqual(["new"]);
    expect(byKeep.freedBytes).toBeGreaterThan(0);
    expect((await store.list()).map((e) => e.name)).toEqual(["newest"]);
  });

  it("removes invalid snapshots and older formats, but not those of a newer format version", async () => {
    const r1 = await writeRootfs(t.rootfs, "r1");
    await publishAged("broken", HOUR, r1, "0b");
    await publishAged("future", HOUR, r1, "0f");
    await publishAged("older", HOUR, r1, "01");
    await publishAged("good", HOUR, r1, "09");
    await rm(join(t.snapshots, "broken", "memory.bin"));
    for (const [name, version] of [
      ["future", 3],
      ["older", 1],
    ] as const) {
      const meta = JSON.parse(await readFile(join(t.snapshots, name, "metadata.json"), "utf8"));
      meta.formatVersion = version;
      await writeFile(join(t.snapshots, name, "metadata.json"), JSON.stringify(meta));
    }

    expect((await store.prune({ removeInvalid: false })).removedSnapshots).toEqual([]);
    const res = await store.prune();
    // format 1 (root fs by host path) is superseded: this release bakes it again anyway
    expect(res.removedSnapshots.sort()).toEqual(["broken", "older"]);
    expect(await readdir(t.snapshots)).toEqual(["future", "good"]);
  });

  it("removes root fs images no remaining snapshot references", async () => {
    const r1 = await writeRootfs(t.rootfs, "r1");
    const r2 = await writeRootfs(t.rootfs, "r2");
    const r3 = await writeRootfs(t.rootfs, "r3");
    const fresh = await writeRootfs(t.rootfs, "fresh");
    const hidden = join(t.rootfs, ".partial");
    await writeFile(hidden, "in progress");
    await mkdir(join(t.rootfs, "subdir"));
    await publishAged("uses-r1", 40 * HOUR, r1, "11");
    await publishAged("uses-r2", 1 * HOUR, r2, "22");
    for (const p of [r1, r2, r3, hidden]) await ageFile(p, 48 * HOUR);

    const res = await store.prune({ olderThan: 24 * HOUR, rootfsDir: t.rootfs });
    expect(res.removedSnapshots).toEqual(["uses-r1"]);
    expect(res.removedRootfs.sort()).toEqual([r1, r3].sort());
    expect(existsSync(r2)).toBe(true);
    // Recently written images (a bake may be about to reference them), dot files and directories stay.
    expect(existsSync(fresh)).toBe(true);
    expect(existsSync(hidden)).toBe(true);
    expect(existsSync(join(t.rootfs, "subdir"))).toBe(true);
    expect((await store.load("uses-r2")).rootfsPath).toBe(r2);

    const all = await store.prune({ rootfsDir: t.rootfs, rootfsGraceMs: 0 });
    expect(all.removedRootfs).toEqual([fresh]);
  });

  it("keeps root fs images referenced by snapshots it cannot fully read", async () => {
    const r1 = await writeRootfs(t.rootfs, "r1");
    await publishAged("future", HOUR, r1, "0f");
    const meta = JSON.parse(await readFile(join(t.snapshots, "future", "metadata.json"), "utf8"));
    meta.formatVersion = 3;
    await writeFile(join(t.snapshots, "future", "metadata.json"), JSON.stringify(meta));
    const res = await store.prune({ rootfsDir: t.rootfs, rootfsGraceMs: 0 });
    expect(res.removedRootfs).toEqual([]);
    expect(existsSync(r1)).toBe(true);
  });

  it("cleans leftovers of crashed publishes, but not of running ones", async () => {
    const r1 = await writeRootfs(t.rootfs, "r1");
    await publishAged("a", HOUR, r1, "aa");
    await mkdir(join(t.snapshots, ".tmp.abcdef.a"));
    await writeFile(join(t.snapshots, ".tmp.abcdef.a", "memory.bin"), "partial");
    await mkdir(join(t.snapshots, ".old.123456.b"));
    const lockTemp = join(t.snapshots, ".lock.a.deadbeef.tmp");
    await writeFile(lockTemp, "{}");
    await ageFile(lockTemp, HOUR);

    // A publish of "c" in progress (its lock is held): its temp dir stays, root fs pruning waits.
    await mkdir(join(t.snapshots, ".tmp.fedcba.c"));
    const held = await store.lock("c");
    const unreferenced = await writeRootfs(t.rootfs, "orphan");
    await ageFile(unreferenced, 48 * HOUR);
    const res = await store.prune({ rootfsDir: t.rootfs });
    expect(res.removedTemp.sort()).toEqual([".lock.a.deadbeef.tmp", ".old.123456.b", ".tmp.abcdef.a"]);
    expect(existsSync(join(t.snapshots, ".tmp.fedcba.c"))).toBe(true);
    expect(res.rootfsSkipped).toMatch(/publish is in progress/);
    expect(existsSync(unreferenced)).toBe(true);
    await held.release();

    const after = await store.prune({ rootfsDir: t.rootfs });
    expect(after.removedTemp).toEqual([".tmp.fedcba.c"]);
    expect(after.removedRootfs).toEqual([unreferenced]);
    expect(await readdir(t.snapshots)).toEqual(["a"]);
  });

  it("skips a snapshot whose lock a live process holds", async () => {
    const r1 = await writeRootfs(t.rootfs, "r1");
    await publishAged("busy", 50 * HOUR, r1, "bb");
    const held = await store.lock("busy");
    const res = await store.prune({ olderThan: HOUR });
    expect(res.skippedBusy).toEqual(["busy"]);
    expect(res.removedSnapshots).toEqual([]);
    await held.release();
    expect((await store.prune({ olderThan: HOUR })).removedSnapshots).toEqual(["busy"]);
  });
});
