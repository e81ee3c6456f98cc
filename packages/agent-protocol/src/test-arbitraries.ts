// Test helpers (not exported from the package): fast-check arbitraries for frames.
import fc from "fast-check";
import type { MessageTypeName } from "./constants.js";
import { encodeFrame } from "./encoder.js";
import { type FieldKind, type Frame, MESSAGE_FIELDS } from "./messages.js";

const str = fc.string({ unit: "binary", maxLength: 40 });

function fieldArb(kind: FieldKind): fc.Arbitrary<unknown> {
  switch (kind) {
    case "u8":
      return fc.integer({ min: 0, max: 0xff });
    case "u16":
      return fc.integer({ min: 0, max: 0xffff });
    case "u32":
      return fc.integer({ min: 0, max: 0xffffffff });
    case "i32":
      return fc.integer({ min: -0x80000000, max: 0x7fffffff });
    case "u64":
      return fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
    case "i64":
      return fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n });
    case "str":
      return str;
    case "strlist":
      return fc.array(str, { maxLength: 6 });
    case "bytes":
      return fc.uint8Array({ maxLength: 600 }).map((u) => Buffer.from(u));
  }
}

/** Any well-formed frame of any type. */
export const frameArb: fc.Arbitrary<Frame> = fc
  .constantFrom(...(Object.keys(MESSAGE_FIELDS) as MessageTypeName[]))
  .chain((type) => {
    const rec: Record<string, fc.Arbitrary<unknown>> = {
      type: fc.constant(type),
      stream: fc.integer({ min: 0, max: 0xffffffff }),
      flags: fc.integer({ min: 0, max: 0xff }),
    };
    for (const [prop, , kind] of MESSAGE_FIELDS[type]) rec[prop] = fieldArb(kind);
    return fc.record(rec) as unknown as fc.Arbitrary<Frame>;
  });

/** Splits `buf` into chunks at the given (sorted, deduplicated) cut points. */
export function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const pts = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of pts) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

/** Up to 12 random frames, encoded (payloads up to 1 MiB) and cut into chunks at random points. */
export const chunkedFramesArb: fc.Arbitrary<{ frames: Frame[]; chunks: Buffer[] }> = fc
  .tuple(fc.array(frameArb, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 30 }))
  .map(([frames, cuts]) => ({
    frames,
    chunks: splitAt(Buffer.concat(frames.map((f) => encodeFrame(f, 1 << 20))), cuts),
  }));
