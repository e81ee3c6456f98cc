import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tarStream from "tar-stream";
import { afterAll, describe, expect, it } from "vitest";
import { bufferSource } from "./byte-source.js";
import { MergedTree } from "./layer-merge.js";
import { encodeSquashfs, squashfsUnsupported, unusedRanges } from "./squashfs-encoder.js";
import { type TarIn, tarOf } from "./tar-fixture.test-util.js";
import { readTarEntries, type TarEntry } from "./tar-reader.js";

const work = mkdtempSync(join(tmpdir(), "sqfs-test-"));
afterAll(() => (process.env.KEEP_SQFS ? console.log(work) : rmSync(work, { recursive: true, force: true })));

/** Writes the layers' tars in place after a 4 KiB gap, then the metadata and superblock, as buildRootfs does. */
async function imageOf(layers: TarIn[][], name = "img.sqfs"): Promise<{ path: string; tree: MergedTree }> {
  const tars = await Promise.all(layers.map((l) => tarOf(l)));
  const tree = new MergedTree();
  const layerBase: number[] = [];
  let at = 4096;
  for (let i = 0; i < tars.length; i++) {
    const entries: TarEntry[] = [];
    for await (const e of readTarEntries(bufferSource(tars[i]!))) entries.push(e);
    tree.applyLayer(i, entries);
    layerBase.push(at);
    at += tars[i]!.length;
  }
  expect(squashfsUnsupported(tree)).toBeUndefined();
  const enc = encodeSquashfs(tree, { layerBase, metadataStart: at });
  const file = Buffer.alloc(enc.fileSize);
  enc.superblock.copy(file, 0);
  for (const [i, t] of tars.entries()) t.copy(file, layerBase[i]);
  let p = at;
  for (const m of enc.metadata) {
    m.copy(file, p);
    p += m.length;
  }
  expect(p).toBe(enc.bytesUsed);
  const path = join(work, name);
  writeFileSync(path, file);
  return { path, tree };
}

interface Seen {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  data?: string;
  linkname?: string;
  pax?: Record<string, string>;
  devmajor?: number;
  devminor?: number;
}

/** The image read back by squashfs-tools-ng's sqfs2tar (an independent reader), by path. */
async function readBack(path: string): Promise<Map<string, Seen>> {
  const tar = execFileSync("sqfs2tar", ["--no-skip", path], { maxBuffer: 1 << 30 });
  const ex = tarStream.extract();
  const out = new Map<string, Seen>();
  const done = new Promise<void>((resolve, reject) => {
    ex.on("entry", (h, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on("data", (c) => chunks.push(c as Buffer));
      stream.on("end", () => {
        const name = h.name.replace(/\/$/, "");
        const pax = h.pax as Record<string, string> | undefined;
        out.set(name, {
          type: h.type!,
          mode: h.mode! & 0o7777,
          uid: h.uid!,
          gid: h.gid!,
          ...(h.type === "file" ? { data: Buffer.concat(chunks).toString() } : {}),
          ...(h.linkname ? { linkname: h.linkname } : {}),
          ...(pax && Object.keys(pax).some((k) => k.includes("xattr")) ? { pax } : {}),
          ...(h.type === "character-device" || h.type === "block-device"
            ? { devmajor: h.devmajor!, devminor: h.devminor! }
            : {}),
        });
        next();
      });
      stream.on("error", reject);
    });
    ex.on("finish", resolve);
    ex.on("error", reject);
  });
  ex.end(tar);
  await done;
  return out;
}

