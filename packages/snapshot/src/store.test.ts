import { createHash } from "node:crypto";
import { appendFile, chmod, mkdir, readdir, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SnapshotError } from "./errors.js";
import { loadSnapshot } from "./load.js";
import { defaultSnapshotName } from "./names.js";
import { SnapshotStore } from "./store.js";
import {
  ASSETS,
  fakeBuild,
  fp,
  makeTestDirs,
  rootfsDigestOf,
  type TestDirs,
  writeRootfs,
} from "./test-support/fixtures.js";

let t: TestDirs;
let store: SnapshotStore;
let rootfsPath: string;
const REF = "127.0.0.1:5000/library/busybox:latest";

beforeEach(async () => {
  t = await makeTestDirs();
  store = new SnapshotStore({ dir: t.snapshots });
  rootfsPath = await writeRootfs(t.rootfs, "r1");
});
afterEach(async () => {
  await t.cleanup();
});

async function expectCode(p: Promise<unknown>, code: string): Promise<SnapshotError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(SnapshotError);
    expect((err as SnapshotError).code).toBe(code);
    return err as SnapshotError;
  }
  throw new Error(`expected ${code}`);
}

async function visibleEntries(): Promise<string[]> {
  return (await readdir(t.snapshots)).sort();
}

describe("SnapshotStore publish / lookup / load", () => {
  it("round-trips a snapshot under its default name", async () => {
    const key = { ref: REF, fingerprint: fp("1a") };
    expect(await store.lookup(key)).toBeUndefined();
    const published = await store.publish(key, fakeBuild(rootfsPath), { expectedAssets: ASSETS });
    expect(published.built).toBe(true);
    expect(published.name).toBe(defaultSnapshotName(REF, fp("1a")));
    expect(published.name).toBe(`127.0.0.1_5000_library_busybox_latest-${"1a".repeat(8)}`);
    expect(published.dir).toBe(join(t.snapshots, published.name));
    expect(await visibleEntries()).toEqual([published.name]);

    const meta = published.metadata;
    expect(meta.formatVersion).toBe(2);
    expect(meta.fingerprint).toBe(fp("1a"));
    expect(meta.rootfs).toEqual({
      digest: rootfsDigestOf("r1"),
      size: 4096,
      sha256: createHash("sha256")
        .update(await readFile(rootfsPath))
        .digest("hex"),
    });
    expect(published.rootfsPath).toBe(rootfsPath);
    expect(meta.files["memory.bin"]).toEqual({ size: 8 * 1024 * 1024 });
    expect(meta.files["restore.snap"]?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(meta.files["machine.json"]?.size).toBeGreaterThan(0);
    expect(meta.extraFiles).toEqual([]);

    const onDisk = JSON.parse(await readFile(join(published.dir, "metadata.json"), "utf8"));
    expect(onDisk).toEqual(meta);

    const found = await store.lookup(key, { expectedAssets: ASSETS });
    expect(found?.dir).toBe(published.dir);
    expect(found?.metadata).toEqual(meta);

    const byDir = await loadSnapshot(published.dir);
    const bySnap = await SnapshotStore.load(join(published.dir, "restore.snap"), { expectedAssets: ASSETS });
    const byName = await store.load(published.name);
    for (const l of [byDir, bySnap, byName]) {
      expect(l.dir).toBe(published.dir);
      expect(l.stateFile).toBe(join(published.dir, "restore.snap"));
      expect(l.memoryFile).toBe(join(published.dir, "memory.bin"));
      expect(l.metadata).toEqual(meta);
    }
  });

  it("publishes private snapshots: directory 0700, files 0600, memory.bin keeps only group read", async () => {
    const key = { ref: REF, fingerprint: fp("1e") };
    const published = await store.publish(key, async (tmpDir) => {
      const d = await fakeBuild(rootfsPath)(tmpDir);
      await chmod(join(tmpDir, "memory.bin"), 0o666); // as if the engine had granted its QEMU group read
      await chmod(join(tmpDir, "restore.snap"), 0o644);
      return d;
    });
    const mode = async (p: string) => (await stat(p)).mode & 0o7777;
    expect(await mode(t.snapshots)).toBe(0o700);
    expect(await mode(published.dir)).toBe(0o700);
    for (const f of ["restore.snap", "machine.json", "metadata.json"]) {
      expect(await mode(join(published.dir, f))).toBe(0o600);
    }
    expect(await mode(join(published.dir, "memory.bin"))).toBe(0o640);
  });

  it("does not rebuild when a valid snapshot with the fingerprint exists", async () => {
    const key = { ref: REF, fingerprint: fp("1b") };
    await store.publish(key, fakeBuild(rootfsPath));
    let ran = 0;
    const second = await store.publish(key, async (dir) => {
      ran++;
      return fakeBuild(rootfsPath)(dir);
    });
    expect(ran).toBe(0);
    expect(second.built).toBe(false);
  });

  it("a different fingerprint under the default name gets its own directory", async () => {
    const a = await store.publish({ ref: REF, fingerprint: fp("01") }, fakeBuild(rootfsPath));
    const b = await store.publish({ ref: REF, fingerprint: fp("02") }, fakeBuild(rootfsPath));
    expect(a.dir).not.toBe(b.dir);
    expect((await visibleEntries()).length).toBe(2);
  });

  it("replaces a named snapshot atomically when the fingerprint changes", async () => {
    const first = await store.publish(
      { name: "web", ref: REF, fingerprint: fp("aa") },
      fakeBuild(rootfsPath),
    );
    await appendFile(join(first.dir, "marker-old"), "x");
    expect(await store.lookup({ name: "web", ref: REF, fingerprint: fp("bb") })).toBeUndefined();

    const second = await store.publish(
      { name: "web", ref: REF, fingerprint: fp("bb") },
      fakeBuild(rootfsPath, { memoryMib: 16 }),
    );
    expect(second.built).toBe(true);
    expect(second.dir).toBe(first.dir);
    expect(second.metadata.memoryMib).toBe(16);
    expect(await visibleEntries()).toEqual(["web"]);
    expect(await readdir(second.dir)).not.toContain("marker-old");
    expect((await stat(second.memoryFile)).size).toBe(16 * 1024 * 1024);
    expect(await store.lookup({ name: "web", ref: REF, fingerprint: fp("aa") })).toBeUndefined();
    expect((await store.lookup({ name: "web", ref: REF, fingerprint: fp("bb") }))?.metadata.memoryMib).toBe(
      16,
    );
  });

  it("a failed build leaves nothing behind and the old snapshot intact", async () => {
    const key = { name: "svc", ref: REF, fingerprint: fp("c1") };
    const first = await store.publish(key, fakeBuild(rootfsPath));
    const before = await readFile(join(first.dir, "metadata.json"), "utf8");
    let tmpSeen = "";
    const boom = new Error("workload exited during bake");
    await expect(
      store.publish({ ...key, fingerprint: fp("c2") }, async (tmp) => {
        tmpSeen = tmp;
        await fakeBuild(rootfsPath)(tmp);
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(tmpSeen.startsWith(join(t.snapshots, ".tmp."))).toBe(true);
    expect(await visibleEntries()).toEqual(["svc"]);
    expect(await readFile(join(first.dir, "metadata.json"), "utf8")).toBe(before);
    expect((await store.lookup(key))?.dir).toBe(first.dir);

    // A first build of a fresh name that fails leaves no directory at all.
    await expect(
      store.publish({ ref: REF, fingerprint: fp("c3") }, async () => Promise.reject(boom)),
    ).rejects.toBe(boom);
    expect(await visibleEntries()).toEqual(["svc"]);
  });

  it("rejects a build whose metadata is invalid, naming the field, and cleans up", async () => {
    const err = await expectCode(
      store.publish({ ref: REF, fingerprint: fp("d1") }, fakeBuild(rootfsPath, { vcpus: 0 })),
      "SNAPSHOT_METADATA_INVALID",
    );
    expect(err.details.field).toBe("vcpus");
    await expectCode(
      store.publish({ ref: REF, fingerprint: fp("d2") }, async (tmp) => ({
        ...(await fakeBuild(rootfsPath)(tmp)),
        fingerprint: fp("ff"),
      })),
      "SNAPSHOT_METADATA_INVALID",
    );
    await expectCode(
      store.publish({ ref: REF, fingerprint: fp("d4") }, fakeBuild(join(t.rootfs, "absent.ext4"))),
      "SNAPSHOT_ROOTFS_MISSING",
    );
    await expectCode(
      store.publish({ ref: REF, fingerprint: fp("d5") }, fakeBuild(rootfsPath), {
        expectedAssets: { ...ASSETS, agentHash: "other" },
      }),
      "SNAPSHOT_ASSET_MISMATCH",
    );
    expect(await visibleEntries()).toEqual([]);
  });

  it("rejects a build that did not write the engine files", async () => {
    await mkdir(t.snapshots, { recursive: true });
    const err = await expectCode(
      store.publish({ ref: REF, fingerprint: fp("e1") }, async (tmp) => {
        const d = await fakeBuild(rootfsPath)(tmp);
        await rm(join(tmp, "restore.snap"));
        return d;
      }),
      "SNAPSHOT_CORRUPT",
    );
    expect(err.details.file).toBe("restore.snap");
    expect(await visibleEntries()).toEqual([]);
  });

  it("rejects invalid names", async () => {
    for (const name of ["", ".hidden", "a/b", "..", "x".repeat(161), "sp ace"]) {
      await expectCode(
        store.publish({ name, ref: REF, fingerprint: fp("f1") }, fakeBuild(rootfsPath)),
        "SNAPSHOT_NAME_INVALID",
      );
    }
  });
});

describe("validation on load", () => {
  let dir: string;
  beforeEach(async () => {
    dir = (await store.publish({ name: "v", ref: REF, fingerprint: fp("77") }, fakeBuild(rootfsPath))).dir;
  });

  it("SNAPSHOT_NOT_FOUND for a path that does not exist or is not a snapshot file", async () => {
    await expectCode(loadSnapshot(join(t.snapshots, "nope")), "SNAPSHOT_NOT_FOUND");
    await expectCode(loadSnapshot(join(dir, "nope", "restore.snap")), "SNAPSHOT_NOT_FOUND");
    await expectCode(loadSnapshot(join(dir, "memory.bin")), "SNAPSHOT_NOT_FOUND");
  });

  it("SNAPSHOT_CORRUPT when metadata.json is missing or not JSON", async () => {
    await writeFile(join(dir, "metadata.json"), "{not json");
    expect((await expectCode(loadSnapshot(dir), "SNAPSHOT_CORRUPT")).details.file).toBe("metadata.json");
    await rm(join(dir, "metadata.json"));
    const err = await expectCode(loadSnapshot(dir), "SNAPSHOT_CORRUPT");
    expect(err.message).toMatch(/metadata\.json is missing/);
  });

  it("SNAPSHOT_CORRUPT naming the field when metadata.json has a bad field", async () => {
    const m = JSON.parse(await readFile(join(dir, "metadata.json"), "utf8"));
    m.guestPort = "80";
    await writeFile(join(dir, "metadata.json"), JSON.stringify(m));
    const err = await expectCode(loadSnapshot(dir), "SNAPSHOT_CORRUPT");
    expect(err.details.field).toBe("guestPort");
    expect(err.message).toMatch(/guestPort/);
  });

  it("SNAPSHOT_CORRUPT when restore.snap or memory.bin is missing", async () => {
    await rm(join(dir, "restore.snap"));
    const err = await expectCode(loadSnapshot(dir), "SNAPSHOT_CORRUPT");
    expect(err.details.file).toBe("restore.snap");
    expect(err.message).toMatch(/restore\.snap is missing/);
  });

  it("SNAPSHOT_CORRUPT when the memory file is truncated", async () => {
    await truncate(join(dir, "memory.bin"), 4 * 1024 * 1024);
    const err = await expectCode(loadSnapshot(dir), "SNAPSHOT_CORRUPT");
    expect(err.details).toMatchObject({ file: "memory.bin", problem: "size", size: 4 * 1024 * 1024 });
    expect(err.message).toMatch(/memory\.bin \(guest memory\) is 4194304 bytes, expected 8388608/);
  });

  it("SNAPSHOT_CORRUPT when metadata memoryMib disagrees with the recorded memory size", async () => {
    const m = JSON.parse(await readFile(join(dir, "metadata.json"), "utf8"));
    m.memoryMib = 16;
    await writeFile(join(dir, "metadata.json"), JSON.stringify(m));
    expect((await expectCode(loadSnapshot(dir), "SNAPSHOT_CORRUPT")).details.field).toBe(
      "files.memory.bin.size",
    );
  });

  it("SNAPSHOT_CORRUPT when restore.snap was overwritten with other bytes of the same size", async () => {
    const buf = await readFile(join(dir, "restore.snap"));
    buf[10] = (buf[10]! + 1) & 0xff;
    await writeFile(join(dir, "restore.snap"), buf);
    expect((await expectCode(loadSnapshot(dir), "SNAPSHOT_CORRUPT")).details.problem).toBe("checksum");
    // Without checksum verification only sizes are compared.
    await expect(loadSnapshot(dir, { verifyChecksums: false })).resolves.toBeDefined();
  });

  it("SNAPSHOT_VERSION for an unknown format version", async () => {
    const m = JSON.parse(await readFile(join(dir, "metadata.json"), "utf8"));
    m.formatVersion = 99;
    await writeFile(join(dir, "metadata.json"), JSON.stringify(m));
    const err = await expectCode(loadSnapshot(dir), "SNAPSHOT_VERSION");
    expect(err.details.formatVersion).toBe(99);
  });

  it("SNAPSHOT_ASSET_MISMATCH naming the kernel or the agent", async () => {
    const k = await expectCode(
      loadSnapshot(dir, { expectedAssets: { ...ASSETS, kernelHash: "k2" } }),
      "SNAPSHOT_ASSET_MISMATCH",
    );
    expect(k.details.field).toBe("assets.kernelHash");
    expect(k.message).toMatch(/guest kernel/);
    const a = await expectCode(
      loadSnapshot(dir, { expectedAssets: { ...ASSETS, agentHash: "a2" } }),
      "SNAPSHOT_ASSET_MISMATCH",
    );
    expect(a.details.field).toBe("assets.agentHash");
    expect(a.message).toMatch(/guest agent/);
  });

  it("SNAPSHOT_ROOTFS_MISSING / SNAPSHOT_ROOTFS_CHANGED for the referenced root fs", async () => {
    await writeFile(rootfsPath, "short");
    expect((await expectCode(loadSnapshot(dir), "SNAPSHOT_ROOTFS_CHANGED")).details.size).toBe(5);
    await rm(rootfsPath);
    const err = await expectCode(loadSnapshot(dir), "SNAPSHOT_ROOTFS_MISSING");
    expect(err.details.digest).toBe(rootfsDigestOf("r1"));
  });

  it("lookup treats an invalid snapshot as absent, reports why, and publish replaces it", async () => {
    await truncate(join(dir, "memory.bin"), 0);
    const seen: string[] = [];
    const key = { name: "v", ref: REF, fingerprint: fp("77") };
    expect(await store.lookup(key, { onInvalid: (e) => seen.push(e.code) })).toBeUndefined();
    expect(seen).toEqual(["SNAPSHOT_CORRUPT"]);
    const rebuilt = await store.publish(key, fakeBuild(rootfsPath));
    expect(rebuilt.built).toBe(true);
    expect((await stat(rebuilt.memoryFile)).size).toBe(8 * 1024 * 1024);
  });
});

describe("list / remove / writeDerived", () => {
  it("lists snapshots with disk usage, reports corrupt ones, ignores temp and lock entries", async () => {
    const a = await store.publish({ name: "a", ref: REF, fingerprint: fp("a1") }, fakeBuild(rootfsPath));
    await store.publish({ name: "b", ref: REF, fingerprint: fp("b1") }, fakeBuild(rootfsPath));
    await rm(join(t.snapshots, "b", "restore.snap"));
    await mkdir(join(t.snapshots, ".tmp.0123.a"));
    await writeFile(join(t.snapshots, ".lock.a"), "{}");
    await writeFile(join(t.snapshots, "stray-file"), "x");
    const entries = await store.list();
    expect(entries.map((e) => e.name)).toEqual(["a", "b"]);
    const [ea, eb] = entries;
    expect(ea).toMatchObject({ name: "a", dir: a.dir, valid: true });
    expect(ea?.metadata?.fingerprint).toBe(fp("a1"));
    // Sparse memory file: allocated far below its 8 MiB apparent size.
    expect(ea?.diskUsage.apparentBytes).toBeGreaterThan(8 * 1024 * 1024);
    expect(ea?.diskUsage.allocatedBytes).toBeLessThan(1024 * 1024);
    expect(eb?.valid).toBe(false);
    expect(eb?.error?.code).toBe("SNAPSHOT_CORRUPT");
    expect(eb?.error?.details.file).toBe("restore.snap");
  });

  it("list of a store that does not exist yet is empty", async () => {
    expect(await new SnapshotStore({ dir: join(t.root, "none") }).list()).toEqual([]);
  });

  it("removes a snapshot by name", async () => {
    await store.publish({ name: "gone", ref: REF, fingerprint: fp("9a") }, fakeBuild(rootfsPath));
    expect(await store.remove("gone")).toBe(true);
    expect(await store.remove("gone")).toBe(false);
    expect(await visibleEntries()).toEqual([]);
  });

  it("writeDerived writes a vm-snapshot derived from a base into any directory", async () => {
    const base = await store.publish({ ref: REF, fingerprint: fp("5e") }, fakeBuild(rootfsPath));
    const dest = join(t.root, "derived", "after-warmup");
    const d = await SnapshotStore.writeDerived(dest, base.metadata, async (tmp) => {
      await fakeBuild(rootfsPath)(tmp);
    });
    expect(d.dir).toBe(dest);
    expect(d.metadata.trigger).toBe("vm-snapshot");
    expect(d.metadata.parentFingerprint).toBe(fp("5e"));
    expect(d.metadata.fingerprint).not.toBe(fp("5e"));
    expect(d.metadata.image).toEqual(base.metadata.image);
    expect((await loadSnapshot(dest)).metadata).toEqual(d.metadata);

    // Again into the same directory: replaced.
    const d2 = await SnapshotStore.writeDerived(dest, base.metadata, async (tmp) => {
      await fakeBuild(rootfsPath)(tmp);
    });
    expect(d2.metadata.fingerprint).not.toBe(d.metadata.fingerprint);
    expect((await readdir(join(t.root, "derived"))).filter((e) => !e.startsWith(".lock"))).toEqual([
      "after-warmup",
    ]);

    // Never over a directory holding something else.
    const other = join(t.root, "precious");
    await mkdir(other);
    await writeFile(join(other, "data.txt"), "keep me");
    await expectCode(
      SnapshotStore.writeDerived(other, base.metadata, async (tmp) => {
        await fakeBuild(rootfsPath)(tmp);
      }),
      "SNAPSHOT_DEST_NOT_EMPTY",
    );
    expect(await readFile(join(other, "data.txt"), "utf8")).toBe("keep me");
  });
});
