import { Duplex } from "node:stream";
import { asBuffer } from "./chunk-queue.js";
import { FLAG_END } from "./constants.js";
import { AgentError, ProtocolError, type SessionClosedError } from "./errors.js";
import { InboundBuffer, SendWindow } from "./flow-control.js";
import type { Frame } from "./messages.js";
import type { StreamHandler, StreamHost } from "./stream-host.js";

const swallow = () => {};

/**
 * A TCP connection to a port inside the guest, as a Duplex. Half-close works
 * both ways: `end()` shuts down the guest socket's read side (TCP_DATA END);
 * the guest peer's shutdown ends this Readable. `destroy()` resets it.
 */
export class TcpStream extends Duplex implements StreamHandler {
  /** Stream id. */
  readonly id: number;
  /** Resolves once the agent reports CONNECTED. */
  readonly connected: Promise<void>;
  /** Flow-control state of the inbound direction (diagnostics, tests). */
  readonly inbound: InboundBuffer;
  private resolveConnected!: () => void;
  private rejectConnected!: (err: unknown) => void;
  private readonly window: SendWindow;
  private done = false;
  private isConnected = false;

  constructor(
    private readonly host: StreamHost,
    port: number,
    hostName: string,
  ) {
    super({ allowHalfOpen: true, readableHighWaterMark: 1, writableHighWaterMark: 64 * 1024 });
    this.connected = new Promise((res, rej) => {
      this.resolveConnected = res;
      this.rejectConnected = rej;
    });
    this.connected.catch(swallow);
    this.window = new SendWindow(host.agentWindow);
    this.inbound = new InboundBuffer(
      host.hostWindow,
      (chunk) => this.push(chunk),
      (increment) => {
        if (!this.done) host.sendControl({ type: "WINDOW", stream: this.id, flags: 0, increment });
      },
    );
    this.id = host.open(this, { type: "TCP_CONNECT", port, host: hostName });
  }

  override _read(): void {
    this.inbound.onRead();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.host.sendData(this.id, "TCP_DATA", chunk, false, this.window, () => !this.done).then(() => cb(), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.host
      .sendData(this.id, "TCP_DATA", Buffer.alloc(0), true, this.window, () => !this.done)
      .then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.done) {
      try {
        this.host.sendControl({ type: "RESET", stream: this.id, flags: 0 });
      } catch {
        // session already closed
      }
    }
    this.inbound.discard();
    cb(err);
  }

  /** @internal */
  onFrame(frame: Frame): void {
    switch (frame.type) {
      case "CONNECTED":
        this.isConnected = true;
        this.resolveConnected();
        return;
      case "TCP_DATA":
        this.inbound.receive(asBuffer(frame.data), (frame.flags & FLAG_END) !== 0);
        return;
      case "WINDOW":
        this.window.add(frame.increment);
        return;
      case "OK":
        this.finish();
        this.inbound.end();
        return;
      case "ERROR": {
        this.finish();
        const err = new AgentError(frame.code, frame.errno, frame.message, { details: { stream: this.id } });
        if (this.isConnected) this.destroy(err);
        else {
          this.rejectConnected(err);
          this.destroy();
        }
        return;
      }
      default:
        throw new ProtocolError("UNKNOWN_TYPE", `unexpected ${frame.type} on tcp stream ${this.id}`);
    }
  }

  /** @internal */
  onSessionClose(err: SessionClosedError): void {
    if (this.done) return;
    this.finish();
    if (this.isConnected) this.destroy(err);
    else {
      this.rejectConnected(err);
      this.destroy();
    }
  }

  private finish(): void {
    this.done = true;
    this.window.fail(new Error("tcp stream ended"));
  }
}
