import { asBuffer } from "./chunk-queue.js";
import { FLAG_END, WRITE_FLAG_MKDIRS } from "./constants.js";
import {
  AgentError,
  OperationAbortedError,
  OutputLimitError,
  ProtocolError,
  type SessionClosedError,
} from "./errors.js";
import { SendWindow } from "./flow-control.js";
import { InboundReadable } from "./inbound-readable.js";
import type { Frame, ReadFileMessage, WorkloadLogsMessage } from "./messages.js";
import type { StreamHandler, StreamHost } from "./stream-host.js";

/** Options of `writeFile`. */
export interface WriteFileOptions {
  /** File mode, applied exactly (default 0o644). */
  mode?: number;
  /** Create missing parent directories. */
  mkdirs?: boolean;
  /** Aborting cancels the transfer (RESET) and rejects with `OperationAbortedError`. */
  signal?: AbortSignal;
}

/** Data accepted by `writeFile`: a Buffer, a Readable, or any async iterable of byte chunks. */
export type WriteFileSource = Uint8Array | string | AsyncIterable<Uint8Array | string>;

/** `FILE_INFO` of a file being read. */
export interface FileInfo {
  /** Size in bytes when the agent opened it. */
  size: number;
  /** Permission bits (`st_mode & 07777`). */
  mode: number;
}

const swallow = () => {};

/** One WRITE_FILE stream (internal; use `AgentSession.writeFile`). */
export class WriteFileOp implements StreamHandler {
  readonly id: number;
  private readonly window: SendWindow;
  private done = false;
  private readonly result: Promise<bigint>;
  private resolveResult!: (v: bigint) => void;
  private rejectResult!: (err: unknown) => void;

  constructor(
    private readonly host: StreamHost,
    path: string,
    opts: WriteFileOptions,
  ) {
    this.result = new Promise((res, rej) => {
      this.resolveResult = res;
      this.rejectResult = rej;
    });
    this.result.catch(swallow);
    this.window = new SendWindow(host.agentWindow);
    this.id = host.open(this, {
      type: "WRITE_FILE",
      path,
      mode: opts.mode ?? 0o644,
      writeFlags: opts.mkdirs ? WRITE_FLAG_MKDIRS : 0,
    });
  }

  /** Streams `source` and resolves with the number of bytes the agent wrote. */
  async run(source: WriteFileSource, signal?: AbortSignal): Promise<number> {
    const onAbort = () =>
      this.cancel(new OperationAbortedError("writeFile aborted", { cause: signal?.reason }));
    if (signal?.aborted) onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const alive = () => !this.done;
      if (typeof source === "string" || source instanceof Uint8Array) {
        await this.host.sendData(this.id, "FILE_DATA", toBytes(source), true, this.window, alive);
      } else {
        try {
          for await (const chunk of source) {
            if (this.done) break;
            await this.host.sendData(this.id, "FILE_DATA", toBytes(chunk), false, this.window, alive);
          }
        } catch (err) {
          this.cancel(err);
        }
        await this.host.sendData(this.id, "FILE_DATA", Buffer.alloc(0), true, this.window, alive);
      }
      return Number(await this.result);
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Resets the stream and rejects the operation with `err`. */
  private cancel(err: unknown): void {
    if (!this.done) {
      try {
        this.host.sendControl({ type: "RESET", stream: this.id, flags: 0 });
      } catch {
        // session already closed
      }
    }
    this.finish();
    this.rejectResult(err);
  }

  /** @internal */
  onFrame(frame: Frame): void {
    switch (frame.type) {
      case "WINDOW":
        this.window.add(frame.increment);
        return;
      case "OK":
        this.finish();
        this.resolveResult(frame.value);
        return;
      case "ERROR":
        this.finish();
        this.rejectResult(
          new AgentError(frame.code, frame.errno, frame.message, { details: { stream: this.id } }),
        );
        return;
      default:
        throw new ProtocolError("UNKNOWN_TYPE", `unexpected ${frame.type} on write-file stream ${this.id}`);
    }
  }

  /** @internal */
  onSessionClose(err: SessionClosedError): void {
    this.finish();
    this.rejectResult(err);
  }

  private finish(): void {
    this.done = true;
    this.window.fail(new Error("write-file stream ended"));
  }
}

function toBytes(chunk: Uint8Array | string): Buffer {
  return typeof chunk === "string" ? Buffer.from(chunk) : asBuffer(chunk);
}

/**
 * A file streamed out of the guest (READ_FILE), or the workload's log tail
 * (WORKLOAD_LOGS, answered the same way). A Readable of its bytes;
 * `info` resolves with size and mode, `total` with the agent's final `OK`
 * value (bytes sent for a file; bytes the workload ever wrote for logs).
 * Agent errors (`NOT_FOUND`, `IO`) and session closure are emitted as
 * stream errors. Destroying it early cancels the transfer in the guest.
 */
export class FileReadStream extends InboundReadable implements StreamHandler {
  /** Stream id. */
  readonly id: number;
  /** Resolves with the file's size and mode (rejects like the stream). */
  readonly info: Promise<FileInfo>;
  /** Resolves with the value of the agent's final `OK` (rejects like the stream). */
  readonly total: Promise<bigint>;
  private resolveInfo!: (i: FileInfo) => void;
  private rejectInfo!: (err: unknown) => void;
  private resolveTotal!: (v: bigint) => void;
  private rejectTotal!: (err: unknown) => void;
  private done = false;

