import { randomBytes } from "node:crypto";
import { mkdtemp, open, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SnapshotError } from "../errors.js";
import { PAGE_SIZE } from "./format.js";
import { countPresentPages, packMemory, unpackMemory } from "./memory-pages.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "sm-pages-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A sparse memory file of `pages` pages with random contents at `at`. */
async function memoryFile(pages: number, at: number[]): Promise<string> {
  const path = join(dir, "memory.bin");
  await writeFile(path, "");
  await truncate(path, pages * PAGE_SIZE);
  const fh = await open(path, "r+");
  for (const p of at) await fh.write(randomBytes(PAGE_SIZE), 0, PAGE_SIZE, p * PAGE_SIZE);
  await fh.close();
  return path;
}

async function errorOf(p: Promise<unknown>): Promise<SnapshotError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SnapshotError);
  return err as SnapshotError;
}

describe("guest memory without its zero pages", () => {
  it("packs only non-zero pages and unpacks to the same bytes, sparse", async () => {
    const at = [0, 1, 7, 8, 300, 511];
    const src = await memoryFile(512, at);
    // a page that was written but holds zeros is not sent either
    const fh = await open(src, "r+");
    await fh.write(Buffer.alloc(PAGE_SIZE), 0, PAGE_SIZE, 100 * PAGE_SIZE);
    await fh.close();
    const packed = await packMemory(src, join(dir, "pages.gz"));
    expect(packed.totalPages).toBe(512);
    expect(packed.presentPages).toBe(at.length);
    expect(packed.pageMap.length).toBe(64);
    expect(countPresentPages(packed.pageMap, 512)).toBe(at.length);
    expect(packed.pageMap[0]).toBe(0b10000011);
    expect(packed.pagesSize).toBe((await stat(packed.pagesFile)).size);
    // incompressible random pages: the stream is about their size, far below 2 MiB
    expect(packed.pagesSize).toBeLessThan((at.length + 1) * PAGE_SIZE);
    const out = join(dir, "restored.bin");
    await unpackMemory(packed.pagesFile, packed.pageMap, 512, out);
    expect((await readFile(out)).equals(await readFile(src))).toBe(true);
    const st = await stat(out);
    expect(st.size).toBe(512 * PAGE_SIZE);
    expect(st.blocks * 512).toBeLessThan(64 * PAGE_SIZE); // holes stay holes
  });

  it("refuses a page map of the wrong length or marking pages past the end", () => {
    expect(() => countPresentPages(Buffer.alloc(3), 32)).toThrow(/page map has 3 bytes/);
    expect(() => countPresentPages(Buffer.from([0, 0x10]), 12)).toThrow(/past the end/);
    expect(countPresentPages(Buffer.from([0xff, 0x0f]), 12)).toBe(12);
  });

  it("refuses pages that decompress to more or fewer pages than the map marks", async () => {
    const map = Buffer.from([0b11]);
    const tooMany = join(dir, "many.gz");
    await writeFile(tooMany, gzipSync(randomBytes(3 * PAGE_SIZE)));
    let err = await errorOf(unpackMemory(tooMany, map, 8, join(dir, "m1")));
    expect(err.code).toBe("SNAPSHOT_ARTIFACT_INVALID");
    expect(err.message).toMatch(/more than the 2 pages/);
    const tooFew = join(dir, "few.gz");
    await writeFile(tooFew, gzipSync(randomBytes(PAGE_SIZE + 100)));
    err = await errorOf(unpackMemory(tooFew, map, 8, join(dir, "m2")));
    expect(err.code).toBe("SNAPSHOT_ARTIFACT_INVALID");
    expect(err.message).toMatch(/1 whole pages, the page map 2/);
    const notGzip = join(dir, "bad.gz");
    await writeFile(notGzip, randomBytes(1000));
    err = await errorOf(unpackMemory(notGzip, map, 8, join(dir, "m3")));
    expect(err.message).toMatch(/not a gzip stream/);
    // a decompression bomb stops at the page map's size: 2 pages of 8, not the 64 MiB it expands to
    const bomb = join(dir, "bomb.gz");
    await writeFile(bomb, gzipSync(Buffer.alloc(64 * 1024 * 1024, 1)));
    err = await errorOf(unpackMemory(bomb, map, 8, join(dir, "m4")));
    expect(err.message).toMatch(/more than the 2 pages/);
    expect((await stat(join(dir, "m4"))).blocks * 512).toBeLessThanOrEqual(4 * PAGE_SIZE);
  });
});
