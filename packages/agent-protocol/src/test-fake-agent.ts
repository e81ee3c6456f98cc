// Test helper (not exported from the package): an in-process peer that plays
// the agent with this package's codec, over a Duplex pair.
import { Duplex, PassThrough } from "node:stream";
import type { MessageTypeName } from "./constants.js";
import { FrameDecoder } from "./decoder.js";
import { encodeFrame } from "./encoder.js";
import type { Frame, FrameOf, HelloMessage } from "./messages.js";

/** Two connected Duplex ends. */
export function duplexPair(): [Duplex, Duplex] {
  const a = new PassThrough();
  const b = new PassThrough();
  return [Duplex.from({ readable: a, writable: b }), Duplex.from({ readable: b, writable: a })];
}

/** The agent end: decodes what the host sends, sends raw frames back. */
export class FakeAgent {
  readonly hostSide: Duplex;
  readonly side: Duplex;
  private readonly dec = new FrameDecoder({ maxPayload: 1 << 20 });
  private readonly queue: Frame[] = [];
  private waiter: (() => void) | undefined;
  hello: HelloMessage | undefined;

  constructor() {
    [this.hostSide, this.side] = duplexPair();
    this.side.on("error", () => {});
    this.hostSide.on("error", () => {});
    this.side.on("data", (c: Buffer) => {
      this.queue.push(...this.dec.decode(c));
      this.waiter?.();
    });
  }

  /** Sends a frame to the host. */
  send(f: Frame): void {
    this.side.write(encodeFrame(f, 1 << 20));
  }

  /** Sends raw bytes to the host. */
  sendRaw(b: Buffer): void {
    this.side.write(b);
  }

  /** Next frame from the host (optionally skipping frames until one of `type`). */
  async next<T extends MessageTypeName>(type?: T, skipOthers = false): Promise<FrameOf<T>> {
    for (;;) {
      while (this.queue.length === 0) await new Promise<void>((r) => (this.waiter = r));
      const f = this.queue.shift() as Frame;
      if (!type || f.type === type) return f as FrameOf<T>;
      if (!skipOthers) throw new Error(`expected ${type}, got ${f.type} on stream ${f.stream}`);
    }
  }

  /** Frames received and not consumed yet. */
  pending(): Frame[] {
    return [...this.queue];
  }

  /** Answers the host's HELLO (features: pty, tcp, logs unless told). */
  async handshake(window = 262144, maxPayload = 65536, features = 11): Promise<void> {
    const h = await this.next("HELLO");
    this.hello = h;
    this.send({
      type: "HELLO_OK",
      stream: 0,
      flags: 0,
      version: 1,
      maxPayload,
      initialWindow: window,
      nonce: h.nonce,
      features,
      agentVersion: "fake",
    });
  }

  /** Lets in-process stream plumbing settle (a few event-loop turns; no timers). */
  async settle(): Promise<void> {
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  }
}