  constructor(
    private readonly host: StreamHost,
    /** A path (READ_FILE), or the opening request itself. */
    request: string | ReadFileMessage | WorkloadLogsMessage,
  ) {
    super(host.hostWindow, (increment) => {
      if (!this.done) host.sendControl({ type: "WINDOW", stream: this.id, flags: 0, increment });
    });
    this.info = new Promise((res, rej) => {
      this.resolveInfo = res;
      this.rejectInfo = rej;
    });
    this.info.catch(swallow);
    this.total = new Promise((res, rej) => {
      this.resolveTotal = res;
      this.rejectTotal = rej;
    });
    this.total.catch(swallow);
    this.id = host.open(this, typeof request === "string" ? { type: "READ_FILE", path: request } : request);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.done) {
      try {
        this.host.sendControl({ type: "RESET", stream: this.id, flags: 0 });
      } catch {
        // session already closed
      }
      const why = err ?? new OperationAbortedError("read cancelled");
      this.rejectInfo(why);
      this.rejectTotal(why);
    }
    super._destroy(err, cb);
  }

  /** @internal */
  onFrame(frame: Frame): void {
    switch (frame.type) {
      case "FILE_INFO":
        this.resolveInfo({ size: Number(frame.size), mode: frame.mode });
        return;
      case "FILE_DATA":
        this.inbound.receive(asBuffer(frame.data), (frame.flags & FLAG_END) !== 0);
        return;
      case "OK":
        this.done = true;
        this.resolveTotal(frame.value);
        this.finish();
        return;
      case "ERROR": {
        this.done = true;
        const err = new AgentError(frame.code, frame.errno, frame.message, { details: { stream: this.id } });
        this.rejectInfo(err);
        this.rejectTotal(err);
        this.destroy(err);
        return;
      }
      default:
        throw new ProtocolError("UNKNOWN_TYPE", `unexpected ${frame.type} on read-file stream ${this.id}`);
    }
  }

  /** @internal */
  onSessionClose(err: SessionClosedError): void {
    if (this.done) return;
    this.done = true;
    this.rejectInfo(err);
    this.rejectTotal(err);
    this.destroy(err);
  }
}

/** Collects a Readable into one Buffer, failing with `OutputLimitError` past `maxBytes`. */
export async function collect(
  stream: NodeJS.ReadableStream & { destroy(err?: Error): void },
  maxBytes = Number.POSITIVE_INFINITY,
  what = "output",
): Promise<Buffer> {
  const parts: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) {
      const err = new OutputLimitError(`${what} exceeded ${maxBytes} bytes`, { details: { maxBytes } });
      stream.destroy();
      throw err;
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts, total);
}
