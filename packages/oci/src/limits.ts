import { InvalidOptionsError, LimitExceededError } from "./errors.js";

/**
 * Caps on what a registry or an image may make this package read, store or
 * hold in memory. Every field is optional in the options that take it;
 * missing fields get {@link DEFAULT_LIMITS}. A value above a cap fails with
 * `OCI_LIMIT_EXCEEDED` naming the field.
 */
export interface OciLimits {
  /** Largest manifest or index body, in bytes (registry responses and local files). Default 4 MiB. */
  maxManifestBytes: number;
  /** Largest image config blob, in bytes. Default 8 MiB. */
  maxConfigBytes: number;
  /** Largest token-server response, in bytes. Default 1 MiB. */
  maxTokenBytes: number;
  /**
   * Largest sum of the image's uncompressed layer tars, in bytes (checked
   * while decompressing, so a decompression bomb stops at this size; the
   * compressed sizes the manifest declares must fit too). Default 16 GiB.
   */
  maxUnpackedBytes: number;
  /** Most tar entries over all layers of an image. Default 1 000 000. */
  maxEntries: number;
  /** Longest entry path or link target, in bytes. Default 4096 (Linux `PATH_MAX`). */
  maxPathBytes: number;
  /** Largest sum of xattr names and values on one entry, in bytes. Default 64 KiB. */
  maxXattrBytes: number;
  /** Most xattrs on one entry. Default 128. */
  maxXattrs: number;
}

/** The defaults of {@link OciLimits}. */
export const DEFAULT_LIMITS: Readonly<OciLimits> = Object.freeze({
  maxManifestBytes: 4 * 1024 * 1024,
  maxConfigBytes: 8 * 1024 * 1024,
  maxTokenBytes: 1024 * 1024,
  maxUnpackedBytes: 16 * 1024 * 1024 * 1024,
  maxEntries: 1_000_000,
  maxPathBytes: 4096,
  maxXattrBytes: 64 * 1024,
  maxXattrs: 128,
});

/** Fills missing fields with {@link DEFAULT_LIMITS}; throws `OCI_INVALID_OPTIONS` for unknown fields and values that are not positive integers. */
export function resolveLimits(limits: Partial<OciLimits> | undefined): OciLimits {
  const out = { ...DEFAULT_LIMITS };
  for (const [key, value] of Object.entries(limits ?? {})) {
    if (value === undefined) continue;
    if (!(key in DEFAULT_LIMITS)) {
      throw new InvalidOptionsError(`unknown limit ${JSON.stringify(key)}`, { details: { limit: key } });
    }
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
      throw new InvalidOptionsError(`limits.${key} must be a positive integer, got ${String(value)}`, {
        details: { limit: key },
      });
    }
    out[key as keyof OciLimits] = value;
  }
  return out;
}

/** Formats a byte count for messages (`16 GiB`, `4 MiB`, `1500 bytes`). */
export function formatBytes(n: number): string {
  for (const [unit, size] of [
    ["GiB", 1024 ** 3],
    ["MiB", 1024 ** 2],
    ["KiB", 1024],
  ] as const) {
    if (n >= size && n % size === 0) return `${n / size} ${unit}`;
  }
  return `${n} bytes`;
}

/** Counts uncompressed bytes against {@link OciLimits.maxUnpackedBytes}, shared by all layers of an image. */
export class UnpackBudget {
  private used = 0;
  constructor(private readonly max: number) {}

  /** Bytes counted so far. */
  get bytes(): number {
    return this.used;
  }

  /** Bytes that may still be added before the cap is exceeded. */
  get remaining(): number {
    return Math.max(0, this.max - this.used);
  }

  /** Adds `n` bytes of layer `what`; throws {@link LimitExceededError} once the total is over the cap. */
  add(n: number, what: string): void {
    this.used += n;
    if (this.used > this.max) {
      throw new LimitExceededError(
        "maxUnpackedBytes",
        this.max,
        `${what}: the image's layers unpack to more than ${formatBytes(this.max)}`,
      );
    }
  }
}
