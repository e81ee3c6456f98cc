// Snapshot artifacts against a real registry (Debian's docker-registry on
// 127.0.0.1): push a snapshot, pull it into another store byte for byte;
// a tampered blob fails with a digest error and leaves nothing; pushing
// asks the token server for push access with the same credentials as pulls.
import { randomBytes } from "node:crypto";
import { open, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { RegistryClient } from "@supermachine/oci";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startRegistry, type TestRegistry } from "../../../test-support/registry.js";
import { findSnapshotArtifact, snapshotTag } from "./index.js";
import { SnapshotStore } from "./store.js";
import {
  ASSETS,
  draft,
  fp,
  makeTestDirs,
  type TestDirs,
  writeEngineFiles,
  writeRootfs,
} from "./test-support/fixtures.js";

const REF = "127.0.0.1:5000/library/busybox:latest";
let reg: TestRegistry;
let t: TestDirs;
let rootfsPath: string;

beforeAll(async () => {
  reg = await startRegistry();
}, 60_000);
afterAll(async () => {
  await reg?.close();
});
beforeEach(async () => {
  t = await makeTestDirs();
  rootfsPath = await writeRootfs(t.rootfs, "r1");
});
afterEach(async () => {
  await t.cleanup();
});

function client(registry: TestRegistry, opts: Partial<ConstructorParameters<typeof RegistryClient>[0]> = {}) {
  // the test token server is plain HTTP: listing the registry allows it to take credentials
  return new RegistryClient({
    registry: registry.host,
    repository: "library/busybox",
    insecureRegistries: [registry.host],
    ...opts,
  });
}

/** Publishes a snapshot of 8 MiB whose memory has a few non-zero pages. */
async function bake(store: SnapshotStore, fingerprint: string) {
  return store.publish({ ref: REF, fingerprint }, async (tmp) => {
    const d = draft(rootfsPath);
    await writeEngineFiles(tmp, d.memoryMib);
    const fh = await open(join(tmp, "memory.bin"), "r+");
    for (const page of [0, 5, 1000, 2047]) await fh.write(randomBytes(4096), 0, 4096, page * 4096);
    await fh.write(Buffer.alloc(4096, 7), 0, 4096, 300 * 4096);
    await fh.close();
    return d;
  });
}

describe("snapshot artifacts in a real registry", () => {
  it("push, then pull into another store: the same files, zero pages not moved", async () => {
    const a = new SnapshotStore({ dir: join(t.root, "host-a") });
    const b = new SnapshotStore({ dir: join(t.root, "host-b") });
    const snap = await bake(a, fp("c1"));
    await using push = client(reg, { push: true });
    const pushed = await a.push(snap.name, push);
    expect(pushed.tag).toBe(snapshotTag(fp("c1")));
    expect(pushed.totalPages).toBe(2048);
    expect(pushed.presentPages).toBe(5);
    // 4 random pages do not compress; the 2043 zero pages are not sent at all
    expect(pushed.artifactBytes).toBeLessThan(6 * 4096 + 16 * 1024);

    await using pull = client(reg);
    expect(await findSnapshotArtifact(pull, fp("c2"))).toBeUndefined();
    const artifact = await findSnapshotArtifact(pull, fp("c1"));
    expect(artifact?.metadata.fingerprint).toBe(fp("c1"));
    expect(artifact?.manifestDigest).toBe(pushed.manifestDigest);
    const got = await b.pull({ ref: REF, fingerprint: fp("c1") }, pull, artifact!, {
      expectedAssets: ASSETS,
    });
    expect(got.built).toBe(true);
    for (const f of ["memory.bin", "restore.snap", "machine.json"]) {
      expect((await readFile(join(got.dir, f))).equals(await readFile(join(snap.dir, f))), f).toBe(true);
    }
    expect(got.metadata).toEqual({ ...snap.metadata, createdAt: got.metadata.createdAt });
    expect(got.metadata.createdAt).toBe(snap.metadata.createdAt);
    // pushing again sends no blob twice and gives the same manifest
    expect((await a.push(snap.name, push)).manifestDigest).toBe(pushed.manifestDigest);
    // pulling what is already there is a no-op
    expect((await b.pull({ ref: REF, fingerprint: fp("c1") }, pull, artifact!)).built).toBe(false);
  });

  it("a tampered blob fails with a digest error and nothing is kept", async () => {
    const a = new SnapshotStore({ dir: join(t.root, "host-a") });
    const b = new SnapshotStore({ dir: join(t.root, "host-b") });
    const snap = await bake(a, fp("d1"));
    await using push = client(reg, { push: true });
    await a.push(snap.name, push);
    await using pull = client(reg);
    const artifact = (await findSnapshotArtifact(pull, fp("d1")))!;
    for (const layer of ["pages", "state", "pageMap"] as const) {
      const path = reg.blobPath(artifact.manifest[layer].digest);
      const original = await readFile(path);
      const bad = Buffer.from(original);
      bad[bad.length - 1] = (bad[bad.length - 1] ?? 0) ^ 0xff;
      await writeFile(path, bad);
      const err = await b.pull({ ref: REF, fingerprint: fp("d1") }, pull, artifact).catch((e: unknown) => e);
      expect((err as { code?: string }).code, layer).toBe("SNAPSHOT_DIGEST_MISMATCH");
      expect(await readdir(b.dir).catch(() => [])).toEqual([]);
      // a longer blob is cut off at its descriptor's size
      await writeFile(path, Buffer.concat([original, Buffer.from("more")]));
      const err2 = await b.pull({ ref: REF, fingerprint: fp("d1") }, pull, artifact).catch((e: unknown) => e);
      expect((err2 as { code?: string }).code, layer).toBe("SNAPSHOT_DIGEST_MISMATCH");
      expect(await readdir(b.dir).catch(() => [])).toEqual([]);
      await writeFile(path, original);
    }
    // the metadata (config) blob is checked before anything is written
    const cfg = reg.blobPath(artifact.manifest.config.digest);
    const text = await readFile(cfg, "utf8");
    await writeFile(cfg, text.replace('"memoryMib": 8', '"memoryMib": 9'));
    const err = await findSnapshotArtifact(pull, fp("d1")).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe("SNAPSHOT_DIGEST_MISMATCH");
    await writeFile(cfg, text);
    expect((await b.pull({ ref: REF, fingerprint: fp("d1") }, pull, artifact)).built).toBe(true);
  });

  it("pushes with the pull credentials, asking the token server for push access", async () => {
    const creds = { user: "fleet", password: "s3cret" };
    await using secured = await startRegistry({ tokenAuth: creds });
    const a = new SnapshotStore({ dir: join(t.root, "host-a") });
    const snap = await bake(a, fp("e1"));
    const auth = { username: creds.user, password: creds.password };
    await using anonymous = client(secured, { push: true, auth: { username: "x", password: "wrong" } });
    const denied = await a.push(snap.name, anonymous).catch((e: unknown) => e);
    expect((denied as { code?: string }).code).toBe("OCI_UNAUTHORIZED");
    await using push = client(secured, { push: true, auth });
    await a.push(snap.name, push);
    expect(secured.tokensIssued().some((tok) => tok.scopes.some((s) => /:pull,push$/.test(s)))).toBe(true);
    await using pull = client(secured, { auth });
    expect((await findSnapshotArtifact(pull, fp("e1")))?.metadata.fingerprint).toBe(fp("e1"));
  });
});
