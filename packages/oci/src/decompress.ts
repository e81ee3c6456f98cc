import { spawn } from "node:child_process";
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { PassThrough, Transform, type TransformCallback, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import * as zlib from "node:zlib";
import { hasherFor } from "./digest.js";
import { DigestMismatchError, LayerInvalidError, LimitExceededError, throwIfAborted } from "./errors.js";
import { findProgram } from "./find-program.js";
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

/** The compression of the blob at `path`, from its first bytes. */
export async function blobCompression(path: string): Promise<Compression> {
  const fh = await open(path, "r");
  try {
    const head = Buffer.alloc(4);
    await fh.read(head, 0, 4, 0);
    return detectCompression(head);
  } finally {
    await fh.close();
  }
}

/** Bytes queued for a tap's work before the stream feeding it is held back. */
const MAX_QUEUED = 16 * 1024 * 1024;

/** Bytes `work` handles per turn of the event loop (so zlib's completions are not kept waiting). */
const SLICE = 256 * 1024;

/**
 * A pass-through stage that runs `check` on each chunk at once (it may
 * throw to error the stream) and `work` from a queue on later turns of the
 * event loop, 256 KiB per turn: the stage next to it (zlib in the thread
 * pool) is handed its next piece of work first and its completions are
 * seen between slices, so it inflates on one core while `work` (hashing)
 * runs on the other. `flush` runs what is queued before the stream ends.
 */
function queuedTap(work: (chunk: Buffer) => void, check?: (chunk: Buffer) => void): Transform {
  const queue: Buffer[] = [];
  let head = 0;
  let queued = 0;
  let scheduled = false;
  let waiting: (() => void) | undefined;
  const step = (all: boolean) => {
    let budget = all ? Number.POSITIVE_INFINITY : SLICE;
    while (head < queue.length && budget > 0) {
      const c = queue[head]!;
      if (c.length > budget) {
        work(c.subarray(0, budget));
        queue[head] = c.subarray(budget);
        queued -= budget;
        budget = 0;
        break;
      }
      work(c);
      queued -= c.length;
      budget -= c.length;
      head++;
    }
    if (head === queue.length) {
      queue.length = 0;
      head = 0;
    }
    if (waiting && queued < MAX_QUEUED) {
      const w = waiting;
      waiting = undefined;
      w();
    }
  };
  const drain = () => {
    scheduled = false;
    step(false);
    if (queued > 0 && !scheduled) {
      scheduled = true;
      setImmediate(drain);
    }
  };
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      try {
        check?.(chunk);
      } catch (err) {
        cb(err as Error);
        return;
      }
      queue.push(chunk);
      queued += chunk.length;
      if (!scheduled) {
        scheduled = true;
        setImmediate(drain);
      }
      if (queued < MAX_QUEUED) cb(null, chunk);
      else waiting = () => cb(null, chunk);
    },
    flush(cb: TransformCallback) {
      step(true);
      cb();
    },
  });
}

/** Hashes what streams through for `digest`'s algorithm; `result()` after the end. */
function hashTap(digest: string): { tap: Transform; result: () => string } {
  const h = hasherFor(digest);
  const algo = digest.split(":")[0];
  let done: string | undefined;
  return { tap: queuedTap((c) => h.update(c)), result: () => (done ??= `${algo}:${h.digest("hex")}`) };
}

/**
 * The uncompressed side of a layer in one stage: counts bytes against
 * `budget` (erroring the stream once it is exceeded), hashes them for the
 * diff ID and hands each chunk to `onData`.
 */
function uncompressedTap(
  budget: UnpackBudget | undefined,
  what: string,
  diffId: string,
  onData: ((chunk: Buffer) => void) | undefined,
): { tap: Transform; result: () => string } {
  const h = hasherFor(diffId);
  const algo = diffId.split(":")[0];
  let done: string | undefined;
  const tap = queuedTap(
    (c) => {
      h.update(c);
      onData?.(c);
    },
    (c) => budget?.add(c.length, what),
  );
  return { tap, result: () => (done ??= `${algo}:${h.digest("hex")}`) };
}

/** Options of {@link decompressLayer}. */
export interface DecompressOptions {
  /** Counts the uncompressed bytes (shared by the image's layers). */
  budget?: UnpackBudget;
  /**
   * Sees every uncompressed chunk, in order, before it is written (e.g. to
   * index the tar while it streams). The chunk is not verified yet: act on
   * it only after `decompressLayer` resolved. It is valid only during the
   * call (its buffer may be reused): copy what must be kept. Must not throw.
   */
  onData?: (chunk: Buffer) => void;
  /** Stops decompressing (`OCI_ABORTED`; the caller removes the output). */
  signal?: AbortSignal;
}

type ZlibWithZstd = typeof zlib & { createZstdDecompress?: () => Transform };