describe("encodeSquashfs", () => {
  it("writes an image another reader lists with owners, modes, data, links, devices and xattrs", async () => {
    const big = Buffer.alloc(300 * 1024 + 17);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    const { path } = await imageOf([
      [
        { name: "etc", type: "directory", mode: 0o755 },
        { name: "etc/passwd", data: "root:x:0:0\n", mode: 0o644 },
        { name: "bin/tool", data: big, mode: 0o4755, uid: 0, gid: 50 },
        { name: "bin/alias", type: "link", linkname: "bin/tool" },
        { name: "bin/sh", type: "symlink", linkname: "busybox" },
        { name: "dev/null", type: "character-device", devmajor: 1, devminor: 3, mode: 0o666 },
        { name: "dev/loop0", type: "block-device", devmajor: 7, devminor: 300, mode: 0o660 },
        { name: "run/fifo", type: "fifo", mode: 0o600 },
        { name: "home/user/empty", data: "", mode: 0o600, uid: 1000, gid: 1000 },
        {
          name: "usr/bin/ping",
          data: "ping",
          mode: 0o755,
          pax: { "SCHILY.xattr.security.capability": "\u0001\u0000\u0000\u0002" },
        },
        { name: "tmp", type: "directory", mode: 0o1777 },
      ],
      [
        { name: "etc/.wh.passwd", data: "" },
        { name: "etc/hostname", data: "box\n" },
      ],
    ]);
    const seen = await readBack(path);
    expect(seen.get("etc/passwd")).toBeUndefined();
    expect(seen.get("etc/hostname")).toMatchObject({ type: "file", data: "box\n", mode: 0o644 });
    // Two names of one inode: sqfs2tar writes the first in its order as the file, the other as a link to it.
    const names = ["bin/alias", "bin/tool"].map((n) => seen.get(n)!);
    expect(names.map((n) => n.type)).toEqual(["file", "link"]);
    expect(names[0]).toMatchObject({ mode: 0o4755, gid: 50 });
    expect(names[1]!.linkname).toBe("bin/alias");
    const tool = execFileSync("rdsquashfs", ["-c", "/bin/tool", path], { maxBuffer: 1 << 30 });
    expect(tool.equals(big)).toBe(true);
    expect(execFileSync("rdsquashfs", ["-s", "/bin/alias", path]).toString()).toMatch(/Hard link count: 2/);
    expect(seen.get("bin/sh")).toMatchObject({ type: "symlink", linkname: "busybox" });
    expect(seen.get("dev/null")).toMatchObject({
      type: "character-device",
      devmajor: 1,
      devminor: 3,
      mode: 0o666,
    });
    expect(seen.get("dev/loop0")).toMatchObject({ type: "block-device", devmajor: 7, devminor: 300 });
    expect(seen.get("run/fifo")).toMatchObject({ type: "fifo", mode: 0o600 });
    expect(seen.get("home/user/empty")).toMatchObject({ type: "file", data: "", uid: 1000, gid: 1000 });
    expect(seen.get("tmp")).toMatchObject({ type: "directory", mode: 0o1777 });
    expect(execFileSync("rdsquashfs", ["-x", "/usr/bin/ping", path]).toString()).toMatch(
      /security\.capability/,
    );
  });

  it("handles directories larger than a metadata block and many runs of entries", async () => {
    const entries: TarIn[] = [];
    for (let i = 0; i < 700; i++)
      entries.push({ name: `d/${"n".repeat(40)}-${String(i).padStart(4, "0")}`, data: `${i}` });
    const { path } = await imageOf([entries], "wide.sqfs");
    const seen = await readBack(path);
    for (let i = 0; i < 700; i += 37) {
      expect(seen.get(`d/${"n".repeat(40)}-${String(i).padStart(4, "0")}`)?.data).toBe(`${i}`);
    }
    expect([...seen.keys()].filter((k) => k.startsWith("d/")).length).toBe(700);
  });

  it("is deterministic", async () => {
    const layer: TarIn[] = [
      { name: "a", data: "1" },
      { name: "b/c", data: "2" },
    ];
    const one = await imageOf([layer], "one.sqfs");
    const two = await imageOf([layer], "two.sqfs");
    expect(execFileSync("sha256sum", [one.path]).toString().split(" ")[0]).toBe(
      execFileSync("sha256sum", [two.path]).toString().split(" ")[0],
    );
  });

  it("names what squashfs cannot hold", async () => {
    const tree = new MergedTree();
    const tar = await tarOf([{ name: "f", data: "x", pax: { "SCHILY.xattr.system.posix_acl_access": "x" } }]);
    const entries: TarEntry[] = [];
    for await (const e of readTarEntries(bufferSource(tar))) entries.push(e);
    tree.applyLayer(0, entries);
    expect(squashfsUnsupported(tree)).toMatch(/system\.posix_acl_access/);
  });

  it("unusedRanges covers every byte but the data of files in the merged tree", async () => {
    const layers = [
      await tarOf([
        { name: "keep", data: "K".repeat(1000) },
        { name: "gone", data: "G".repeat(700) },
        { name: "replaced", data: "R".repeat(300) },
      ]),
      await tarOf([
        { name: ".wh.gone", data: "" },
        { name: "replaced", data: "N".repeat(50) },
      ]),
    ];
    const tree = new MergedTree();
    const layerBase = [4096, 4096 + layers[0]!.length];
    for (const [i, t] of layers.entries()) {
      const entries: TarEntry[] = [];
      for await (const e of readTarEntries(bufferSource(t))) entries.push(e);
      tree.applyLayer(i, entries);
    }
    const end = layerBase[1]! + layers[1]!.length;
    const image = Buffer.alloc(end);
    layers[0]!.copy(image, layerBase[0]);
    layers[1]!.copy(image, layerBase[1]);
    const gaps = unusedRanges(tree, { layerBase, metadataStart: end });
    for (const [a, b] of gaps) image.fill(0, a, b);
    const left = image.subarray(4096).toString("latin1").replace(/\0+/g, "|");
    expect(left).toBe(`|${"K".repeat(1000)}|${"N".repeat(50)}|`);
    // Ranges are sorted, disjoint and inside the layers.
    for (let i = 0; i < gaps.length; i++) {
      expect(gaps[i]![0]).toBeLessThan(gaps[i]![1]);
      if (i > 0) expect(gaps[i]![0]).toBeGreaterThan(gaps[i - 1]![1]);
    }
    expect(gaps[0]![0]).toBe(4096);
    expect(gaps.at(-1)![1]).toBe(end);
  });
});
