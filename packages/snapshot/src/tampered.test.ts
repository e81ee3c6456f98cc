// A snapshot directory someone has edited: metadata.json pointing the root fs
// at host files, at paths with `..`, commas (QEMU option injection) or
// symlinks out of the store. Every load must fail with SNAPSHOT_UNSAFE_PATH
// before anything is opened.
import { cp, mkdir, readFile, rename, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SnapshotError } from "./errors.js";
import type { LoadedSnapshot } from "./load.js";
import { loadSnapshot } from "./load.js";
import { defaultRootfsDir } from "./paths.js";
import { SnapshotStore } from "./store.js";
import { ASSETS, fakeBuild, fp, makeTestDirs, type TestDirs, writeRootfs } from "./test-support/fixtures.js";

let t: TestDirs;
let store: SnapshotStore;
let snap: LoadedSnapshot & { name: string };
const REF = "127.0.0.1:5000/library/busybox:latest";

beforeEach(async () => {
  t = await makeTestDirs();
  store = new SnapshotStore({ dir: t.snapshots });
  const rootfs = await writeRootfs(t.rootfs, "r1");
  snap = await store.publish({ name: "web", ref: REF, fingerprint: fp("1a") }, fakeBuild(rootfs), {
    expectedAssets: ASSETS,
  });
});
afterEach(async () => {
  await t.cleanup();
});

/** Rewrites the snapshot's metadata.json through `edit` (as an attacker with write access to it would). */
type Editable = { rootfs: { path: string; size: number }; extraFiles: unknown[] };
async function tamper(edit: (m: Editable) => void, dir = snap.dir): Promise<void> {
  const path = join(dir, "metadata.json");
  const m = JSON.parse(await readFile(path, "utf8"));
  edit(m);
  await writeFile(path, JSON.stringify(m));
}

async function unsafe(p: Promise<unknown>): Promise<SnapshotError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SnapshotError);
  expect((err as SnapshotError).code).toBe("SNAPSHOT_UNSAFE_PATH");
  return err as SnapshotError;
}

