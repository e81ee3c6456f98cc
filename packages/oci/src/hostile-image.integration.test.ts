// Images whose layers try to escape the root file system or exhaust the
// host: `..` paths, absolute paths, writes through symlinks, hard links to
// host files, device nodes, decompression bombs, too many entries, huge
// paths and xattrs. Built from real OCI layouts (and one pushed through a
// real docker-registry) into real root fs images (squashfs by default, read back
// with rdsquashfs; ext4 with debugfs).
import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startRegistry } from "../../../test-support/registry.js";
import { buildImage, type TarIn, tarOf, writeLayout } from "./hostile.test-util.js";
import { buildRootfs, pullImage, type RootfsFormat } from "./index.js";
import type { OciLimits } from "./limits.js";
import { catFile, checkImage, listDir, statPath } from "./rootfs-reader.test-util.js";

const work = mkdtempSync(join(tmpdir(), "oci-hostile-img-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
let n = 0;

/** A host directory an image will try to write into; it must stay empty. */
function hostTarget(): string {
  const dir = join(work, `host-${n++}`);
  mkdirSync(dir);
  return dir;
}

/** Pulls an OCI layout of `layers` into a fresh cache and builds its root fs. */
async function build(
  layers: TarIn[][],
  opts: { limits?: Partial<OciLimits>; compression?: "gzip" | "zstd"; format?: RootfsFormat } = {},
) {
  const tars = await Promise.all(layers.map(tarOf));
  const id = n++;
  const image = buildImage(tars, opts.compression === "zstd" ? { gzip: false } : {});
  if (opts.compression === "zstd") {
    // Re-store each layer zstd-compressed (the descriptor keeps the plain tar's diff ID).
    const m = JSON.parse(image.manifest.toString());
    for (const [i, l] of (m.layers as { digest: string; size: number; mediaType: string }[]).entries()) {
      const z = execFileSync("zstd", ["-q", "-c", "-19"], { input: tars[i]!, maxBuffer: 1 << 30 });
      image.blobs.delete(l.digest);
      const digest = `sha256:${execFileSync("sha256sum", { input: z }).toString().split(" ")[0]}`;
      image.blobs.set(digest, z);
      Object.assign(l, { digest, size: z.length, mediaType: "application/vnd.oci.image.layer.v1.tar+zstd" });
    }
    image.manifest = Buffer.from(JSON.stringify(m));
    image.manifestDigest = `sha256:${execFileSync("sha256sum", { input: image.manifest }).toString().split(" ")[0]}`;
  }
  const layout = writeLayout(join(work, `layout-${id}`), image);
  const cacheDir = join(work, `cache-${id}`);
  const img = await pullImage(`oci:${layout}`, { cacheDir });
  const progress: string[] = [];
  const result = buildRootfs(img, {
    limits: opts.limits,
    format: opts.format,
    onProgress: (m) => progress.push(m),
  });
  result.catch(() => {}); // handled by the test, possibly later
  return { result, cacheDir, layout, progress };
}

/** Asserts the build failed and left no root fs and no work files behind. */
async function expectBuildError(b: Awaited<ReturnType<typeof build>>, match: Record<string, unknown>) {
  await expect(b.result).rejects.toMatchObject(match);
  const rootfsDir = join(b.cacheDir, "rootfs");
  expect(readdirSync(rootfsDir).filter((f) => !f.endsWith(".lock"))).toEqual([]);
  const tmp = join(b.cacheDir, "tmp");
  expect(existsSync(tmp) ? readdirSync(tmp) : []).toEqual([]);
}

describe.each(["squashfs", "ext4"] as const)(
  "hostile layer entries cannot escape the root file system (%s)",
  (format) => {
    it("`..` paths are rejected with OCI_LAYER_UNSAFE_PATH and nothing lands on the host", async () => {
      const host = hostTarget();
      const rel = join("../../../../../../../../..", host, "pwned");
      for (const name of [rel, `a/b/../../../${rel}`, "./../x"]) {
        const b = await build([[{ name, data: "owned" }]], { format });
        await expectBuildError(b, { code: "OCI_LAYER_UNSAFE_PATH" });
      }
      expect(readdirSync(host)).toEqual([]);
    });

    it("absolute paths and writes through symlinks (in the same or a lower layer) stay inside the image", async () => {
      const host = hostTarget();
      const lower: TarIn[] = [
        { name: "escape", type: "symlink", linkname: host },
        { name: "up", type: "symlink", linkname: "../../../../../../../../.." },
        { name: "escape-same", type: "symlink", linkname: host },
        { name: "escape-same/same-layer", data: "3" },
      ];
      const upper: TarIn[] = [
        { name: "escape/through-symlink", data: "1" },
        { name: `up${host}/through-dotdot-symlink`, data: "2" },
        { name: `${host}/absolute`, data: "4" },
      ];
      const b = await build(
        [lower, [...upper, { name: `/../${host.slice(1)}/absolute-dotdot`, data: "5" }]],
        {
          format,
        },
      );
      // `/../x` climbs above the root: rejected. Without it the image builds.
      await expectBuildError(b, { code: "OCI_LAYER_UNSAFE_PATH" });
      const ok = await build([lower, upper], { format });
      const fs = await ok.result;
      expect(readdirSync(host)).toEqual([]);
      expect(listDir(fs.path, host).sort()).toEqual([
        "absolute",
        "same-layer",
        "through-dotdot-symlink",
        "through-symlink",
      ]);
      expect(catFile(fs.path, `${host}/through-symlink`)).toBe("1");
      expect(catFile(fs.path, `${host}/through-dotdot-symlink`)).toBe("2");
      // The symlinks themselves are kept as symlinks (they resolve inside the guest).
      expect(statPath(fs.path, "/escape")?.type).toBe("symlink");
      expect(statPath(fs.path, "/up")?.type).toBe("symlink");
    });

    it("hard links reach only files of the image, never of the host", async () => {
      // Climbing out: rejected.
      await expectBuildError(
        await build([[{ name: "h", type: "link", linkname: "../../../../etc/passwd" }]], { format }),
        {
          code: "OCI_LAYER_UNSAFE_PATH",
        },
      );
      // An absolute target the image does not have (the host does): rejected, nothing read.
      await expectBuildError(
        await build([[{ name: "h", type: "link", linkname: "/etc/hostname" }]], { format }),
        {
          code: "OCI_LAYER_INVALID",
        },
      );
      // Through a symlink to /etc: the image's /etc/passwd, not the host's.
      const b = await build(
        [
          [
            { name: "etc", type: "directory" },
            { name: "etc/passwd", data: "image-passwd\n" },
          ],
          [
            { name: "s", type: "symlink", linkname: "/etc" },
            { name: "h-abs", type: "link", linkname: "/etc/passwd" },
            { name: "h-sym", type: "link", linkname: "s/passwd" },
          ],
        ],
        { format },
      );
      const fs = await b.result;
      const ino = statPath(fs.path, "/etc/passwd")!.inode;
      for (const p of ["/h-abs", "/h-sym"]) {
        expect(statPath(fs.path, p)?.inode).toBe(ino);
        expect(catFile(fs.path, p)).toBe("image-passwd\n");
      }
      expect(statPath(fs.path, "/etc/passwd")?.links).toBe(3);
    });

    it("device nodes and FIFOs exist only inside the image file", async () => {
      const host = hostTarget();
      const b = await build(
        [
          [
            { name: "evil-dev/mem", type: "character-device", devmajor: 1, devminor: 1, mode: 0o666 },
            { name: "evil-dev/sda", type: "block-device", devmajor: 8, devminor: 0, mode: 0o666 },
            { name: `${host}/kmsg`, type: "character-device", devmajor: 1, devminor: 11, mode: 0o666 },
            { name: "escape", type: "symlink", linkname: host },
            { name: "escape/fifo", type: "fifo" },
          ],
        ],
        { format },
      );
      const fs = await b.result;
      expect(statPath(fs.path, "/evil-dev/mem")).toMatchObject({ type: "character special", device: [1, 1] });
      expect(statPath(fs.path, "/evil-dev/sda")).toMatchObject({ type: "block special", device: [8, 0] });
      expect(statPath(fs.path, `${host}/kmsg`)).toMatchObject({ type: "character special", device: [1, 11] });
      expect(statPath(fs.path, `${host}/fifo`)?.type).toBe("FIFO");
      expect(existsSync("/evil-dev")).toBe(false);
      expect(readdirSync(host)).toEqual([]);
    });

    it("the same symlink-and-write-through image pulled from a real registry builds the same way", async () => {
      const host = hostTarget();
      const tars = await Promise.all([
        tarOf([{ name: "escape", type: "symlink", linkname: host }]),
        tarOf([{ name: "escape/through-registry", data: "r" }]),
      ]);
      const layout = writeLayout(join(work, `layout-reg-${n++}`), buildImage(tars));
      const reg = await startRegistry();
      try {
        const ref = await reg.pushLayout(layout, "hostile/escape:1");
        const img = await pullImage(ref, { cacheDir: join(work, `cache-reg-${n++}`) });
        const fs = await buildRootfs(img);
        expect(catFile(fs.path, `${host}/through-registry`)).toBe("r");
        expect(readdirSync(host)).toEqual([]);
      } finally {
        await reg.close();
      }
    });
  },
);

describe("what later layers hid stays out of the image", () => {
  it.each(["squashfs", "ext4"] as const)(
    "%s: no byte of a deleted or replaced file, nor its name, is on the disk the guest reads",
    async (format) => {
      const secret = "SECRET-7f3a9c-KEY-MATERIAL";
      const b = await build(
        [
          [
            { name: "etc/secret.pem", data: `${secret}-deleted\n`.repeat(300) },
            { name: "etc/config", data: `${secret}-replaced\n`.repeat(300) },
            { name: "gone/hidden-by-opaque", data: `${secret}-opaque` },
            { name: "etc/kept", data: "kept-data" },
          ],
          [
            { name: "etc/.wh.secret.pem", data: "" },
            { name: "etc/config", data: "public" },
            { name: "gone/.wh..wh..opq", data: "" },
          ],
        ],
        { format },
      );
      const fs = await b.result;
      expect(fs.format).toBe(format);
      expect(catFile(fs.path, "/etc/config")).toBe("public");
      expect(catFile(fs.path, "/etc/kept")).toBe("kept-data");
      expect(statPath(fs.path, "/etc/secret.pem")).toBeUndefined();
      // The raw image is what the guest's /dev/vda holds: grep all of it.
      const raw = readFileSync(fs.path);
      expect(raw.includes(secret)).toBe(false);
      expect(raw.includes("secret.pem")).toBe(false);
      expect(raw.includes("hidden-by-opaque")).toBe(false);
      expect(raw.includes("kept-data")).toBe(true);
    },
  );

  it("squashfs: a big file a later layer deleted is a hole in the image: zeros, and no disk space", async () => {
    const big = Buffer.alloc(24 * 1024 * 1024, "S");
    const b = await build([
      [
        { name: "opt/big.bin", data: big },
        { name: "opt/small", data: "small" },
      ],
      [{ name: "opt/.wh.big.bin", data: "" }],
    ]);
    const fs = await b.result;
    expect(fs.format).toBe("squashfs");
    expect(catFile(fs.path, "/opt/small")).toBe("small");
    const raw = readFileSync(fs.path);
    expect(raw.includes(Buffer.alloc(4096, "S"))).toBe(false);
    // Allocated blocks: far less than the 24 MiB the deleted file's bytes took in the layer.
    const st = statSync(fs.path);
    expect(st.size).toBeGreaterThan(24 * 1024 * 1024);
    expect(st.blocks * 512).toBeLessThan(4 * 1024 * 1024);
    expect(checkImage(fs.path)).toMatch(/entries/);
  });

  it("an image squashfs cannot hold (a system.* xattr) is built as ext4 instead, keeping it", async () => {
    // A POSIX ACL (version 2; user::rw-, group::r--, other::r--), as tar tools store it.
    const acl = String.fromCharCode(
      2,
      0,
      0,
      0,
      1,
      0,
      6,
      0,
      0,
      0,
      0,
      0,
      4,
      0,
      4,
      0,
      0,
      0,
      0,
      0,
      32,
      0,
      4,
      0,
      0,
      0,
      0,
      0,
    );
    const b = await build([[{ name: "f", data: "x", pax: { "SCHILY.xattr.system.posix_acl_access": acl } }]]);
    const fs = await b.result;
    expect(fs.format).toBe("ext4");
    expect(b.progress.some((m) => /squashfs cannot hold xattr "system\.posix_acl_access"/.test(m))).toBe(
      true,
    );
    expect(catFile(fs.path, "/f")).toBe("x");
    expect(statPath(fs.path, "/f")?.raw).toMatch(/posix_acl_access|ACL/i);
    // Same address next time: found, not built again.
    expect((await buildRootfs(await pullImage(`oci:${b.layout}`, { cacheDir: b.cacheDir }))).reused).toBe(
      true,
    );
  });
});

describe("layer limits", () => {
  it("a gzip decompression bomb stops at maxUnpackedBytes", async () => {
    const bomb: TarIn[] = [{ name: "zeros", data: Buffer.alloc(64 * 1024 * 1024) }];
    const b = await build([bomb], { limits: { maxUnpackedBytes: 8 * 1024 * 1024 } });
    const err = await b.result.catch((e: Error) => e);
    expect(err).toMatchObject({ code: "OCI_LIMIT_EXCEEDED", limit: "maxUnpackedBytes" });
    expect((err as Error).message).toMatch(
      /limits\.maxUnpackedBytes.*raise it with \{ limits: \{ maxUnpackedBytes/,
    );
    await expectBuildError(b, { code: "OCI_LIMIT_EXCEEDED" });
  });

  it("a zstd decompression bomb stops at maxUnpackedBytes and zstd is not left running", async () => {
    const bomb: TarIn[] = [{ name: "zeros", data: Buffer.alloc(64 * 1024 * 1024) }];
    const b = await build([bomb], { limits: { maxUnpackedBytes: 8 * 1024 * 1024 }, compression: "zstd" });
    await expectBuildError(b, { code: "OCI_LIMIT_EXCEEDED", limit: "maxUnpackedBytes" });
    let children = "";
    try {
      children = execFileSync("pgrep", ["-P", String(process.pid), "-x", "zstd"]).toString();
    } catch {
      // pgrep exits 1 when nothing matches
    }
    expect(children).toBe("");
  });

  it("the unpacked budget is shared by all layers of the image", async () => {
    const layer = (i: number): TarIn[] => [{ name: `f${i}`, data: Buffer.alloc(3 * 1024 * 1024, i) }];
    const limits = { maxUnpackedBytes: 8 * 1024 * 1024 };
    await (await build([layer(1), layer(2)], { limits })).result;
    await expectBuildError(await build([layer(1), layer(2), layer(3)], { limits }), {
      code: "OCI_LIMIT_EXCEEDED",
      limit: "maxUnpackedBytes",
    });
  });

  it("too many entries over all layers: maxEntries; raising it lets the image through", async () => {
    const many = (p: string): TarIn[] =>
      Array.from({ length: 30 }, (_, i) => ({ name: `${p}${i}`, data: "" }));
    const b = await build([many("a"), many("b")], { limits: { maxEntries: 50 } });
    await expectBuildError(b, { code: "OCI_LIMIT_EXCEEDED", limit: "maxEntries", details: { max: 50 } });
    const fs = await (await build([many("a"), many("b")], { limits: { maxEntries: 60 } })).result;
    expect(listDir(fs.path, "/").filter((f) => /^[ab]\d+$/.test(f))).toHaveLength(60);
  });

  it("implied parent directories count against maxEntries", async () => {
    const deep = Array.from({ length: 40 }, (_, i) => `d${i}`).join("/");
    await expectBuildError(
      await build([[{ name: `${deep}/f`, data: "x" }]], { limits: { maxEntries: 20 } }),
      {
        code: "OCI_LIMIT_EXCEEDED",
        limit: "maxEntries",
      },
    );
  });

  it("long paths and link targets: maxPathBytes; names over 255 bytes: OCI_LAYER_INVALID", async () => {
    // 4019 bytes: within the default.
    const long = Array.from({ length: 20 }, () => "p".repeat(200)).join("/");
    const fs = await (await build([[{ name: long, data: "deep" }]])).result;
    expect(catFile(fs.path, `/${long}`)).toBe("deep");
    const tooLong = Array.from({ length: 30 }, () => "q".repeat(200)).join("/");
    await expectBuildError(await build([[{ name: tooLong, data: "x" }]]), {
      code: "OCI_LIMIT_EXCEEDED",
      limit: "maxPathBytes",
    });
    await expectBuildError(await build([[{ name: "l", type: "symlink", linkname: "t/".repeat(3000) }]]), {
      code: "OCI_LIMIT_EXCEEDED",
      limit: "maxPathBytes",
    });
    await expectBuildError(await build([[{ name: "n".repeat(300), data: "x" }]]), {
      code: "OCI_LAYER_INVALID",
    });
  });

  it("xattrs: maxXattrs per entry and maxXattrBytes per entry", async () => {
    const pax = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`SCHILY.xattr.user.k${i}`, "v"]));
    await expectBuildError(await build([[{ name: "f", data: "x", pax }]], { limits: { maxXattrs: 5 } }), {
      code: "OCI_LIMIT_EXCEEDED",
      limit: "maxXattrs",
    });
    const big = { "SCHILY.xattr.user.big": "v".repeat(100 * 1024) };
    await expectBuildError(await build([[{ name: "f", data: "x", pax: big }]]), {
      code: "OCI_LIMIT_EXCEEDED",
      limit: "maxXattrBytes",
    });
    // Within the defaults the entry builds (mke2fs keeps security.capability; it drops user.* from tars).
    const capability = String.fromCharCode(1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const withCap = { ...pax, "SCHILY.xattr.security.capability": capability };
    const fs = await (await build([[{ name: "f", data: "x", pax: withCap }]])).result;
    expect(statPath(fs.path, "/f")?.raw).toMatch(/security\.capability \(20\)/);
  });
});

describe("symlink chains", () => {
  // Each link's target is 1500 no-op components: a few hops make one lookup cost thousands of steps.
  const chain = (links: number): TarIn[] => [
    ...Array.from({ length: links }, (_, i) => ({
      name: `l${i}`,
      type: "symlink" as const,
      linkname: `${"./".repeat(1500)}l${i + 1}`,
    })),
    { name: `l${links}`, type: "directory" as const },
  ];

  it("a lookup that takes too many steps through symlinks is cut off with OCI_LAYER_UNSAFE_PATH", async () => {
    const fs = await (await build([chain(2), [{ name: "l0/x", data: "x" }]])).result;
    expect(catFile(fs.path, "/l2/x")).toBe("x");
    const b = await build([chain(3), [{ name: "l0/x", data: "x" }]]);
    await expect(b.result).rejects.toThrow(/more than 4096 steps/);
    await expectBuildError(b, { code: "OCI_LAYER_UNSAFE_PATH" });
  });

  it("symlink loops are cut off with OCI_LAYER_UNSAFE_PATH", async () => {
    const b = await build([
      [
        { name: "a", type: "symlink", linkname: "b" },
        { name: "b", type: "symlink", linkname: "/a" },
      ],
      [{ name: "a/x", data: "x" }],
    ]);
    await expect(b.result).rejects.toThrow(/too many levels of symbolic links/);
    await expectBuildError(b, { code: "OCI_LAYER_UNSAFE_PATH" });
  });
});

describe("hostile local layouts", () => {
  const layoutOf = async () => {
    const image = buildImage([await tarOf([{ name: "f", data: "x" }])]);
    return { image, dir: writeLayout(join(work, `layout-local-${n++}`), image) };
  };
  const blob = (dir: string, digest: string) => join(dir, "blobs", "sha256", digest.slice(7));

  it("blobs and index files that are FIFOs or devices are refused instead of read forever", async () => {
    for (const which of ["index", "manifest", "layer"] as const) {
      const { image, dir } = await layoutOf();
      const target =
        which === "index"
          ? join(dir, "index.json")
          : blob(dir, which === "manifest" ? image.manifestDigest : image.layerDigests[0]!);
      unlinkSync(target);
      if (which === "manifest") symlinkSync("/dev/zero", target);
      else execFileSync("mkfifo", [target]);
      await expect(pullImage(`oci:${dir}`, { cacheDir: join(work, `cache-${n++}`) })).rejects.toMatchObject({
        code: "OCI_INVALID_IMAGE",
      });
    }
  });

  it("an oversized index.json stops at maxManifestBytes", async () => {
    const { dir } = await layoutOf();
    writeFileSync(join(dir, "index.json"), Buffer.alloc(5 * 1024 * 1024, " "));
    await expect(pullImage(`oci:${dir}`, { cacheDir: join(work, `cache-${n++}`) })).rejects.toMatchObject({
      code: "OCI_LIMIT_EXCEEDED",
      limit: "maxManifestBytes",
    });
  });
});
