import { createHash, type Hash } from "node:crypto";
import { DigestMismatchError, InvalidImageError } from "./errors.js";

/** Algorithms this package can verify. */
export type DigestAlgorithm = "sha256" | "sha512";

/** Splits and validates `algo:hex`; throws for algorithms we cannot verify. */
export function parseDigest(digest: string): { algorithm: DigestAlgorithm; hex: string } {
  const m = /^(sha256|sha512):([a-f0-9]+)$/.exec(digest);
  if (!m || (m[1] === "sha256" && m[2]!.length !== 64) || (m[1] === "sha512" && m[2]!.length !== 128)) {
    throw new InvalidImageError(`unsupported or malformed digest ${JSON.stringify(digest)}`, {
      details: { digest },
    });
  }
  return { algorithm: m[1] as DigestAlgorithm, hex: m[2]! };
}

/** A hash object for the algorithm of `digest`. */
export function hasherFor(digest: string): Hash {
  return createHash(parseDigest(digest).algorithm);
}

/** `sha256:<hex>` of `bytes`. */
export function sha256Digest(bytes: Uint8Array | string): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** Throws {@link DigestMismatchError} unless `bytes` hash to `expected`. */
export function verifyBytes(what: string, bytes: Uint8Array, expected: string): void {
  const { algorithm } = parseDigest(expected);
  const actual = `${algorithm}:${createHash(algorithm).update(bytes).digest("hex")}`;
  if (actual !== expected) throw new DigestMismatchError(what, expected, actual);
}