/**
 * The program that decompresses `compression` in a child process, or
 * undefined to use Node's zlib: gzip goes to ISA-L's `igzip` when it is
 * installed (about twice zlib's speed, on the other core); zstd to the
 * `zstd` program when Node's zlib lacks it. Set `SUPERMACHINE_GUNZIP=zlib`
 * to keep gzip in Node.
 */
export function decoderProgram(compression: Compression, nodeHasZstd: boolean): string[] | undefined {
  if (compression === "zstd" && !nodeHasZstd) return ["zstd", "-d", "-c", "-q"];
  if (compression !== "gzip" || process.env.SUPERMACHINE_GUNZIP === "zlib") return undefined;
  const bin = findProgram("igzip");
  return bin ? [bin, "-d", "-c"] : undefined;
}

/**
 * Decompresses the layer blob at `blobPath` into `output`, checking the
 * compressed bytes against `digest` and the uncompressed tar against
 * `diffId` on the way. gzip uses `igzip` when installed, else zlib; zstd
 * uses Node's zlib when it has it (Node >= 22.15) and the `zstd` program
 * otherwise (see {@link decoderProgram}). The uncompressed bytes
 * are counted against `opts.budget` (shared by the image's layers): a layer
 * that unpacks beyond it stops there with `OCI_LIMIT_EXCEEDED`.
 */
export async function decompressLayer(
  blobPath: string,
  digest: string,
  diffId: string,
  output: Writable,
  opts: DecompressOptions = {},
): Promise<void> {
  const compression = await blobCompression(blobPath);
  const compressed = hashTap(digest);
  const uncompressed = uncompressedTap(opts.budget, `layer ${digest}`, diffId, opts.onData);
  const input = createReadStream(blobPath, { highWaterMark: 4 * 1024 * 1024 });
  const z = zlib as ZlibWithZstd;
  const program = decoderProgram(compression, typeof z.createZstdDecompress === "function");
  if (program) {
    const [cmd, ...args] = program;
    const child = spawn(cmd!, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((resolve, reject) => {
      child.on("error", (err) =>
        reject(
          new LayerInvalidError(`cannot run ${cmd} to decompress ${digest}: ${err.message}`, { cause: err }),
        ),
      );
      child.on("close", resolve);
    });
    const kill = () => child.kill("SIGKILL");
    opts.signal?.addEventListener("abort", kill, { once: true });
    const results = await Promise.allSettled([
      pipeline(input, compressed.tap, child.stdin, { signal: opts.signal }),
      pipeline(child.stdout, uncompressed.tap, output, { signal: opts.signal }).catch((err: unknown) => {
        // Over the budget: stop the decoder now rather than let it run into a closed pipe.
        child.kill("SIGKILL");
        throw err;
      }),
      exited,
    ]);
    opts.signal?.removeEventListener("abort", kill);
    throwIfAborted(opts.signal);
    const over = results.find((r) => r.status === "rejected" && r.reason instanceof LimitExceededError);
    if (over) throw (over as PromiseRejectedResult).reason;
    const code = results[2].status === "fulfilled" ? results[2].value : undefined;
    if (results[2].status === "rejected") throw results[2].reason;
    checkDigests(compressed.result(), digest, null, "");
    if (code !== 0) throw new LayerInvalidError(`${cmd} failed on layer ${digest}: ${stderr.trim()}`);
    for (const r of results) if (r.status === "rejected") throw r.reason;
    checkDigests(compressed.result(), digest, uncompressed.result(), diffId);
    return;
  }
  const decoder: Transform =
    compression === "gzip"
      ? zlib.createGunzip({ chunkSize: 1024 * 1024 })
      : compression === "zstd"
        ? z.createZstdDecompress!()
        : new PassThrough();
  try {
    await pipeline(input, compressed.tap, decoder, uncompressed.tap, output, { signal: opts.signal });
  } catch (err) {
    throwIfAborted(opts.signal);
    if (err instanceof LimitExceededError) throw err;
    // A corrupt blob usually fails to decompress; report the digest if that is why.
    await checkBlob(blobPath, digest);
    throw new LayerInvalidError(`cannot decompress layer ${digest}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  checkDigests(compressed.result(), digest, uncompressed.result(), diffId);
}

/** Throws `OCI_DIGEST_MISMATCH` when the blob's bytes no longer match `digest` (read once more, after a decoding failure). */
export async function checkBlob(blobPath: string, digest: string): Promise<void> {
  const full = hasherFor(digest);
  for await (const c of createReadStream(blobPath, { highWaterMark: 4 * 1024 * 1024 }))
    full.update(c as Buffer);
  const actual = `${digest.split(":")[0]}:${full.digest("hex")}`;
  if (actual !== digest) throw new DigestMismatchError(`layer ${digest}`, digest, actual);
}

function checkDigests(actual: string, digest: string, actualDiff: string | null, diffId: string): void {
  if (actual !== digest) throw new DigestMismatchError(`layer ${digest}`, digest, actual);
  if (actualDiff !== null && actualDiff !== diffId) {
    throw new DigestMismatchError(`uncompressed layer ${digest} (diff ID)`, diffId, actualDiff);
  }
}
