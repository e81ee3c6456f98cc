import { randomBytes } from "node:crypto";

/** Bytes of entropy seed carried by HELLO's host context. */
export const HELLO_SEED_BYTES = 32;

/**
 * The optional trailing fields of HELLO (PROTOCOL.md section 3): the host's
 * wall-clock time in nanoseconds since the epoch and a fresh random seed.
 * The agent sets the guest clock and reseeds the guest kernel's RNG from
 * them, so VMs restored from one snapshot get the current time and do not
 * share random streams.
 */
export function hostContextBytes(nowMs: number = Date.now()): Buffer {
  const b = Buffer.alloc(8 + HELLO_SEED_BYTES);
  b.writeBigUInt64LE(BigInt(Math.round(nowMs * 1e6)), 0);
  randomBytes(HELLO_SEED_BYTES).copy(b, 8);
  return b;
}
