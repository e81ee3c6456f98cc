import { execFileSync } from "node:child_process";
import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { bufferSource } from "./byte-source.js";
import { tarOf } from "./tar-fixture.test-util.js";
import { TarIndexer } from "./tar-indexer.js";
import { readTarEntries, type TarEntry } from "./tar-reader.js";

const work = mkdtempSync(join(tmpdir(), "oci-tar-indexer-test-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function reference(buf: Buffer): Promise<TarEntry[]> {
  const out = [];
  for await (const e of readTarEntries(bufferSource(buf))) out.push(e);
  return out;
}

/** Feeds `buf` to a TarIndexer in chunks of `size` bytes. */
function indexed(buf: Buffer, size: number, onEntry?: (e: TarEntry) => void): TarIndexer {
  const ix = new TarIndexer({}, onEntry);
  for (let i = 0; i < buf.length; i += size) ix.write(buf.subarray(i, i + size));
  ix.end();
  return ix;
}

const CHUNKS = [1, 7, 511, 512, 513, 4096, 1 << 30];

describe("TarIndexer", () => {
  const root = join(work, "root");
  const long = `${"a".repeat(110)}/${"b".repeat(120)}`;
  mkdirSync(join(root, long.split("/")[0]!), { recursive: true });
  writeFileSync(join(root, long), "hello");
  writeFileSync(join(root, "big"), Buffer.alloc(70_000, 7));
  linkSync(join(root, "big"), join(root, "big-link"));
  symlinkSync(`/${"t".repeat(150)}`, join(root, "sl"));

  it.each(["gnu", "pax", "oldgnu"])(
    "lists what readTarEntries lists (GNU tar %s), in any chunking",
    async (format) => {
      const buf = execFileSync(
        "tar",
        [`--format=${format}`, "--numeric-owner", "-C", root, "-cf", "-", "."],
        {
          stdio: ["ignore", "pipe", "ignore"],
        },
      );
      const want = await reference(buf);
      expect(want.length).toBeGreaterThan(4);
      for (const size of CHUNKS) expect(indexed(buf, size).entries()).toEqual(want);
    },
  );

  it("folds PAX records (xattrs, long names) into the entry like readTarEntries", async () => {
    const buf = await tarOf([
      { name: "d", type: "directory" },
      { name: `d/${"x".repeat(200)}`, data: "data", pax: { "SCHILY.xattr.security.capability": "cap" } },
      { name: "d/dev", type: "character-device", devmajor: 1, devminor: 3 },
    ]);
    const want = await reference(buf);
    expect(want[1]!.xattrs["security.capability"]?.toString()).toBe("cap");
    for (const size of CHUNKS) expect(indexed(buf, size).entries()).toEqual(want);
  });

  it("reports truncated data and truncated extended headers only at the end, like readTarEntries", async () => {
    const buf = await tarOf([{ name: "f", data: "x".repeat(3000) }]);
    const cut = buf.subarray(0, 1024);
    await expect(reference(cut)).rejects.toThrow(/truncated tar: data of f missing/);
    const ix = new TarIndexer();
    ix.write(cut);
    ix.end();
    expect(() => ix.entries()).toThrow(/truncated tar: data of f missing/);

    const withPax = await tarOf([{ name: "g", data: "y", pax: { "SCHILY.xattr.user.a": "v".repeat(900) } }]);
    expect(() => indexed(withPax.subarray(0, 700), 100).entries()).toThrow(/truncated tar extended header/);
  });

  it("records the first error without throwing, stops there, and ignores what follows the end marker", async () => {
    const buf = await tarOf([
      { name: "a", data: "1" },
      { name: "b", data: "2" },
      { name: "c", data: "3" },
    ]);
    // A limit thrown by onEntry at "b": recorded, no more entries seen.
    const seen: string[] = [];
    const ix = indexed(buf, 100, (e) => {
      seen.push(e.path);
      if (e.path === "b") throw new Error("limit at b");
    });
    expect(seen).toEqual(["a", "b"]);
    expect(() => ix.entries()).toThrow("limit at b");

    // A corrupt header (bad checksum) is OCI_LAYER_INVALID, from entries() only.
    const bad = Buffer.from(buf);
    bad[1024 + 10] = 0x41;
    const ix2 = indexed(bad, 4096);
    expect(() => ix2.entries()).toThrow(expect.objectContaining({ code: "OCI_LAYER_INVALID" }));

    // Garbage after the end-of-archive blocks is not parsed.
    const trailing = Buffer.concat([buf, Buffer.alloc(2048, 0x55)]);
    expect(
      indexed(trailing, 333)
        .entries()
        .map((e) => e.path),
    ).toEqual(["a", "b", "c"]);
  });
});
