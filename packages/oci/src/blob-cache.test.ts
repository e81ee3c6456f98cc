import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { BlobCache } from "./blob-cache.js";

const work = mkdtempSync(join(tmpdir(), "oci-cache-test-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const digestOf = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

describe("BlobCache", () => {
  it("stores streamed content only when it matches its digest and size", async () => {
    const cache = new BlobCache(join(work, "a"));
    const data = Buffer.from("hello blob");
    const d = digestOf(data);
    await expect(
      cache.putStream(d, Readable.from([Buffer.from("tampered!!")]), { expectedSize: data.length }),
    ).rejects.toMatchObject({
      code: "OCI_DIGEST_MISMATCH",
    });
    expect(await cache.has(d)).toBe(false);
    await expect(
      cache.putStream(d, Readable.from([data, Buffer.from("x")]), { expectedSize: data.length }),
    ).rejects.toMatchObject({
      code: "OCI_DIGEST_MISMATCH",
    });
    expect(readdirSync(join(cache.dir, "tmp"))).toEqual([]);
    expect(
      await cache.putStream(d, Readable.from([data.subarray(0, 3), data.subarray(3)]), {
        expectedSize: data.length,
      }),
    ).toEqual({
      digest: d,
      size: data.length,
    });
    expect(await cache.has(d, data.length)).toBe(true);
    expect((await cache.readVerified(d))?.toString()).toBe("hello blob");
  });

  it("computes the digest when none is expected, and drops corrupt blobs on read", async () => {
    const cache = new BlobCache(join(work, "b"));
    const data = Buffer.from("layer bytes");
    const { digest } = await cache.putStream(undefined, Readable.from([data]));
    expect(digest).toBe(digestOf(data));
    await expect(cache.putBytes(digest, Buffer.from("other"))).rejects.toMatchObject({
      code: "OCI_DIGEST_MISMATCH",
    });
    const { writeFileSync } = await import("node:fs");
    writeFileSync(cache.path(digest), "corrupted on disk");
    expect(await cache.readVerified(digest)).toBeUndefined();
    expect(await cache.has(digest)).toBe(false);
  });

  it("two writers of the same blob both succeed", async () => {
    const cache = new BlobCache(join(work, "c"));
    const data = Buffer.alloc(1 << 20, 7);
    const d = digestOf(data);
    const results = await Promise.all([0, 1, 2].map(() => cache.putStream(d, Readable.from([data]))));
    expect(results.every((r) => r.digest === d)).toBe(true);
    expect((await cache.readVerified(d))?.equals(data)).toBe(true);
  });
});
