import { spawn } from "node:child_process";
import { open } from "node:fs/promises";
import { blobCompression, checkBlob, type DecompressOptions, decompressLayer } from "./decompress.js";
import { hasherFor } from "./digest.js";
import { DigestMismatchError, LayerInvalidError, throwIfAborted } from "./errors.js";
import { FileRegion } from "./file-region.js";
import { findProgram } from "./find-program.js";

/** Most bytes read back per step while a layer written by a decoder is hashed and listed. */
const READ_BACK = 4 * 1024 * 1024;

/**
 * The decoder that writes a layer's tar itself, with its arguments: `igzip`
 * for gzip, `zstd` for zstd (when installed; `SUPERMACHINE_GUNZIP=zlib`
 * keeps gzip in Node), under `prlimit` (to cap the file it writes).
 */
function fileDecoder(compression: "gzip" | "zstd" | "none"): string[] | undefined {
  const prlimit = findProgram("prlimit");
  if (!prlimit) return undefined;
  if (compression === "gzip" && process.env.SUPERMACHINE_GUNZIP !== "zlib") {
    const igzip = findProgram("igzip");
    return igzip ? [prlimit, igzip, "-d", "-c"] : undefined;
  }
  if (compression === "zstd") {
    const zstd = findProgram("zstd");
    return zstd ? [prlimit, zstd, "-d", "-c", "-q"] : undefined;
  }
  return undefined;
}

/**
 * Decompresses the layer blob at `blobPath` into the file `path`, appended
 * at its end, which must be at `base`; returns the bytes written. The
 * decoder program writes the file itself (no copy through Node), limited
 * by `RLIMIT_FSIZE` to what `opts.budget` has left, so a decompression
 * bomb stops at the cap (`OCI_LIMIT_EXCEEDED`) without filling the disk.
 * The bytes are read back (from the page cache) as the decoder writes
 * them, to hash them for `diffId` and hand them to `opts.onData`, so what
 * is listed is what the file holds. The compressed digest is checked only when decoding fails
 * (the pull stored the blob under its verified digest; a blob changed since
 * then either fails to decode or yields a tar that fails the diff ID, which
 * covers every byte used). Without a decoder program (or `prlimit`) this is
 * {@link decompressLayer} into a {@link FileRegion}.
 */
export async function decompressLayerToFile(
  blobPath: string,
  digest: string,
  diffId: string,
  path: string,
  base: number,
  opts: DecompressOptions = {},
): Promise<number> {
  const compression = await blobCompression(blobPath);
  const program = fileDecoder(compression);
  if (!program) return streamInto(blobPath, digest, diffId, path, base, opts);
  throwIfAborted(opts.signal);
  const what = `layer ${digest}`;
  const limit = base + (opts.budget ? opts.budget.remaining : Number.MAX_SAFE_INTEGER - base);
  const [prlimit, ...cmd] = program;
  const input = await open(blobPath, "r");
  const output = await open(path, "a");
  const reader = await open(path, "r");
  try {
    const child = spawn(prlimit!, [`--fsize=${limit}`, "--", ...cmd], {
      stdio: [input.fd, output.fd, "pipe"],
    });
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => {
      if (stderr.length < 4096) stderr += d.toString();
    });
    let status: Status | undefined;
    const exited = new Promise<Status>((resolve) => {
      child.on("error", (err) => resolve({ code: null, signal: null, error: err }));
      child.on("close", (code, signal) => resolve({ code, signal }));
    }).then((s) => {
      status = s;
      return s;
    });
    const kill = () => child.kill("SIGKILL");
    opts.signal?.addEventListener("abort", kill, { once: true });
    const hash = hasherFor(diffId);
    let pos = 0;
    try {
      // Hash and list what the decoder has written so far, while it goes on
      // writing: a read returns what is there (up to the file's size). One
      // buffer, reused: the hash and onData are done with a chunk on return.
      const buf = Buffer.allocUnsafe(READ_BACK);
      for (;;) {
        const done = status !== undefined;
        const { bytesRead } = await reader.read(buf, 0, READ_BACK, base + pos);
        if (bytesRead > 0) {
          const chunk = buf.subarray(0, bytesRead);
          pos += bytesRead;
          opts.budget?.add(bytesRead, what);
          hash.update(chunk);
          opts.onData?.(chunk);
          if (bytesRead === READ_BACK || done) continue;
        } else if (done) break;
        // Less than a full buffer was there: let the decoder write more first.
        await Promise.race([exited, new Promise((r) => setTimeout(r, 1))]);
      }
    } catch (err) {
      kill();
      await exited;
      throw err;
    } finally {
      opts.signal?.removeEventListener("abort", kill);
    }
    throwIfAborted(opts.signal);
    const s = status!;
    if (s.error) {
      throw new LayerInvalidError(`cannot run ${cmd[0]} to decompress ${digest}: ${s.error.message}`, {
        cause: s.error,
      });
    }
    if (s.signal === "SIGXFSZ" || (opts.budget && base + pos >= limit && s.code !== 0)) {
      opts.budget?.add(opts.budget.remaining + 1, what); // throws OCI_LIMIT_EXCEEDED
    }
    if (s.code !== 0) {
      await checkBlob(blobPath, digest);
      const how = s.signal ? `killed by ${s.signal}` : `exited ${s.code}`;
      throw new LayerInvalidError(`cannot decompress layer ${digest}: ${cmd[0]} ${how}: ${stderr.trim()}`);
    }
    const actual = `${diffId.split(":")[0]}:${hash.digest("hex")}`;
    if (actual !== diffId)
      throw new DigestMismatchError(`uncompressed layer ${digest} (diff ID)`, diffId, actual);
    return pos;
  } finally {
    await input.close();
    await output.close();
    await reader.close();
  }
}

interface Status {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

/** The streaming path: Node decodes and writes the file through a {@link FileRegion}. */
async function streamInto(
  blobPath: string,
  digest: string,
  diffId: string,
  path: string,
  base: number,
  opts: DecompressOptions,
): Promise<number> {
  const fh = await open(path, "r+");
  const region = new FileRegion(fh.fd, base);
  try {
    await decompressLayer(blobPath, digest, diffId, region, opts);
  } finally {
    await region.settled();
    await fh.close();
  }
  return region.size;
}
