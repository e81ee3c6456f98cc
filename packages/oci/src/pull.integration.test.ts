import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRegistry, type TestRegistry } from "../../../test-support/registry.js";
import { ensureTestImages } from "../../../test-support/test-images.js";
import { BlobCache } from "./blob-cache.js";
import { buildRootfs, pullImage } from "./index.js";
import type { PullProgress } from "./pulled-image.js";
import { catFile, checkImage, listDir, statPath } from "./rootfs-reader.test-util.js";

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const work = mkdtempSync(join(tmpdir(), "oci-it-"));
let n = 0;
const freshCache = () => join(work, `cache-${n++}`);
let images: ReturnType<typeof ensureTestImages>;

function layoutLayerDigests(layout: string): string[] {
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
  const blob = (d: string) => JSON.parse(readFileSync(join(layout, "blobs", "sha256", d.slice(7)), "utf8"));
  const m = blob(index.manifests[0].digest);
  return m.layers.map((l: { digest: string }) => l.digest);
}

beforeAll(() => {
  images = ensureTestImages();
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("registry without auth", () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startRegistry();
    await reg.pushLayout(images.busybox, "test/busybox:latest");
    await reg.pushLayout(images.multilayer, "test/multilayer:v1");
    await reg.pushLayout(images.multiarch, "test/multiarch:latest");
    await reg.pushLayout(images.debian!, "test/debian:bookworm");
  });
  afterAll(async () => reg?.close());

  it("pulls busybox and builds a squashfs root fs keeping owners and modes", async () => {
    const events: PullProgress[] = [];
    const cacheDir = freshCache();
    const img = await pullImage(`${reg.host}/test/busybox`, { cacheDir, onProgress: (e) => events.push(e) });
    expect(img.reference).toBe(`${reg.host}/test/busybox:latest`);
    expect(img.config.cmd).toEqual(["/bin/sh"]);
    expect(img.platform).toMatchObject({ os: "linux", architecture: "amd64" });
    expect(img.layers).toHaveLength(1);
    const layer = img.layers[0]!;
    expect(events.at(-1)).toMatchObject({
      digest: layer.digest,
      bytesDone: layer.size,
      bytesTotal: layer.size,
      status: "done",
    });
    const fs = await buildRootfs(img);
    expect(fs.reused).toBe(false);
    expect(fs.format).toBe("squashfs");
    expect(fs.path).toMatch(/\/rootfs\/[0-9a-f]{64}\.img$/);
    expect(fs.path.startsWith(join(cacheDir, "rootfs"))).toBe(true);
    expect(statPath(fs.path, "/bin/busybox")).toMatchObject({ type: "regular", mode: 0o755, uid: 0 });
    expect(statPath(fs.path, "/bin/sh")?.type).toBe("symlink");
    expect(statPath(fs.path, "/tmp")).toMatchObject({ mode: 0o1777 });
    expect(statPath(fs.path, "/home/www")).toMatchObject({ uid: 1000, gid: 1000 });
    expect(catFile(fs.path, "/etc/passwd")).toMatch(/^www:x:1000:1000:/m);
    // the sha256 of its bytes is computed once and kept in the <hex>.json record
    const sha = createHash("sha256").update(readFileSync(fs.path)).digest("hex");
    expect(fs.sha256).toBe(sha);
    const again = await buildRootfs(img);
    expect(again).toMatchObject({ path: fs.path, digest: fs.digest, reused: true, sha256: sha });
    const record = fs.path.replace(/\.img$/, ".json");
    expect(JSON.parse(readFileSync(record, "utf8"))).toMatchObject({ sha256: sha, size: fs.sizeBytes });
    // a record without it (an older build) gets it computed again
    const { sha256: _dropped, ...older } = JSON.parse(readFileSync(record, "utf8"));
    writeFileSync(record, JSON.stringify(older));
    expect((await buildRootfs(img)).sha256).toBe(sha);
  });

  it("applies whiteouts, opaque dirs, hardlinks across layers, devices, xattrs and long names", async () => {
    const img = await pullImage(`${reg.host}/test/multilayer:v1`, { cacheDir: freshCache() });
    // skopeo keeps the zstd layer but gzips the uncompressed one on push (the oci: test below reads it plain).
    expect(img.layers.map((l) => l.mediaType)).toEqual([
      "application/vnd.oci.image.layer.v1.tar+gzip",
      "application/vnd.oci.image.layer.v1.tar+zstd",
      "application/vnd.oci.image.layer.v1.tar+gzip",
    ]);
    expect(img.config).toMatchObject({
      entrypoint: ["/bin/app"],
      cmd: ["--serve"],
      env: ["PATH=/usr/bin:/bin", "APP_MODE=test"],
      workingDir: "/srv",
      user: "www",
      exposedPorts: ["8080/tcp"],
      stopSignal: "SIGINT",
      labels: { "org.example.name": "multilayer" },
    });
    const { path } = await buildRootfs(img);
    expect(listDir(path, "/data")).toEqual(["keep.txt"]);
    expect(listDir(path, "/opq")).toEqual(["new"]);
    expect(statPath(path, "/opq")?.mode).toBe(0o755);
    expect(listDir(path, "/etc/app").sort()).toEqual(["a.conf", "c-link.conf", "c.conf"]);
    expect(catFile(path, "/etc/app/a.conf")).toBe("a=2\n");
    const orig = statPath(path, "/shared/original")!;
    const link = statPath(path, "/shared/link-to-original")!;
    expect(link.inode).toBe(orig.inode);
    expect(orig).toMatchObject({ links: 2, mode: 0o640, uid: 1000, gid: 1000 });
    expect(statPath(path, "/etc/app/c-link.conf")?.inode).toBe(statPath(path, "/etc/app/c.conf")?.inode);
    expect(statPath(path, "/lib")?.type).toBe("symlink");
    expect(catFile(path, "/usr/lib/libfoo.so")).toBe("ELF?\n");
    expect(statPath(path, "/dev/null")).toMatchObject({
      type: "character special",
      mode: 0o666,
      device: [1, 3],
    });
    expect(statPath(path, "/dev/sda")).toMatchObject({ type: "block special", gid: 6, device: [8, 0] });
    expect(statPath(path, "/dev/pipe")?.type).toBe("FIFO");
    expect(statPath(path, "/bin/su")?.mode).toBe(0o4755);
    expect(statPath(path, "/bin/ping")?.raw).toMatch(/security\.capability \(20\) = 01 00 00 02 00 04 00 00/);
    expect(statPath(path, "/home/www")).toMatchObject({ mode: 0o700, uid: 1000 });
    const longDir = `/deep/${"d".repeat(60)}/${"e".repeat(60)}`;
    expect(listDir(path, longDir)).toEqual([`${"f".repeat(90)}.txt`]);
    expect(catFile(path, `/gnu/${"g".repeat(120)}/${"h".repeat(110)}`)).toBe("long name via GNU\n");
  });

  it("selects the platform from a multi-arch index", async () => {
    const cacheDir = freshCache();
    const amd = await pullImage(`${reg.host}/test/multiarch`, { cacheDir });
    expect(amd.platform).toMatchObject({ architecture: "amd64" });
    expect(amd.indexDigest).toMatch(/^sha256:/);
    expect(catFile((await buildRootfs(amd)).path, "/etc/arch")).toBe("amd64\n");
    const arm = await pullImage(`${reg.host}/test/multiarch`, {
      cacheDir,
      platform: { os: "linux", architecture: "arm64" },
    });
    expect(arm.platform).toMatchObject({ architecture: "arm64", variant: "v8" });
    expect(arm.layers[0]!.digest).toBe(amd.layers[0]!.digest);
    expect(catFile((await buildRootfs(arm)).path, "/etc/arch")).toBe("arm64/v8\n");
    const v7 = await pullImage(`${reg.host}/test/multiarch`, {
      cacheDir,
      platform: { os: "linux", architecture: "arm", variant: "v7" },
    });
    expect(v7.config.variant).toBe("v7");
    await expect(
      pullImage(`${reg.host}/test/multiarch`, {
        cacheDir,
        platform: { os: "linux", architecture: "riscv64" },
      }),
    ).rejects.toMatchObject({ code: "OCI_NO_MATCHING_PLATFORM" });
    // Pinned by digest (the platform manifest itself).
    const pinned = await pullImage(`${reg.host}/test/multiarch@${amd.manifestDigest}`, {
      cacheDir: freshCache(),
    });
    expect(pinned.manifestDigest).toBe(amd.manifestDigest);
  });

  it("reports unknown tags and repositories", async () => {
    await expect(
      pullImage(`${reg.host}/test/busybox:nope`, { cacheDir: freshCache() }),
    ).rejects.toMatchObject({
      code: "OCI_MANIFEST_UNKNOWN",
    });
    await expect(pullImage(`${reg.host}/no/such`, { cacheDir: freshCache() })).rejects.toMatchObject({
      code: "OCI_MANIFEST_UNKNOWN",
    });
  });

  it.each(["squashfs", "ext4"] as const)(
    "pulls the debian image (100+ MB) into a %s root fs",
    async (format) => {
      const img = await pullImage(`${reg.host}/test/debian:bookworm`, { cacheDir: freshCache() });
      expect(img.config.cmd).toEqual(["/bin/bash"]);
      const fs = await buildRootfs(img, { format });
      expect(fs.format).toBe(format);
      expect(fs.sizeBytes).toBeGreaterThan(100 * 1024 * 1024);
      expect(catFile(fs.path, "/etc/debian_version")).toMatch(/^12\./);
      expect(statPath(fs.path, "/usr/bin/bash")).toMatchObject({ type: "regular", mode: 0o755 });
      expect(statPath(fs.path, "/bin")?.type).toBe("symlink");
      expect(statPath(fs.path, "/etc/shadow")).toMatchObject({ mode: 0o640, gid: 42 });
      expect(checkImage(fs.path)).toMatch(/files|entries/);
    },
  );

  it("two processes pulling and building the same image at once: one builds, the other waits, one result", async () => {
    // dist/ is built by the integration project's setup (test-support/integration-setup.ts)
    const cacheDir = freshCache();
    const release = join(work, `release-${n}`);
    const script = join(work, "pull-child.mjs");
    // Each child reports progress as JSON lines; the one building holds the root fs
    // (and its lock) at its first step until the test releases it, which the test
    // only does once the other is seen waiting for that lock. Sequential runs, or
    // a missing lock, never meet that barrier.
    writeFileSync(
      script,
      `import { existsSync, writeSync } from "node:fs";
import { pullImage, buildRootfs } from ${JSON.stringify(join(pkgDir, "dist", "index.js"))};
const say = (o) => writeSync(1, JSON.stringify(o) + "\\n");
const img = await pullImage(process.argv[2], { cacheDir: process.argv[3] });
let held = false;
const fs = await buildRootfs(img, {
  onProgress: (m) => {
    say({ progress: m });
    if (held || !m.startsWith("decompressing")) return;
    held = true;
    const nap = new Int32Array(new SharedArrayBuffer(4));
    for (const deadline = Date.now() + 240_000; !existsSync(process.argv[4]); Atomics.wait(nap, 0, 0, 20))
      if (Date.now() > deadline) throw new Error("no release");
  },
});
say({ done: { manifest: img.manifestDigest, path: fs.path, digest: fs.digest, reused: fs.reused } });`,
    );
    const ref = `${reg.host}/test/debian:bookworm`;
    const kids = [1, 2].map(() => {
      const proc = spawn(process.execPath, [script, ref, cacheDir, release], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      const lines: Array<{ progress?: string; done?: Record<string, unknown> }> = [];
      let buf = "";
      let err = "";
      proc.stdout.on("data", (d) => {
        buf += d;
        for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
          lines.push(JSON.parse(buf.slice(0, nl)));
          buf = buf.slice(nl + 1);
        }
      });
      proc.stderr.on("data", (d) => {
        err += d;
      });
      const exited = new Promise<number | null>((r) => proc.once("exit", r));
      return { proc, lines, err: () => err, exited };
    });
    const saw = (k: (typeof kids)[number], prefix: string) =>
      k.lines.some((l) => l.progress?.startsWith(prefix));
    try {
      const [k0, k1] = kids as [(typeof kids)[0], (typeof kids)[0]];
      const deadline = Date.now() + 240_000;
      while (
        !(saw(k0, "decompressing") && saw(k1, "waiting for another process")) &&
        !(saw(k1, "decompressing") && saw(k0, "waiting for another process"))
      ) {
        if (Date.now() > deadline || kids.some((k) => k.proc.exitCode !== null))
          throw new Error(`no overlap: ${JSON.stringify(kids.map((k) => [k.lines, k.err()]))}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      writeFileSync(release, "");
      expect(await Promise.all(kids.map((k) => k.exited))).toEqual([0, 0]);
    } finally {
      for (const k of kids) if (k.proc.exitCode === null) k.proc.kill("SIGKILL");
    }
    type Done = { manifest: string; path: string; digest: string; reused: boolean };
    const [ra, rb] = kids.map((k) => k.lines.at(-1)?.done) as [Done, Done];
    // the waiter found the builder's image: built once
    expect([
      saw(kids[0]!, "waiting for another process"),
      saw(kids[1]!, "waiting for another process"),
    ]).toEqual([ra.reused, rb.reused]);
    expect(ra.manifest).toBe(rb.manifest);
    expect(ra.path).toBe(rb.path);
    expect([ra.reused, rb.reused].sort()).toEqual([false, true]);
    expect(readdirSync(join(cacheDir, "rootfs")).filter((f) => f.endsWith(".img"))).toHaveLength(1);
    expect(readdirSync(join(cacheDir, "tmp"))).toEqual([]);
    expect(checkImage(ra.path)).toMatch(/files|entries/);
  });
});

describe("pull policy and cache", () => {
  it("never / missing / always", async () => {
    const reg = await startRegistry();
    const ref = await reg.pushLayout(images.busybox, "policy/busybox:1");
    const cacheDir = freshCache();
    await expect(pullImage(ref, { cacheDir, pullPolicy: "never" })).rejects.toMatchObject({
      code: "OCI_PULL_POLICY",
    });
    const first = await pullImage(ref, { cacheDir });
    await reg.close();
    // The registry is gone: "missing" and "never" are served from the cache, "always" must ask the registry.
    const events: PullProgress[] = [];
    const cached = await pullImage(ref, { cacheDir, onProgress: (e) => events.push(e) });
    expect(cached.manifestDigest).toBe(first.manifestDigest);
    expect(events.map((e) => e.status)).toEqual(["cached"]);
    expect((await pullImage(ref, { cacheDir, pullPolicy: "never" })).configDigest).toBe(first.configDigest);
    await expect(pullImage(ref, { cacheDir, pullPolicy: "always" })).rejects.toMatchObject({
      code: "OCI_NETWORK",
    });
    await expect(pullImage(ref, { cacheDir, pullPolicy: "sometimes" as "always" })).rejects.toMatchObject({
      code: "OCI_PULL_POLICY",
    });
  });

  it("a tampered blob in the registry fails with a digest error and nothing is cached", async () => {
    const reg = await startRegistry();
    try {
      const ref = await reg.pushLayout(images.busybox, "tamper/busybox:latest");
      const [layer] = layoutLayerDigests(images.busybox);
      const blobFile = reg.blobPath(layer!);
      const bytes = readFileSync(blobFile);
      const mid = Math.floor(bytes.length / 2);
      bytes[mid] = bytes[mid]! ^ 0x55;
      writeFileSync(blobFile, bytes);
      const cacheDir = freshCache();
      await expect(pullImage(ref, { cacheDir })).rejects.toMatchObject({ code: "OCI_DIGEST_MISMATCH" });
      const cache = new BlobCache(cacheDir);
      expect(await cache.has(layer!)).toBe(false);
      expect(readdirSync(join(cacheDir, "tmp"))).toEqual([]);
      expect(existsSync(join(cacheDir, "refs"))).toBe(false);
      // A later pull (policy missing) still does not find a usable image.
      await expect(pullImage(ref, { cacheDir, pullPolicy: "never" })).rejects.toMatchObject({
        code: "OCI_PULL_POLICY",
      });
    } finally {
      await reg.close();
    }
  });
});

describe("blobs corrupted in the cache", () => {
  /** A tar whose second header block has a bad checksum (what the tar listing rejects). */
  function brokenTar(): Buffer {
    const h = Buffer.alloc(512);
    h.write("f", 0);
    h.write("0000644\0", 100, "latin1");
    h.write("00000000000\0", 124, "latin1");
    h.write("0", 156, "latin1");
    h.write("ustar\x0000", 257, "latin1");
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
    const bad = Buffer.from(h);
    bad[0] = 0x67; // "g": the stored checksum no longer matches
    return Buffer.concat([h, bad, Buffer.alloc(1024)]);
  }

  it.each([
    [
      "flipped bytes (does not decompress)",
      (b: Buffer) => {
        const c = Buffer.from(b);
        for (let i = 100; i < c.length; i += 997) c[i] = c[i]! ^ 0x5a;
        return c;
      },
    ],
    ["a valid gzip of a tar with a corrupt header", () => gzipSync(brokenTar())],
  ])(
    "fail buildRootfs with OCI_DIGEST_MISMATCH (%s), are dropped, and leave nothing behind",
    async (_what, corrupt) => {
      const cacheDir = freshCache();
      const img = await pullImage(`oci:${images.busybox}`, { cacheDir });
      const cache = new BlobCache(cacheDir);
      const layer = img.layers[0]!.digest;
      writeFileSync(cache.path(layer), corrupt(readFileSync(cache.path(layer))));
      await expect(buildRootfs(img)).rejects.toMatchObject({ code: "OCI_DIGEST_MISMATCH" });
      expect(await cache.has(layer)).toBe(false);
      expect(readdirSync(join(cacheDir, "tmp"))).toEqual([]);
      expect(readdirSync(join(cacheDir, "rootfs")).filter((f) => !f.endsWith(".lock"))).toEqual([]);
    },
  );
});

describe("layer memory", () => {
  it("builds the same bytes with the layers in memory, in temp files, or partly each", async () => {
    const shas: string[] = [];
    // multilayer: gzip, zstd (the zstd program) and plain layers, hardlinks across layers.
    for (const layerMemoryBytes of [undefined, 0, 15_000]) {
      const cacheDir = freshCache();
      const img = await pullImage(`oci:${images.multilayer}`, { cacheDir });
      const fs = await buildRootfs(img, { layerMemoryBytes });
      expect(fs.reused).toBe(false);
      shas.push(fs.sha256);
      expect(readdirSync(join(cacheDir, "tmp"))).toEqual([]);
    }
    expect(new Set(shas).size).toBe(1);
    // Debian: one 129 MB layer, the first 40 MiB in memory and the rest in a file.
    const debian: string[] = [];
    for (const layerMemoryBytes of [undefined, 40 * 1024 * 1024]) {
      const img = await pullImage(`oci:${images.debian!}:bookworm`, { cacheDir: freshCache() });
      debian.push((await buildRootfs(img, { layerMemoryBytes })).sha256);
    }
    expect(debian[1]).toBe(debian[0]);
    const img = await pullImage(`oci:${images.multilayer}`, { cacheDir: freshCache() });
    await expect(buildRootfs(img, { layerMemoryBytes: -1 })).rejects.toMatchObject({
      code: "OCI_INVALID_OPTIONS",
    });
  });
});

describe("registry with htpasswd auth", () => {
  let reg: TestRegistry;
  let ref: string;
  const user = { user: "alice", password: "s3cret-pw" };
  beforeAll(async () => {
    reg = await startRegistry({ htpasswd: user });
    ref = await reg.pushLayout(images.busybox, "private/busybox:latest");
  });
  afterAll(async () => reg?.close());
  const emptyConfig = () => {
    const p = join(work, `empty-config-${n++}.json`);
    writeFileSync(p, "{}");
    return p;
  };

  it("refuses without or with wrong credentials", async () => {
    await expect(
      pullImage(ref, { cacheDir: freshCache(), dockerConfigPath: emptyConfig() }),
    ).rejects.toMatchObject({
      code: "OCI_UNAUTHORIZED",
    });
    await expect(
      pullImage(ref, { cacheDir: freshCache(), auth: { username: "alice", password: "wrong" } }),
    ).rejects.toMatchObject({ code: "OCI_UNAUTHORIZED" });
  });

  it("pulls with explicit credentials", async () => {
    const img = await pullImage(ref, {
      cacheDir: freshCache(),
      auth: { username: user.user, password: user.password },
    });
    expect(img.config.cmd).toEqual(["/bin/sh"]);
  });

  it("pulls with credentials from a Docker config's auths", async () => {
    const cfg = join(work, "docker-config.json");
    const auth = Buffer.from(`${user.user}:${user.password}`).toString("base64");
    writeFileSync(cfg, JSON.stringify({ auths: { [`http://${reg.host}`]: { auth } } }));
    const img = await pullImage(ref, { cacheDir: freshCache(), dockerConfigPath: cfg });
    expect(img.layers).toHaveLength(1);
  });

  it("pulls with credentials from a docker-credential helper (credHelpers and credsStore)", async () => {
    const bin = join(work, "bin");
    execFileSync("mkdir", ["-p", bin]);
    const helper = join(bin, "docker-credential-smtest");
    writeFileSync(
      helper,
      `#!/bin/sh\nread server\n[ "$1" = get ] || exit 2\nif [ "$server" = "${reg.host}" ]; then printf '{"ServerURL":"%s","Username":"${user.user}","Secret":"${user.password}"}' "$server"; else echo "credentials not found in native keychain"; exit 1; fi\n`,
    );
    chmodSync(helper, 0o755);
    const oldPath = process.env.PATH;
    process.env.PATH = `${bin}:${oldPath}`;
    try {
      const cfg1 = join(work, "docker-config-helper.json");
      writeFileSync(cfg1, JSON.stringify({ credHelpers: { [reg.host]: "smtest" } }));
      expect((await pullImage(ref, { cacheDir: freshCache(), dockerConfigPath: cfg1 })).layers).toHaveLength(
        1,
      );
      const cfg2 = join(work, "docker-config-store.json");
      writeFileSync(cfg2, JSON.stringify({ credsStore: "smtest" }));
      expect((await pullImage(ref, { cacheDir: freshCache(), dockerConfigPath: cfg2 })).layers).toHaveLength(
        1,
      );
      const cfg3 = join(work, "docker-config-missing-helper.json");
      writeFileSync(cfg3, JSON.stringify({ credHelpers: { [reg.host]: "does-not-exist" } }));
      await expect(pullImage(ref, { cacheDir: freshCache(), dockerConfigPath: cfg3 })).rejects.toMatchObject({
        code: "OCI_CREDENTIAL_HELPER",
      });
    } finally {
      process.env.PATH = oldPath;
    }
  });
});

describe("local sources", () => {
  it("pulls from an OCI layout and from a docker-archive made by skopeo, giving the same root fs", async () => {
    const cacheDir = freshCache();
    const fromLayout = await pullImage(`oci:${images.busybox}:latest`, { cacheDir });
    expect(fromLayout.reference).toBe(`oci:${images.busybox}:latest`);
    const a = await buildRootfs(fromLayout);
    const archive = join(work, "busybox-archive.tar");
    execFileSync("skopeo", [
      "copy",
      "--quiet",
      "--insecure-policy",
      `oci:${images.busybox}:latest`,
      `docker-archive:${archive}:busybox:latest`,
    ]);
    const fromArchive = await pullImage(`docker-archive:${archive}`, { cacheDir });
    expect(fromArchive.config.cmd).toEqual(["/bin/sh"]);
    expect(fromArchive.layers.map((l) => l.diffId)).toEqual(fromLayout.layers.map((l) => l.diffId));
    const b = await buildRootfs(fromArchive);
    expect(b).toMatchObject({ digest: a.digest, path: a.path, reused: true });
    const named = await pullImage(`docker-archive:${archive}:busybox:latest`, { cacheDir });
    expect(named.configDigest).toBe(fromArchive.configDigest);
    await expect(pullImage(`docker-archive:${archive}:other:1`, { cacheDir })).rejects.toMatchObject({
      code: "OCI_MANIFEST_UNKNOWN",
    });
  });

  it("reads gzip, zstd and uncompressed layers from an OCI layout", async () => {
    const img = await pullImage(`oci:${images.multilayer}`, { cacheDir: freshCache() });
    expect(img.layers.map((l) => l.mediaType)).toEqual([
      "application/vnd.oci.image.layer.v1.tar+gzip",
      "application/vnd.oci.image.layer.v1.tar+zstd",
      "application/vnd.oci.image.layer.v1.tar",
    ]);
    const { path } = await buildRootfs(img);
    expect(listDir(path, "/opq")).toEqual(["new"]);
    expect(catFile(path, "/etc/app/c.conf")).toBe("c=3\n");
    // The encoding is reproducible: another cache builds a byte-identical image.
    const other = await buildRootfs(await pullImage(`oci:${images.multilayer}`, { cacheDir: freshCache() }));
    const sha = (f: string) => execFileSync("sha256sum", [f]).toString().split(" ")[0];
    expect(other.path).not.toBe(path);
    expect(sha(other.path)).toBe(sha(path));
  });

  it("selects platforms in a multi-arch OCI layout and reports a missing tag", async () => {
    const cacheDir = freshCache();
    const arm = await pullImage(`oci:${images.multiarch}`, {
      cacheDir,
      platform: { os: "linux", architecture: "arm64" },
    });
    expect(catFile((await buildRootfs(arm)).path, "/etc/arch")).toBe("arm64/v8\n");
    await expect(pullImage(`oci:${images.multiarch}:nope`, { cacheDir })).rejects.toMatchObject({
      code: "OCI_MANIFEST_UNKNOWN",
    });
  });
});

describe("registry with bearer token auth (token server + JWT)", () => {
  it("gets a repository-scoped token from the WWW-Authenticate realm and pulls", async () => {
    const reg = await startRegistry({ tokenAuth: { user: "bob", password: "t0ken-pw" } });
    try {
      const ref = await reg.pushLayout(images.busybox, "tok/busybox:latest");
      const before = reg.tokensIssued().length;
      // The test token server is plain HTTP: without listing the registry, no credentials go there.
      await expect(
        pullImage(ref, { cacheDir: freshCache(), auth: { username: "bob", password: "t0ken-pw" } }),
      ).rejects.toMatchObject({ code: "OCI_INSECURE_TOKEN_REALM" });
      expect(reg.tokensIssued().length).toBe(before);
      const img = await pullImage(ref, {
        cacheDir: freshCache(),
        auth: { username: "bob", password: "t0ken-pw" },
        insecureRegistries: [reg.host],
      });
      expect(img.config.cmd).toEqual(["/bin/sh"]);
      expect(reg.tokensIssued().slice(before)).toEqual([
        { scopes: ["repository:tok/busybox:pull"], service: "supermachine-test-registry" },
      ]);
      const cfg = join(work, "empty-for-token.json");
      writeFileSync(cfg, "{}");
      await expect(
        pullImage(ref, { cacheDir: freshCache(), dockerConfigPath: cfg, insecureRegistries: [reg.host] }),
      ).rejects.toMatchObject({
        code: "OCI_UNAUTHORIZED",
      });
    } finally {
      await reg.close();
    }
  });
});

describe("abort", () => {
  it("an aborted signal stops the pull with OCI_ABORTED and leaves no temp files", async () => {
    const reg = await startRegistry();
    try {
      const ref = await reg.pushLayout(images.debian!, "abort/debian:bookworm");
      const cacheDir = freshCache();
      const ac = new AbortController();
      const p = pullImage(ref, {
        cacheDir,
        signal: ac.signal,
        onProgress: (e) => {
          if (e.bytesDone > 0 && e.status === "downloading") ac.abort();
        },
      });
      await expect(p).rejects.toMatchObject({ code: "OCI_ABORTED" });
      expect(readdirSync(join(cacheDir, "tmp"))).toEqual([]);
      expect(existsSync(join(cacheDir, "refs"))).toBe(false);
    } finally {
      await reg.close();
    }
  });

  it.each([
    ["while a layer decompresses into a squashfs image", "decompressing layer", "squashfs"],
    ["while the squashfs metadata is encoded", "encoding squashfs", "squashfs"],
    ["while a layer decompresses into memory", "decompressing layer", "ext4"],
    ["while the ext4 image is encoded", "encoding ext4", "ext4"],
  ] as const)(
    "an aborted signal stops buildRootfs %s with OCI_ABORTED and leaves nothing behind",
    async (_when, at, format) => {
      const cacheDir = freshCache();
      const img = await pullImage(`oci:${images.debian!}:bookworm`, { cacheDir });
      const ac = new AbortController();
      const seen: string[] = [];
      await expect(
        buildRootfs(img, {
          format,
          signal: ac.signal,
          onProgress: (m) => {
            seen.push(m);
            if (m.startsWith(at)) ac.abort();
          },
        }),
      ).rejects.toMatchObject({ code: "OCI_ABORTED" });
      expect(seen.some((m) => m.startsWith(at))).toBe(true);
      expect(readdirSync(join(cacheDir, "tmp"))).toEqual([]);
      expect(readdirSync(join(cacheDir, "rootfs")).filter((f) => !f.endsWith(".lock"))).toEqual([]);
      // The blobs are intact: the next build succeeds.
      expect((await buildRootfs(img, { format })).reused).toBe(false);
    },
  );
});
