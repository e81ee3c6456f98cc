import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FrameDecoder } from "./decoder.js";
import { describeFrame } from "./describe.js";
import { encodeFrame } from "./encoder.js";
import { ProtocolError } from "./errors.js";
import { DATA_TYPES, type Frame } from "./messages.js";
import { chunkedFramesArb, frameArb, splitAt } from "./test-arbitraries.js";

const BIG = 1 << 20;

/** The payload bytes of a data frame (one of DATA_TYPES). */
const dataOf = (f: Frame): Buffer => (f as unknown as { data: Buffer }).data;

/** Feeds chunks to a decoder; returns frames and the error (if any). Asserts only ProtocolError is thrown. */
function feed(dec: FrameDecoder, chunks: Buffer[]): { frames: Frame[]; error?: ProtocolError } {
  const frames: Frame[] = [];
  for (const c of chunks) {
    try {
      frames.push(...dec.decode(c));
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      return { frames, error: err };
    }
  }
  return { frames };
}

describe("codec properties", () => {
  it("decode(encode(frame)) is the identity", () => {
    fc.assert(
      fc.property(frameArb, (f) => {
        const bytes = encodeFrame(f, BIG);
        const [back, ...rest] = new FrameDecoder({ maxPayload: BIG }).decode(bytes);
        expect(rest).toHaveLength(0);
        if (!back) throw new Error("no frame decoded");
        expect(describeFrame(back)).toBe(describeFrame(f));
        expect(encodeFrame(back, BIG).equals(bytes)).toBe(true);
      }),
      { numRuns: 1500 },
    );
  });

  it("a stream of frames split at random points decodes to the same frames", () => {
    fc.assert(
      fc.property(chunkedFramesArb, ({ frames, chunks }) => {
        const { frames: got, error } = feed(new FrameDecoder({ maxPayload: BIG }), chunks);
        expect(error).toBeUndefined();
        expect(got.map(describeFrame)).toEqual(frames.map(describeFrame));
      }),
      { numRuns: 400 },
    );
  });

  it("splitData: data frames come in pieces whose bytes and END are the whole frames', the rest unchanged", () => {
    /** Joins consecutive pieces back into frames: a data frame ends at its END or when the next frame is something else. */
    const join = (pieces: Frame[], whole: Frame[]): Frame[] => {
      const out: Frame[] = [];
      let i = 0;
      for (const w of whole) {
        if (!DATA_TYPES.has(w.type) || dataOf(w).length === 0) {
          out.push(pieces[i++] as Frame);
          continue;
        }
        const want = dataOf(w).length;
        const parts: Buffer[] = [];
        let got = 0;
        let last: Frame | undefined;
        while (got < want) {
          last = pieces[i++] as Frame;
          expect(last.type).toBe(w.type);
          expect(last.stream).toBe(w.stream);
          const d = dataOf(last as Frame);
          expect(d.length).toBeGreaterThan(0);
          if (got + d.length < want) expect(last.flags & 1).toBe(0); // END only on the last piece
          parts.push(d);
          got += d.length;
        }
        out.push({ ...(last as Frame), data: Buffer.concat(parts) } as Frame);
      }
      expect(i).toBe(pieces.length);
      return out;
    };
    fc.assert(
      fc.property(chunkedFramesArb, ({ frames, chunks }) => {
        const { frames: pieces, error } = feed(
          new FrameDecoder({ maxPayload: BIG, splitData: true }),
          chunks,
        );
        expect(error).toBeUndefined();
        expect(join(pieces, frames).map(describeFrame)).toEqual(frames.map(describeFrame));
        // each piece is a view of a chunk, never a copy
        for (const p of pieces) {
          if (!DATA_TYPES.has(p.type)) continue;
          const d = dataOf(p);
          if (d.length > 0) expect(chunks.some((c) => c.buffer === d.buffer)).toBe(true);
        }
      }),
      { numRuns: 400 },
    );
  });

  it("garbage in random chunks: strict mode throws only ProtocolError, scan mode never throws", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.array(fc.nat(), { maxLength: 20 }), (u, cuts) => {
        const chunks = splitAt(Buffer.from(u), cuts);
        feed(new FrameDecoder(), chunks);
        const scan = new FrameDecoder({ scan: true });
        for (const c of chunks) scan.decode(c);
        expect(scan.bufferedBytes).toBeLessThanOrEqual(u.length);
      }),
      { numRuns: 500 },
    );
  });

  it("corrupted and truncated frame streams fail with ProtocolError or wait for more, never anything else", () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { minLength: 1, maxLength: 6 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
        fc.nat(),
        fc.array(fc.nat(), { maxLength: 10 }),
        (frames, flips, cutEnd, cuts) => {
          const bytes = Buffer.from(Buffer.concat(frames.map((f) => encodeFrame(f, BIG))));
          for (const [pos, val] of flips) bytes[pos % bytes.length] = val;
          const truncated = bytes.subarray(0, cutEnd % (bytes.length + 1));
          const { error } = feed(new FrameDecoder({ maxPayload: 4096 }), splitAt(truncated, cuts));
          if (error)
            expect(["BAD_FRAME", "FRAME_TOO_LARGE", "UNKNOWN_TYPE", "BAD_PAYLOAD"]).toContain(error.reason);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("scan mode finds the accepted frame behind any garbage, in any chunking", () => {
    const hello: Frame = {
      type: "HELLO_OK",
      stream: 0,
      flags: 0,
      version: 1,
      maxPayload: 65536,
      initialWindow: 262144,
      nonce: 0xfeedfacecafebeefn,
      features: 3,
      agentVersion: "test",
    };
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 3000 }),
        fc.array(frameArb, { maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (garbage, stale, cuts) => {
          const bytes = Buffer.concat([
            Buffer.from(garbage),
            ...stale.map((f) => encodeFrame(f, BIG).subarray(0, 40)),
            encodeFrame(hello),
            encodeFrame({ type: "PONG", stream: 0, flags: 0, token: 5n }),
          ]);
          const dec = new FrameDecoder({
            scan: true,
            accept: (f) => f.type === "HELLO_OK" && f.nonce === 0xfeedfacecafebeefn,
          });
          const got: Frame[] = [];
          for (const c of splitAt(bytes, cuts)) {
            dec.push(c);
            for (let f = dec.next(); f; f = dec.next()) {
              got.push(f);
              if (dec.scanMode) dec.setScanMode(false);
            }
          }
          expect(got.map((f) => f.type)).toEqual(["HELLO_OK", "PONG"]);
        },
      ),
      { numRuns: 300 },
    );
  });
});
