import * as tarStream from "tar-stream";
import { describe, expect, it } from "vitest";
import { bufferSource } from "./byte-source.js";
import { cleanPath, MergedTree } from "./layer-merge.js";
import { planMergedTar, writeMergedTar } from "./merged-tar.js";
import { tarOf } from "./tar-fixture.test-util.js";
import { readTarEntries } from "./tar-reader.js";

type In = {
  name: string;
  type?: tarStream.Header["type"];
  data?: string;
  linkname?: string;
  mode?: number;
  uid?: number;
  pax?: Record<string, string>;
};
type Out = {
  name: string;
  type: string;
  linkname?: string;
  data: string;
  mode: number;
  uid: number;
  pax?: Record<string, string>;
};

const tar = (entries: In[]): Promise<Buffer> => tarOf(entries);

async function untar(buf: Buffer): Promise<Out[]> {
  const ex = tarStream.extract();
  const out: Out[] = [];
  const done = new Promise<void>((resolve, reject) => {
    ex.on("entry", (h, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on("data", (c) => {
        chunks.push(c as Buffer);
      });
      stream.on("end", () => {
        out.push({
          name: h.name,
          type: h.type!,
          linkname: h.linkname ?? undefined,
          data: Buffer.concat(chunks).toString(),
          mode: h.mode!,
          uid: h.uid!,
          pax: (h.pax as Record<string, string> | undefined) ?? undefined,
        });
        next();
      });
    });
    ex.on("finish", resolve);
    ex.on("error", reject);
  });
  ex.end(buf);
  await done;
  return out;
}

async function merge(...layers: In[][]): Promise<Map<string, Out>> {
  const bufs = await Promise.all(layers.map(tar));
  const sources = bufs.map(bufferSource);
  const tree = new MergedTree();
  for (let i = 0; i < sources.length; i++) {
    const entries = [];
    for await (const e of readTarEntries(sources[i]!)) entries.push(e);
    tree.applyLayer(i, entries);
  }
  const readers = bufs.map((b) => ({
    readInto: (buf: Buffer, off: number, len: number, pos: number) =>
      b.copy(buf, off, pos, Math.min(b.length, pos + len)),
  }));
  const chunks: Buffer[] = [];
  await writeMergedTar(planMergedTar(tree), readers, async (c) => {
    chunks.push(c);
  });
  const list = await untar(Buffer.concat(chunks));
  return new Map(list.map((e) => [e.name.replace(/\/$/, ""), e]));
}

const dir = (name: string, mode = 0o755): In => ({ name, type: "directory", mode });

