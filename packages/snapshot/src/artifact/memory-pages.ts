import { createHash } from "node:crypto";
import { once } from "node:events";
import { createReadStream, createWriteStream } from "node:fs";
import { open } from "node:fs/promises";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip, createGzip } from "node:zlib";
import { SnapshotError } from "../errors.js";
import { PAGE_SIZE } from "./format.js";

const READ_CHUNK = 1024 * 1024;
const ZERO_PAGE = Buffer.alloc(PAGE_SIZE);

/** A guest memory file packed for transfer: a page map and the non-zero pages, compressed. */
export interface PackedMemory {
  /** One bit per page (LSB first): 1 = the page is in the pages file. */
  pageMap: Buffer;
  /** Path of the gzip stream of the present pages, in address order. */
  pagesFile: string;
  /** `sha256:` digest of the pages file. */
  pagesDigest: string;
  /** Size of the pages file. */
  pagesSize: number;
  /** Pages in the memory file. */
  totalPages: number;
  /** Non-zero pages (those in the pages file). */
  presentPages: number;
}

/**
 * Packs a guest memory file: reads it once (holes read as zeros and cost no
 * disk), marks every non-zero 4 KiB page in a page map and writes those
 * pages, in address order, as one gzip stream to `pagesFile`. Zero pages
 * are not transferred at all.
 */
export async function packMemory(memoryFile: string, pagesFile: string, level = 3): Promise<PackedMemory> {
  const fh = await open(memoryFile, "r");
  try {
    const size = (await fh.stat()).size;
    if (size % PAGE_SIZE !== 0) {
      throw new SnapshotError("SNAPSHOT_CORRUPT", `${memoryFile} is not a whole number of pages`, {
        details: { file: memoryFile, problem: "size" },
      });
    }
    const totalPages = size / PAGE_SIZE;
    const pageMap = Buffer.alloc(Math.ceil(totalPages / 8));
    const gzip = createGzip({ level });
    const hash = createHash("sha256");
    let pagesSize = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        pagesSize += chunk.length;
        cb(null, chunk);
      },
    });
    const written = pipeline(gzip, counted, createWriteStream(pagesFile, { mode: 0o600 }));
    written.catch(() => {});
    let presentPages = 0;
    let page = 0;
    for (let pos = 0; pos < size; pos += READ_CHUNK) {
      // a fresh buffer per read: gzip may still hold the previous one
      const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, size - pos));
      let got = 0;
      while (got < buf.length) {
        const { bytesRead } = await fh.read(buf, got, buf.length - got, pos + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      for (let off = 0; off + PAGE_SIZE <= got; off += PAGE_SIZE, page++) {
        const p = buf.subarray(off, off + PAGE_SIZE);
        if (p.equals(ZERO_PAGE)) continue;
        pageMap[page >> 3]! |= 1 << (page & 7);
        presentPages++;
        if (!gzip.write(p)) await once(gzip, "drain");
      }
    }
    gzip.end();
    await written;
    return {
      pageMap,
      pagesFile,
      pagesDigest: `sha256:${hash.digest("hex")}`,
      pagesSize,
      totalPages,
      presentPages,
    };
  } finally {
    await fh.close();
  }
}

/** The number of set bits of a page map's first `totalPages` bits; throws when a bit past them is set. */
export function countPresentPages(pageMap: Buffer, totalPages: number): number {
  if (pageMap.length !== Math.ceil(totalPages / 8)) {
    throw new SnapshotError(
      "SNAPSHOT_ARTIFACT_INVALID",
      `snapshot artifact: the page map has ${pageMap.length} bytes, ${Math.ceil(totalPages / 8)} expected for ${totalPages} pages`,
      { details: { problem: "pagemap" } },
    );
  }
  let n = 0;
  for (let i = 0; i < pageMap.length; i++) {
    let b = pageMap[i]!;
    if (i === pageMap.length - 1 && totalPages % 8 !== 0 && b >> (totalPages % 8) !== 0) {
      throw new SnapshotError(
        "SNAPSHOT_ARTIFACT_INVALID",
        "snapshot artifact: the page map marks pages past the end",
        {
          details: { problem: "pagemap" },
        },
      );
    }
    while (b) {
      n += b & 1;
      b >>= 1;
    }
  }
  return n;
}

/**
 * Writes a guest memory file from a page map and a pages file (already
 * verified against its digest): the file is made sparse at its full size,
 * and each present page is written at its offset. Decompressed output is
 * bounded by the page map: more, or fewer, whole pages than it marks fail
 * with `SNAPSHOT_ARTIFACT_INVALID` (the caller then discards the file).
 */
export async function unpackMemory(
  pagesFile: string,
  pageMap: Buffer,
  totalPages: number,
  memoryFile: string,
): Promise<void> {
  const present = countPresentPages(pageMap, totalPages);
  const invalid = (message: string, cause?: unknown) =>
    new SnapshotError("SNAPSHOT_ARTIFACT_INVALID", `snapshot artifact: ${message}`, {
      cause,
      details: { problem: "pages" },
    });
  const fh = await open(memoryFile, "wx", 0o600);
  try {
    await fh.truncate(totalPages * PAGE_SIZE);
    let page = -1;
    const nextPage = () => {
      for (page++; page < totalPages; page++) if (pageMap[page >> 3]! & (1 << (page & 7))) return page;
      return -1;
    };
    const cur = Buffer.alloc(PAGE_SIZE);
    let fill = 0;
    let written = 0;
    let overflow: SnapshotError | undefined;
    const sink = async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) {
        let off = 0;
        while (off < chunk.length) {
          if (written >= present) {
            overflow = invalid(
              `the memory pages decompress to more than the ${present} pages of the page map`,
            );
            throw overflow;
          }
          const n = Math.min(PAGE_SIZE - fill, chunk.length - off);
          chunk.copy(cur, fill, off, off + n);
          fill += n;
          off += n;
          if (fill === PAGE_SIZE) {
            await fh.write(cur, 0, PAGE_SIZE, nextPage() * PAGE_SIZE);
            written++;
            fill = 0;
          }
        }
      }
    };
    try {
      await pipeline(createReadStream(pagesFile), createGunzip(), sink);
    } catch (err) {
      if (overflow) throw overflow;
      if (err instanceof SnapshotError) throw err;
      throw invalid(`the memory pages are not a gzip stream (${(err as Error).message})`, err);
    }
    if (written !== present || fill !== 0) {
      throw invalid(`the memory pages hold ${written} whole pages, the page map ${present}`);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}
