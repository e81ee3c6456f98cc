import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { batchedFile } from "./byte-sink.js";
import { hasherFor, parseDigest } from "./digest.js";
import { DigestMismatchError, InvalidImageError } from "./errors.js";

/** `~/.cache/supermachine/oci` (or `$SUPERMACHINE_CACHE/oci`). */
export function defaultCacheDir(): string {
  const base = process.env.SUPERMACHINE_CACHE ?? join(homedir(), ".cache", "supermachine");
  return join(base, "oci");
}

/** Unique temp-file name next to its final place (same file system, so rename is atomic). */
export function tempName(dir: string, hint: string): string {
  return join(dir, `.${hint}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
}

/** Writes `data` to `path` atomically (temp file + rename). */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const dir = join(path, "..");
  await mkdir(dir, { recursive: true });
  const tmp = tempName(dir, "w");
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
}

/**
 * Content-addressed blob store: `blobs/<algo>/<hex>`. Content is hashed while
 * it is written to a temp file and only renamed into place when it matches
 * its digest, so a blob in the store is always complete and verified, and
 * two processes writing the same blob both succeed.
 */
export class BlobCache {
  /** Root directory of the cache. */
  readonly dir: string;
  constructor(dir: string = defaultCacheDir()) {
    this.dir = dir;
  }

  /** Path a blob with `digest` is (or would be) stored at. */
  path(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.dir, "blobs", algorithm, hex);
  }

  /** Size of the stored blob, or undefined when absent. */
  async size(digest: string): Promise<number | undefined> {
    try {
      return (await stat(this.path(digest))).size;
    } catch {
      return undefined;
    }
  }

  /** True when the blob is stored (and has `size` bytes, if given). */
  async has(digest: string, size?: number): Promise<boolean> {
    const s = await this.size(digest);
    return s !== undefined && (size === undefined || s === size);
  }

  /** Reads a stored blob and checks its digest; a corrupt blob is deleted and `undefined` returned. */
  async readVerified(digest: string): Promise<Buffer | undefined> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.path(digest));
    } catch {
      return undefined;
    }
    const actual = `${parseDigest(digest).algorithm}:${hasherFor(digest).update(bytes).digest("hex")}`;
    if (actual !== digest) {
      await this.remove(digest);
      return undefined;
    }
    return bytes;
  }

  /** Verifies `bytes` against `digest` and stores them. */
  async putBytes(digest: string, bytes: Uint8Array, what = "blob"): Promise<void> {
    const actual = `${parseDigest(digest).algorithm}:${hasherFor(digest).update(bytes).digest("hex")}`;
    if (actual !== digest) throw new DigestMismatchError(`${what} ${digest}`, digest, actual);
    if (await this.has(digest, bytes.length)) return;
    await writeFileAtomic(this.path(digest), bytes);
  }

  /**
   * Streams `source` into the store under `digest`. The content is hashed on
   * the way; on a digest or size mismatch the temp file is deleted and a
   * {@link DigestMismatchError} thrown, so nothing unverified is ever stored.
   * `expectedDigest` may be undefined to store under the computed digest
   * (returned), e.g. for `docker save` layers.
   */
  async putStream(
    expectedDigest: string | undefined,
    source: AsyncIterable<Uint8Array>,
    opts: { expectedSize?: number; what?: string; onBytes?: (n: number) => void } = {},
  ): Promise<{ digest: string; size: number }> {
    const tmpDir = join(this.dir, "tmp");
    await mkdir(tmpDir, { recursive: true });
    const tmp = tempName(tmpDir, "blob");
    const hash = hasherFor(expectedDigest ?? "sha256:".padEnd(71, "0"));
    const algo = expectedDigest ? parseDigest(expectedDigest).algorithm : "sha256";
    const out = await batchedFile(tmp);
    let size = 0;
    try {
      for await (const chunk of source) {
        hash.update(chunk);
        size += chunk.length;
        if (opts.expectedSize !== undefined && size > opts.expectedSize) {
          throw new DigestMismatchError(
            `${opts.what ?? "blob"} ${expectedDigest}: more bytes than the descriptor's size ${opts.expectedSize}`,
            expectedDigest ?? "",
            "(oversized)",
          );
        }
        await out.write(chunk);
        opts.onBytes?.(chunk.length);
      }
      await out.end();
      const digest = `${algo}:${hash.digest("hex")}`;
      if (expectedDigest && digest !== expectedDigest) {
        throw new DigestMismatchError(`${opts.what ?? "blob"} ${expectedDigest}`, expectedDigest, digest);
      }
      if (opts.expectedSize !== undefined && size !== opts.expectedSize) {
        throw new InvalidImageError(
          `${opts.what ?? "blob"} ${digest}: got ${size} bytes, descriptor says ${opts.expectedSize}`,
        );
      }
      const final = this.path(digest);
      await mkdir(join(final, ".."), { recursive: true });
      await rename(tmp, final);
      return { digest, size };
    } catch (err) {
      await out.abort();
      await unlink(tmp).catch(() => {});
      throw err;
    }
  }

  /** Deletes a stored blob (no error when absent). */
  async remove(digest: string): Promise<void> {
    await unlink(this.path(digest)).catch(() => {});
  }
}
