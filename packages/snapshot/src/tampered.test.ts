// A snapshot directory someone has edited: metadata.json naming the root fs
// by something that is not a digest (a host path, `..`, commas for QEMU
// option injection), or a store holding symlinks out of it. Every load must
// fail with a typed error before anything is opened.
import { createHash } from "node:crypto";
import { cp, mkdir, readFile, rename, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SnapshotError } from "./errors.js";
import type { LoadedSnapshot } from "./load.js";
import { loadSnapshot } from "./load.js";
import { defaultRootfsDir } from "./paths.js";
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
type Editable = { rootfs: { digest: string; size: number }; extraFiles: unknown[] };
async function tamper(edit: (m: Editable) => void, dir = snap.dir): Promise<void> {
  const path = join(dir, "metadata.json");
  const m = JSON.parse(await readFile(path, "utf8"));
  edit(m);
  await writeFile(path, JSON.stringify(m));
}

async function failsWith(p: Promise<unknown>, code: string): Promise<SnapshotError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SnapshotError);
  expect((err as SnapshotError).code).toBe(code);
  return err as SnapshotError;
}
const unsafe = (p: Promise<unknown>) => failsWith(p, "SNAPSHOT_UNSAFE_PATH");

describe("a tampered snapshot cannot point QEMU outside the snapshot and root fs stores", () => {
  it("the root fs is named by digest and found in the default store, $SUPERMACHINE_CACHE/oci/rootfs", async () => {
    expect(defaultRootfsDir()).toBe(t.rootfs);
    expect(snap.rootfsPath).toBe(join(t.rootfs, `${rootfsDigestOf("r1").slice(7)}.ext4`));
    const onDisk = await readFile(join(snap.dir, "metadata.json"), "utf8");
    // no host path of this machine is in the metadata: the directory can move
    expect(onDisk).not.toContain(t.root);
    expect(JSON.parse(onDisk).rootfs).toEqual({
      digest: rootfsDigestOf("r1"),
      size: 4096,
      sha256: createHash("sha256")
        .update(await readFile(snap.rootfsPath))
        .digest("hex"),
    });
  });

  it("a digest that is not sha256:<64 hex> (a path, `..`, a comma, a control character) is refused", async () => {
    const hex = rootfsDigestOf("r1").slice(7);
    const bad = [
      "/etc/passwd",
      `sha256:${hex}/../../../etc/passwd`,
      `sha256:../../${hex.slice(6)}`,
      `sha256:${hex},if=none`,
      `sha256:${hex}\n`,
      `sha512:${hex}${hex}`,
      `sha256:${hex.toUpperCase()}`,
    ];
    for (const digest of bad) {
      await tamper((m) => {
        m.rootfs.digest = digest;
      });
      const err = await failsWith(loadSnapshot(snap.dir), "SNAPSHOT_CORRUPT");
      expect(err.details).toMatchObject({ field: "rootfs.digest", file: "metadata.json" });
    }
    // lookup reports it as invalid and treats it as absent; list marks it
    const seen: SnapshotError[] = [];
    expect(
      await store.lookup(
        { name: "web", ref: REF, fingerprint: fp("1a") },
        { onInvalid: (e) => seen.push(e) },
      ),
    ).toBeUndefined();
    expect(seen.map((e) => e.code)).toEqual(["SNAPSHOT_CORRUPT"]);
  });

  it("a digest no store has is SNAPSHOT_ROOTFS_MISSING naming the digest and the stores looked in", async () => {
    await tamper((m) => {
      m.rootfs.digest = rootfsDigestOf("elsewhere");
    });
    const err = await failsWith(loadSnapshot(snap.dir), "SNAPSHOT_ROOTFS_MISSING");
    expect(err.details).toMatchObject({ digest: rootfsDigestOf("elsewhere"), rootfsDirs: [t.rootfs] });
  });

  it("a symlink in the store leading out of it is refused, as is a symlinked directory", async () => {
    const outside = join(t.root, "outside");
    await mkdir(outside);
    const evil = await writeRootfs(outside, "evil");
    const name = `${rootfsDigestOf("evil").slice(7)}.ext4`;
    await symlink(evil, join(t.rootfs, name));
    await tamper((m) => {
      m.rootfs.digest = rootfsDigestOf("evil");
    });
    expect((await unsafe(loadSnapshot(snap.dir))).details.problem).toBe("is a symbolic link");
    // a store that is itself reached through a symlinked directory
    const viaLink = join(t.root, "linked-store");
    await symlink(outside, viaLink);
    await expect(loadSnapshot(snap.dir, { rootfsDirs: [viaLink] })).resolves.toBeDefined();
    // a store whose file resolves to another directory (a symlinked subdirectory of the store)
    const sub = join(t.rootfs, "sub");
    await symlink(outside, sub);
    await mkdir(join(t.root, "store2"));
    await symlink(join(sub, name), join(t.root, "store2", name)).catch(() => {});
    expect(
      String(
        (await unsafe(loadSnapshot(snap.dir, { rootfsDirs: [join(t.root, "store2")] }))).details.problem,
      ),
    ).toMatch(/symbolic link/);
  });

  it("rootfsDirs names the stores searched, in order (per call or per store)", async () => {
    const other = join(t.root, "other-store");
    await mkdir(other);
    await writeRootfs(other, "r2");
    await tamper((m) => {
      m.rootfs.digest = rootfsDigestOf("r2");
    });
    await failsWith(loadSnapshot(snap.dir), "SNAPSHOT_ROOTFS_MISSING");
    const found = await loadSnapshot(snap.dir, { rootfsDirs: [t.rootfs, other] });
    expect(found.rootfsPath).toBe(join(other, `${rootfsDigestOf("r2").slice(7)}.ext4`));
    const trusting = new SnapshotStore({ dir: t.snapshots, rootfsDirs: [other] });
    await expect(trusting.load("web")).resolves.toBeDefined();
    // ... and the default store is then not searched by that store.
    await tamper((m) => {
      m.rootfs.digest = rootfsDigestOf("r1");
    });
    await failsWith(trusting.load("web"), "SNAPSHOT_ROOTFS_MISSING");
    await expect(store.load("web")).resolves.toBeDefined();
  });

  it("publish refuses a root fs not named after its digest, or outside the stores", async () => {
    const other = join(t.root, "other-store");
    await mkdir(other);
    const path = await writeRootfs(other, "r3");
    await failsWith(
      store.publish({ name: "w2", ref: REF, fingerprint: fp("2b") }, fakeBuild(path)),
      "SNAPSHOT_ROOTFS_MISSING",
    );
    const misnamed = join(t.rootfs, "r1.ext4");
    await writeFile(misnamed, Buffer.alloc(4096));
    await failsWith(
      store.publish(
        { name: "w3", ref: REF, fingerprint: fp("2c") },
        fakeBuild(misnamed, { rootfs: { path: misnamed, digest: rootfsDigestOf("r1") } }),
      ),
      "SNAPSHOT_METADATA_INVALID",
    );
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
        fakeBuild(snap.rootfsPath),
      ),
    );
    // Renamed to a clean path, the same files load.
    await rename(join(commaDir, "web"), join(t.root, "clean"));
    await expect(loadSnapshot(join(t.root, "clean"))).resolves.toBeDefined();
  });
});
