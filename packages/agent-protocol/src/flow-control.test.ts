import { describe, expect, it } from "vitest";
import { InboundBuffer } from "./flow-control.js";

/** An InboundBuffer with a consumer that takes one chunk, then waits until `read()`. */
function paused(window: number) {
  const got: Buffer[] = [];
  let granted = 0;
  const inbound = new InboundBuffer(
    window,
    (chunk) => {
      if (chunk) got.push(chunk);
      return false; // like a Readable with highWaterMark 1: one chunk, then wait for _read
    },
    (n) => {
      granted += n;
    },
  );
  inbound.onRead(); // the consumer asks for the first chunk
  const readAll = () => {
    for (let i = 0; i < 1_000_000 && inbound.queuedChunks > 0; i++) inbound.onRead();
    inbound.onRead();
  };
  return { inbound, got, readAll, granted: () => granted };
}

describe("InboundBuffer", () => {
  it("a peer sending its window as 1-byte frames makes the host hold a few chunks, not a Buffer per byte", () => {
    const window = 4 * 1024 * 1024;
    const n = 200_000;
    const { inbound, got, readAll } = paused(window);
    const sent = Buffer.alloc(n);
    for (let i = 0; i < n; i++) {
      sent[i] = i % 251;
      inbound.receive(sent.subarray(i, i + 1), false);
    }
    // 200 000 bytes gathered into 16 KiB buffers: about 13 chunks (plus the first, handed on at once)
    expect(inbound.queuedChunks).toBeLessThanOrEqual(Math.ceil(n / (16 * 1024)) + 2);
    expect(inbound.bufferedBytes).toBe(n);
    readAll();
    expect(Buffer.concat(got).equals(sent)).toBe(true);
    expect(inbound.queuedChunks).toBe(0);
  });

  it("small chunks mixed with large ones keep their order; large chunks are handed on as they came", () => {
    const { inbound, got, readAll } = paused(1 << 20);
    const parts: Buffer[] = [];
    for (let i = 0; i < 300; i++) {
      const size = i % 7 === 0 ? 5000 + i : 1 + (i % 13);
      const b = Buffer.alloc(size, i % 256);
      parts.push(b);
      inbound.receive(b, false);
    }
    readAll();
    expect(Buffer.concat(got).equals(Buffer.concat(parts))).toBe(true);
    // every large chunk reached the consumer as the same object (no copy)
    for (const p of parts.filter((b) => b.length >= 5000)) expect(got).toContain(p);
  });

  it("returns the window as the consumer reads, gathered or not", () => {
    const window = 64 * 1024;
    const { inbound, readAll, granted } = paused(window);
    for (let i = 0; i < window; i++) inbound.receive(Buffer.of(i & 0xff), false);
    expect(granted()).toBe(0); // nothing read yet but the first byte
    readAll();
    // granted back in steps of half the window at least: the peer may send that much again, not more
    expect(granted()).toBeGreaterThanOrEqual(window / 2);
    expect(() => inbound.receive(Buffer.alloc(granted()), false)).not.toThrow();
    expect(() => inbound.receive(Buffer.of(0), false)).toThrow(/window/);
  });
});
