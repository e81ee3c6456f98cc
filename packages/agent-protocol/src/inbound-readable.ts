import { Readable } from "node:stream";
import { InboundBuffer } from "./flow-control.js";

/**
 * A Readable fed by one flow-controlled stream direction: window is returned
 * to the agent only as the consumer reads (see {@link InboundBuffer}).
 * Destroying it discards further data (the window keeps flowing so the guest
 * program is not blocked).
 */
export class InboundReadable extends Readable {
  /** Flow-control state (exposed for diagnostics and tests). */
  readonly inbound: InboundBuffer;

  constructor(window: number, grant: (increment: number) => void) {
    super({ highWaterMark: 1 });
    this.inbound = new InboundBuffer(window, (chunk) => this.push(chunk), grant);
  }

  override _read(): void {
    this.inbound.onRead();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.inbound.discard();
    cb(err);
  }

  /** Ends the stream (no more data will come) without an error. */
  finish(): void {
    this.inbound.end();
  }
}
