import { spawn } from "node:child_process";
import { createReadStream, createWriteStream } from "node:fs";
import { open } from "node:fs/promises";
import { PassThrough, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import * as zlib from "node:zlib";
import { hasherFor } from "./digest.js";
import { DigestMismatchError, LayerInvalidError, LimitExceededError } from "./errors.js";
import type { UnpackBudget } from "./limits.js";

/** Compression of a layer blob, detected from its first bytes. */
export type Compression = "gzip" | "zstd" | "none";

/** Detects gzip (`1f 8b`) and zstd (`28 b5 2f fd`) by magic; anything else is treated as plain tar. */
export function detectCompression(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd)
    return "zstd";
  return "none";
}

function hashTap(digest: string): { tap: Transform; result: () => string } {
  const h = hasherFor(digest);
  const algo = digest.split(":")[0];
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      h.update(chunk);
      cb(null, chunk);
    },
  });
  let done: string | undefined;
  return { tap, result: () => (done ??= `${algo}:${h.digest("hex")}`) };
}

/** Counts bytes through against `budget`; errors the stream once the budget is exceeded. */
function budgetTap(budget: UnpackBudget | undefined, what: string): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      try {
        budget?.add(chunk.length, what);
      } catch (err) {
        cb(err as Error);
        return;
      }
      cb(null, chunk);
    },
  });
}

type ZlibWithZstd = typeof zlib & { createZstdDecompress?: () => Transform };

/**
 * Decompresses the layer blob at `blobPath` into `outPath`, checking the
 * compressed bytes against `digest` and the uncompressed tar against
 * `diffId` on the way. gzip uses zlib; zstd uses Node's zlib when it has it
 * (Node >= 22.15) and the `zstd` program otherwise. The uncompressed bytes
 * are counted against `budget` (shared by the image's layers): a layer
 * that unpacks beyond it stops there with `OCI_LIMIT_EXCEEDED`.
 */
export async function decompressLayer(
  blobPath: string,
  digest: string,
  diffId: string,
  outPath: string,
  budget?: UnpackBudget,
): Promise<void> {
  const fh = await open(blobPath, "r");
  const head = Buffer.alloc(4);
  await fh.read(head, 0, 4, 0);
  await fh.close();
  const compression = detectCompression(head);
  const compressed = hashTap(digest);
  const uncompressed = hashTap(diffId);
  const input = createReadStream(blobPath, { highWaterMark: 1024 * 1024 });
  const output = createWriteStream(outPath);
  const counter = budgetTap(budget, `layer ${digest}`);
  const z = zlib as ZlibWithZstd;
  if (compression === "zstd" && typeof z.createZstdDecompress !== "function") {
    const child = spawn("zstd", ["-d", "-c", "-q"], { stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((resolve, reject) => {
      child.on("error", (err) =>
        reject(
          new LayerInvalidError(`cannot run zstd to decompress ${digest}: ${err.message}`, { cause: err }),
        ),
      );
      child.on("close", resolve);
    });
    const results = await Promise.allSettled([
      pipeline(input, compressed.tap, child.stdin),
      pipeline(child.stdout, counter, uncompressed.tap, output).catch((err: unknown) => {
        // Over the budget: stop zstd now rather than let it run into a closed pipe.
        child.kill("SIGKILL");
        throw err;
      }),
      exited,
    ]);
    const over = results.find((r) => r.status === "rejected" && r.reason instanceof LimitExceededError);
    if (over) throw (over as PromiseRejectedResult).reason;
    const code = results[2].status === "fulfilled" ? results[2].value : undefined;
    if (results[2].status === "rejected") throw results[2].reason;
    checkDigests(compressed.result(), digest, null, "");
    if (code !== 0) throw new LayerInvalidError(`zstd failed on layer ${digest}: ${stderr.trim()}`);
    for (const r of results) if (r.status === "rejected") throw r.reason;
    checkDigests(compressed.result(), digest, uncompressed.result(), diffId);
    return;
  }
  const decoder: Transform =
    compression === "gzip"
      ? zlib.createGunzip({ chunkSize: 256 * 1024 })
      : compression === "zstd"
        ? z.createZstdDecompress!()
        : new PassThrough();
  try {
    await pipeline(input, compressed.tap, decoder, counter, uncompressed.tap, output);
  } catch (err) {
    if (err instanceof LimitExceededError) throw err;
    // A corrupt blob usually fails to decompress; report the digest if that is why.
    const full = hasherFor(digest);
    for await (const c of createReadStream(blobPath)) full.update(c as Buffer);
    const actual = `${digest.split(":")[0]}:${full.digest("hex")}`;
    if (actual !== digest) throw new DigestMismatchError(`layer ${digest}`, digest, actual);
    throw new LayerInvalidError(`cannot decompress layer ${digest}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  checkDigests(compressed.result(), digest, uncompressed.result(), diffId);
}

function checkDigests(actual: string, digest: string, actualDiff: string | null, diffId: string): void {
  if (actual !== digest) throw new DigestMismatchError(`layer ${digest}`, digest, actual);
  if (actualDiff !== null && actualDiff !== diffId) {
    throw new DigestMismatchError(`uncompressed layer ${digest} (diff ID)`, diffId, actualDiff);
  }
}
