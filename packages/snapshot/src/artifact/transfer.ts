import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { type Readable, Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { SnapshotError } from "../errors.js";
import type { Descriptor } from "./format.js";
import type { SnapshotRegistry } from "./registry.js";

/** A blob larger than `cap` is refused before a byte is read. */
function checkCap(desc: Descriptor, cap: number, what: string): void {
  if (desc.size > cap) {
    throw new SnapshotError(
      "SNAPSHOT_LIMIT_EXCEEDED",
      `snapshot artifact: ${what} is ${desc.size} bytes, more than the ${cap} allowed`,
      { details: { limit: what, size: desc.size, max: cap } },
    );
  }
}

/** Counts and hashes a stream, failing as soon as it runs past `desc.size`. */
function verifier(desc: Descriptor, what: string) {
  const hash = createHash("sha256");
  let bytes = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      if (bytes > desc.size) {
        cb(
          new SnapshotError(
            "SNAPSHOT_DIGEST_MISMATCH",
            `snapshot artifact: ${what} (${desc.digest}) is longer than the ${desc.size} bytes its descriptor names`,
            { details: { what, digest: desc.digest, problem: "size" } },
          ),
        );
        return;
      }
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  const check = () => {
    const actual = `sha256:${hash.digest("hex")}`;
    if (actual !== desc.digest || bytes !== desc.size) {
      throw new SnapshotError(
        "SNAPSHOT_DIGEST_MISMATCH",
        `snapshot artifact: ${what} has digest ${actual} (${bytes} bytes), its descriptor names ${desc.digest} (${desc.size} bytes)`,
        { details: { what, digest: desc.digest, actual, size: bytes, expectedSize: desc.size } },
      );
    }
  };
  return { stream, check, bytes: () => bytes };
}

/**
 * Downloads blob `desc` to `path`, refusing it when its descriptor is over
 * `cap`, and verifying size and sha256 on the way in. On a mismatch the
 * caller discards the file (it lies in a build directory that is removed).
 */
export async function downloadBlob(
  registry: SnapshotRegistry,
  desc: Descriptor,
  path: string,
  cap: number,
  what: string,
  onBytes?: (n: number) => void,
): Promise<void> {
  checkCap(desc, cap, what);
  const { body } = await registry.openBlob(desc.digest);
  const v = verifier(desc, what);
  const progress = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      onBytes?.(chunk.length);
      cb(null, chunk);
    },
  });
  await pipeline(body, v.stream, progress, createWriteStream(path, { flags: "wx", mode: 0o600 }));
  v.check();
}

/** Downloads a small blob into memory (at most `cap` bytes), verified like {@link downloadBlob}. */
export async function downloadBytes(
  registry: SnapshotRegistry,
  desc: Descriptor,
  cap: number,
  what: string,
): Promise<Buffer> {
  checkCap(desc, cap, what);
  const { body } = await registry.openBlob(desc.digest);
  const v = verifier(desc, what);
  const chunks: Buffer[] = [];
  await pipeline(
    body,
    v.stream,
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        chunks.push(chunk);
        cb();
      },
    }),
  );
  v.check();
  return Buffer.concat(chunks);
}

/** A file to upload as a blob: a function opening a fresh stream, for retries. */
export function fileBody(path: string): () => Readable {
  return () => createReadStream(path);
}