describe("a tampered snapshot cannot point QEMU outside the snapshot and root fs stores", () => {
  it("the default root fs store is $SUPERMACHINE_CACHE/oci/rootfs", () => {
    expect(defaultRootfsDir()).toBe(t.rootfs);
    expect(snap.metadata.rootfs.path.startsWith(`${t.rootfs}/`)).toBe(true);
  });

  it("a root fs outside the store (an existing host file) is SNAPSHOT_UNSAFE_PATH", async () => {
    await tamper((m) => {
      m.rootfs.path = "/etc/passwd";
    });
    const err = await unsafe(loadSnapshot(snap.dir));
    expect(err.details).toMatchObject({ field: "rootfs.path", path: "/etc/passwd", rootfsDirs: [t.rootfs] });
    expect(err.details.problem).toBe("is outside the root fs stores");
    // Judged by the path alone: a missing file outside the store is unsafe, not merely missing.
    await tamper((m) => {
      m.rootfs.path = "/nonexistent/rootfs.ext4";
    });
    expect((await unsafe(loadSnapshot(snap.dir))).details.problem).toBe("is outside the root fs stores");
    await tamper((m) => {
      m.rootfs.path = "/etc/passwd";
    });
    // lookup reports it as invalid and treats it as absent; list marks it; prune keeps it (not ours to judge).
    const seen: SnapshotError[] = [];
    expect(
      await store.lookup(
        { name: "web", ref: REF, fingerprint: fp("1a") },
        { onInvalid: (e) => seen.push(e) },
      ),
    ).toBeUndefined();
    expect(seen.map((e) => e.code)).toEqual(["SNAPSHOT_UNSAFE_PATH"]);
    const [entry] = await store.list();
    expect(entry).toMatchObject({ name: "web", valid: false, error: { code: "SNAPSHOT_UNSAFE_PATH" } });
    expect((await store.prune()).removedSnapshots).toEqual([]);
  });

  it("`..`, `//`, commas and control characters in rootfs.path are refused before any file is touched", async () => {
    const inStore = (s: string) => `${t.rootfs}/${s}`;
    const bad = [
      inStore("../../../../etc/passwd"),
      inStore("./r1.ext4"),
      `${t.rootfs}//r1.ext4`,
      inStore("r1.ext4,if=none,id=x"),
      inStore("r1.ext4\nx"),
      "relative/r1.ext4",
    ];
    // The comma one exists inside the store: only the comma makes it unsafe.
    await writeFile(inStore("r1.ext4,if=none,id=x"), Buffer.alloc(4096));
    for (const path of bad) {
      await tamper((m) => {
        m.rootfs.path = path;
      });
      const err = await unsafe(loadSnapshot(snap.dir));
      expect(err.details).toMatchObject({ field: "rootfs.path", file: "metadata.json" });
    }
  });

  it("a symlink in the store leading out of it is refused, as is a symlinked directory", async () => {
    const outside = join(t.root, "outside");
    await mkdir(outside);
    await writeRootfs(outside, "evil");
    await symlink(join(outside, "evil.ext4"), join(t.rootfs, "link.ext4"));
    await tamper((m) => {
      m.rootfs.path = join(t.rootfs, "link.ext4");
      m.rootfs.size = 4096;
    });
    expect((await unsafe(loadSnapshot(snap.dir))).details.problem).toBe("is a symbolic link");
    await symlink(outside, join(t.rootfs, "sub"));
    await tamper((m) => {
      m.rootfs.path = join(t.rootfs, "sub", "evil.ext4");
    });
    expect(String((await unsafe(loadSnapshot(snap.dir))).details.problem)).toMatch(/^resolves to .*outside/);
  });

  it("rootfsDirs names the stores a caller trusts (per call or per store)", async () => {
    const other = join(t.root, "other-store");
    await mkdir(other);
    const path = await writeRootfs(other, "r2");
    await tamper((m) => {
      m.rootfs.path = path;
    });
    await unsafe(loadSnapshot(snap.dir));
    await expect(loadSnapshot(snap.dir, { rootfsDirs: [t.rootfs, other] })).resolves.toBeDefined();
    const trusting = new SnapshotStore({ dir: t.snapshots, rootfsDirs: [other] });
    await expect(trusting.load("web")).resolves.toBeDefined();
    // ... and the default store is then no longer trusted by that store.
    await tamper((m) => {
      m.rootfs.path = join(t.rootfs, "r1.ext4");
    });
    await unsafe(trusting.load("web"));
    await expect(store.load("web")).resolves.toBeDefined();
  });

  it("publish refuses a root fs outside the store, and a build whose metadata names one", async () => {
    const other = join(t.root, "other-store");
    await mkdir(other);
    const path = await writeRootfs(other, "r3");
    await unsafe(store.publish({ name: "w2", ref: REF, fingerprint: fp("2b") }, fakeBuild(path)));
    expect((await store.list()).map((e) => e.name)).toEqual(["web"]);
  });

  it("extraFiles guest paths with `..` or NUL are refused", async () => {
    for (const guestPath of ["/etc/../../root/x", "/etc/x\u0000y"]) {
      await tamper((m) => {
        m.extraFiles = [{ guestPath, sha256: "c".repeat(64), mode: 0o644 }];
      });
      expect((await unsafe(loadSnapshot(snap.dir))).details.field).toBe("extraFiles[0].guestPath");
    }
  });

  it("a snapshot directory whose own path holds a comma is refused (its files reach QEMU options)", async () => {
    const commaDir = join(t.root, "snaps,share=on");
    await mkdir(commaDir);
    await cp(snap.dir, join(commaDir, "web"), { recursive: true });
    expect((await unsafe(loadSnapshot(join(commaDir, "web")))).details.field).toBe("(directory)");
    await unsafe(new SnapshotStore({ dir: commaDir }).load("web"));
    await unsafe(
      new SnapshotStore({ dir: commaDir }).publish(
        { name: "x", ref: REF, fingerprint: fp("3c") },
        fakeBuild(join(t.rootfs, "r1.ext4")),
      ),
    );
    // Renamed to a clean path, the same files load.
    await rename(join(commaDir, "web"), join(t.root, "clean"));
    await expect(loadSnapshot(join(t.root, "clean"))).resolves.toBeDefined();
  });
});
