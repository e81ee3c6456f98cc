import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BlobCache } from "./blob-cache.js";
import { batchedFile } from "./byte-sink.js";

const work = mkdtempSync(join(tmpdir(), "oci-byte-sink-test-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("batchedFile", () => {
  it("writes every chunk in order across batches of any size", async () => {
    const chunks = Array.from({ length: 200 }, (_, i) => randomBytes((i * 7919) % 70_000));
    const path = join(work, "ordered");
    const f = await batchedFile(path, 100_000);
    for (const c of chunks) await f.write(c);
    await f.end();
    expect(readFileSync(path).equals(Buffer.concat(chunks))).toBe(true);
    await f.abort(); // after end: no-op
  });

  it("abort while a batch is in flight closes the file and raises nothing later", async () => {
    const path = join(work, "aborted");
    const f = await batchedFile(path, 1);
    for (let i = 0; i < 8; i++) await f.write(randomBytes(1 << 20));
    await f.abort();
    await f.abort();
    await new Promise((r) => setTimeout(r, 50));
    expect(readFileSync(path).length % (1 << 20)).toBe(0);
  });
});

describe("BlobCache.putStream on a source that fails mid-way", () => {
  it("rethrows the source's error, leaves no temp file and no uncaught error", async () => {
    const cache = new BlobCache(join(work, "cache"));
    async function* source() {
      for (let i = 0; i < 16; i++) yield randomBytes(1 << 20);
      throw Object.assign(new Error("connection reset"), { code: "ECONNRESET" });
    }
    await expect(cache.putStream(undefined, source())).rejects.toThrow("connection reset");
    expect(readdirSync(join(cache.dir, "tmp"))).toEqual([]);
  });
});