describe("layer merge", () => {
  it("last writer wins and directories merge", async () => {
    const m = await merge(
      [dir("etc"), { name: "etc/a", data: "1" }, { name: "etc/b", data: "b" }],
      [dir("etc", 0o700), { name: "etc/a", data: "2" }],
    );
    expect(m.get("etc/a")?.data).toBe("2");
    expect(m.get("etc/b")?.data).toBe("b");
    expect(m.get("etc")?.mode).toBe(0o700);
  });

  it("emits parents before children, creating missing parents", async () => {
    const m = await merge([{ name: "a/b/c", data: "x" }]);
    const names = [...m.keys()];
    expect(names).toEqual([".", "a", "a/b", "a/b/c"]);
    expect(m.get("a")?.type).toBe("directory");
  });

  it("whiteouts remove lower files and whole subtrees, but not the same layer's", async () => {
    const m = await merge(
      [
        dir("d"),
        { name: "d/gone", data: "x" },
        dir("d/sub"),
        { name: "d/sub/f", data: "y" },
        { name: "d/kept", data: "k" },
      ],
      [
        { name: "d/.wh.gone" },
        { name: "d/.wh.sub" },
        { name: "d/.wh.new" },
        { name: "d/new", data: "same layer" },
      ],
    );
    expect(m.has("d/gone")).toBe(false);
    expect(m.has("d/sub")).toBe(false);
    expect(m.has("d/sub/f")).toBe(false);
    expect(m.get("d/kept")?.data).toBe("k");
    expect(m.get("d/new")?.data).toBe("same layer");
    expect([...m.keys()].some((k) => k.includes(".wh."))).toBe(false);
  });

  it("opaque directories hide everything below from lower layers only", async () => {
    const m = await merge(
      [dir("o"), { name: "o/a", data: "a" }, dir("o/s"), { name: "o/s/b", data: "b" }],
      [{ name: "o/new", data: "n" }, { name: "o/.wh..wh..opq" }],
    );
    expect([...m.keys()].filter((k) => k.startsWith("o/"))).toEqual(["o/new"]);
  });

  it("keeps hardlinks across layers (and after the original name is removed)", async () => {
    const m = await merge(
      [dir("s"), { name: "s/orig", data: "payload", mode: 0o640, uid: 7 }],
      [{ name: "s/link", type: "link", linkname: "s/orig" }],
      [{ name: "s/.wh.orig" }],
    );
    expect(m.has("s/orig")).toBe(false);
    expect(m.get("s/link")).toMatchObject({ type: "file", data: "payload", mode: 0o640, uid: 7 });
    const both = await merge(
      [dir("s"), { name: "s/orig", data: "p" }],
      [{ name: "s/link", type: "link", linkname: "./s/orig" }],
    );
    // One name carries the data (the first in emit order), the other is a hardlink to it.
    expect(both.get("s/link")).toMatchObject({ type: "file", data: "p" });
    expect(both.get("s/orig")).toMatchObject({ type: "link", linkname: "s/link" });
  });

  it("resolves parents through symlinks inside the root, clamping at /", async () => {
    const m = await merge(
      [
        dir("usr"),
        dir("usr/lib"),
        { name: "lib", type: "symlink", linkname: "/usr/lib" },
        { name: "up", type: "symlink", linkname: "../../../../etc" },
      ],
      [
        { name: "lib/x.so", data: "x" },
        { name: "up/passwd", data: "inside" },
      ],
    );
    expect(m.get("usr/lib/x.so")?.data).toBe("x");
    expect(m.get("lib")).toMatchObject({ type: "symlink", linkname: "/usr/lib" });
    expect(m.get("etc/passwd")?.data).toBe("inside");
  });

  it("rejects entries and hardlinks that climb out of the root", async () => {
    await expect(merge([{ name: "../evil", data: "x" }])).rejects.toMatchObject({
      code: "OCI_LAYER_UNSAFE_PATH",
    });
    await expect(merge([{ name: "a/../../evil", data: "x" }])).rejects.toMatchObject({
      code: "OCI_LAYER_UNSAFE_PATH",
    });
    await expect(merge([{ name: "l", type: "link", linkname: "../../etc/shadow" }])).rejects.toMatchObject({
      code: "OCI_LAYER_UNSAFE_PATH",
    });
    await expect(merge([{ name: "l", type: "link", linkname: "missing" }])).rejects.toMatchObject({
      code: "OCI_LAYER_INVALID",
    });
  });

  it("neutralizes absolute paths and keeps them under the root", async () => {
    const m = await merge([{ name: "/etc/abs", data: "a" }]);
    expect(m.get("etc/abs")?.data).toBe("a");
  });

  it("symlink loops are reported, not followed forever", async () => {
    await expect(
      merge(
        [
          { name: "a", type: "symlink", linkname: "b" },
          { name: "b", type: "symlink", linkname: "a" },
        ],
        [{ name: "a/x", data: "1" }],
      ),
    ).rejects.toMatchObject({
      code: "OCI_LAYER_UNSAFE_PATH",
    });
  });

  it("a file replacing a directory drops the subtree; long names and xattrs survive", async () => {
    const long = `${"p".repeat(120)}/${"q".repeat(120)}`;
    const m = await merge(
      [dir("x"), { name: "x/child", data: "c" }],
      [
        { name: "x", data: "now a file" },
        { name: long, data: "L", pax: { "SCHILY.xattr.user.k": "v" } },
      ],
    );
    expect(m.get("x")?.data).toBe("now a file");
    expect(m.has("x/child")).toBe(false);
    expect(m.get(long)).toMatchObject({
      data: "L",
      pax: expect.objectContaining({ "SCHILY.xattr.user.k": "v" }),
    });
  });

  it("cleanPath strips ./ and /", () => {
    expect(cleanPath("./a//b/./c/")).toEqual(["a", "b", "c"]);
    expect(cleanPath("/")).toEqual([]);
    expect(cleanPath("a/b/../c")).toEqual(["a", "c"]);
  });
});
