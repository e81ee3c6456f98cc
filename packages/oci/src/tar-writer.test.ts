import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { bufferSource } from "./byte-source.js";
import { readTarEntries } from "./tar-reader.js";
import { type TarHeader, TarWriter } from "./tar-writer.js";

async function encode(entries: { h: TarHeader; data?: Buffer }[], chunkSize?: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  // The sink copies: the writer reuses its chunk buffers.
  const w = new TarWriter(async (c) => {
    chunks.push(Buffer.from(c));
  }, chunkSize);
  for (const { h, data } of entries) {
    await w.writeHeader(h);
    if (data) {
      await w.writeFrom(data.length, (buf, off, len, done) => data.copy(buf, off, done, done + len));
      await w.pad(data.length);
    }
  }
  await w.finish();
  return Buffer.concat(chunks);
}

const base = { mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000, size: 0 };
const longName = `${"d".repeat(120)}/${"f".repeat(90)}`; // fits ustar name + prefix
const tooLong = `${"x".repeat(300)}/y`; // needs a PAX path

describe("TarWriter", () => {
  it.each([undefined, 700])(
    "writes headers that readTarEntries and GNU tar read back (chunks %s)",
    async (chunk) => {
      const data = Buffer.from("hello world\n".repeat(100));
      const buf = await encode(
        [
          { h: { ...base, path: ".", type: "dir", mode: 0o755 } },
          { h: { ...base, path: "etc", type: "dir", mode: 0o700, uname: "root", gname: "root" } },
          { h: { ...base, path: "etc/f", type: "file", size: data.length, uid: 1000, gid: 1000 }, data },
          { h: { ...base, path: longName, type: "file", size: 3 }, data: Buffer.from("abc") },
          { h: { ...base, path: tooLong, type: "symlink", linkname: `/${"t".repeat(150)}` } },
          {
            h: {
              ...base,
              path: "big-ids",
              type: "file",
              uid: 3_000_000,
              gid: 4_000_000_000,
              uname: "u".repeat(40),
            },
          },
          { h: { ...base, path: "dev/null", type: "char", mode: 0o666, devmajor: 1, devminor: 3 } },
          { h: { ...base, path: "hard", type: "link", linkname: "etc/f" } },
          {
            h: {
              ...base,
              path: "cap",
              type: "file",
              mode: 0o4755,
              xattrs: { "security.capability": Buffer.from([1, 0, 0, 2, 0x20]) },
            },
          },
          { h: { ...base, path: "ünïcödé", type: "fifo" } },
        ],
        chunk,
      );
      const got = [];
      for await (const e of readTarEntries(bufferSource(buf))) got.push(e);
      expect(got.map((e) => [e.path, e.type])).toEqual([
        ["./", "dir"],
        ["etc/", "dir"],
        ["etc/f", "file"],
        [longName, "file"],
        [tooLong, "symlink"],
        ["big-ids", "file"],
        ["dev/null", "char"],
        ["hard", "link"],
        ["cap", "file"],
        ["ünïcödé", "fifo"],
      ]);
      expect(got[1]).toMatchObject({ mode: 0o700, uname: "root", gname: "root", mtime: 1_700_000_000 });
      expect(got[2]).toMatchObject({ size: data.length, uid: 1000, gid: 1000 });
      expect(buf.subarray(got[2]!.dataOffset, got[2]!.dataOffset + data.length).equals(data)).toBe(true);
      expect(got[4]!.linkname).toBe(`/${"t".repeat(150)}`);
      expect(got[5]).toMatchObject({ uid: 3_000_000, gid: 4_000_000_000, uname: "u".repeat(40) });
      expect(got[6]).toMatchObject({ devmajor: 1, devminor: 3, mode: 0o666 });
      expect(got[7]!.linkname).toBe("etc/f");
      expect(got[8]!.mode).toBe(0o4755);
      expect([...got[8]!.xattrs["security.capability"]!]).toEqual([1, 0, 0, 2, 0x20]);
      // GNU tar agrees on names and checksums.
      const listed = execFileSync("tar", ["-tf", "-"], { input: buf }).toString().trim().split("\n");
      expect(listed).toContain(longName);
      expect(listed).toContain(tooLong);
      expect(listed).toHaveLength(10);
    },
  );
});
