import { describe, expect, it } from "vitest";
import { FrameDecoder } from "./decoder.js";
import { encodeFrame, encodeHeader, encodeRawFrame } from "./encoder.js";
import { ProtocolError } from "./errors.js";

const helloOk = (nonce: bigint) =>
  encodeFrame({
    type: "HELLO_OK",
    stream: 0,
    flags: 0,
    version: 1,
    maxPayload: 65536,
    initialWindow: 262144,
    nonce,
    features: 0,
    agentVersion: "x",
  });

describe("FrameDecoder", () => {
  it("decodes byte by byte", () => {
    const bytes = encodeFrame({ type: "STDOUT", stream: 9, flags: 1, data: Buffer.from("hello") });
    const dec = new FrameDecoder();
    const got = [];
    for (const b of bytes) got.push(...dec.decode(Buffer.from([b])));
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ type: "STDOUT", stream: 9, flags: 1 });
    expect(dec.bufferedBytes).toBe(0);
  });

  it("rejects an oversized frame from its header alone, and stays failed", () => {
    const dec = new FrameDecoder({ maxPayload: 4096 });
    expect(() => dec.decode(encodeHeader(0x13, 0, 1, 4097))).toThrow(
      expect.objectContaining({ reason: "FRAME_TOO_LARGE", code: "PROTOCOL_FRAME_TOO_LARGE" }),
    );
    expect(() => dec.decode(encodeFrame({ type: "PING", stream: 0, flags: 0, token: 1n }))).toThrow(
      ProtocolError,
    );
  });

  it("accepts a payload of exactly maxPayload", () => {
    const dec = new FrameDecoder({ maxPayload: 4096 });
    const f = dec.decode(encodeRawFrame(0x13, 0, 1, Buffer.alloc(4096)));
    expect(f).toHaveLength(1);
  });

  it("rejects bad magic and unknown types", () => {
    expect(() => new FrameDecoder().decode(Buffer.from("00".repeat(12), "hex"))).toThrow(
      expect.objectContaining({ reason: "BAD_FRAME" }),
    );
    expect(() => new FrameDecoder().decode(encodeRawFrame(0x99, 0, 0, Buffer.alloc(0)))).toThrow(
      expect.objectContaining({ reason: "UNKNOWN_TYPE" }),
    );
  });

  it("scan mode skips stale frames and garbage until the accepted frame", () => {
    const dec = new FrameDecoder({ scan: true, accept: (f) => f.type === "HELLO_OK" && f.nonce === 7n });
    const stream = Buffer.concat([
      Buffer.from("garbage SM and more"),
      helloOk(6n), // an earlier session's answer: discarded
      encodeFrame({ type: "STDOUT", stream: 3, flags: 0, data: Buffer.from("old") }),
      helloOk(7n),
      encodeFrame({ type: "EVENT", stream: 0, flags: 0, kind: 1, value: 0, detail: "" }),
    ]);
    dec.push(stream);
    expect(dec.next()).toMatchObject({ type: "HELLO_OK", nonce: 7n });
    dec.setScanMode(false);
    expect(dec.next()).toMatchObject({ type: "EVENT", kind: 1 });
    expect(dec.next()).toBeUndefined();
  });

  it("scan mode is not fooled by a false header announcing a long payload", () => {
    // A stale partial header claims 60000 bytes; the real HELLO_OK follows right after.
    const dec = new FrameDecoder({ scan: true, accept: (f) => f.type === "HELLO_OK" && f.nonce === 1n });
    dec.push(encodeHeader(0x13, 0, 1, 60000));
    dec.push(helloOk(1n));
    expect(dec.next()).toMatchObject({ type: "HELLO_OK", nonce: 1n });
  });

  it("scan mode keeps its buffer bounded under a flood of garbage", () => {
    const dec = new FrameDecoder({ scan: true, accept: () => false });
    for (let i = 0; i < 200; i++) {
      dec.push(Buffer.alloc(8192, i % 2 ? 0x53 : 0x4d));
      expect(dec.next()).toBeUndefined();
    }
    expect(dec.bufferedBytes).toBeLessThanOrEqual(65536 + 12 + 8192);
  });
});
