import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import { VmmError } from "../errors.js";
import { connectUnix } from "../unix-connect.js";
import type { QmpCommand, QmpCommandMap, QmpEvent } from "./qmp-types.js";

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
  command: string;
}

/** Options of {@link QmpClient.connect}. */
export interface QmpConnectOptions {
  /** Give up after this long (ms). Default 10 000. */
  timeoutMs?: number;
  /** Stop trying when this resolves/rejects (e.g. the QEMU process exited). */
  abort?: Promise<unknown>;
  /**
   * When the socket closes, the error pending commands get: awaited for up to
   * one second (so a QEMU exit can be reported as such), else a generic one.
   */
  closeReason?: () => Promise<Error>;
}

/**
 * A typed QMP (QEMU Machine Protocol) client over a unix socket.
 *
 * Commands are sent one at a time in order; each gets a timeout and a typed
 * result. Events are emitted as `event` and can be awaited with
 * {@link QmpClient.waitForEvent}. When the socket closes every pending command
 * rejects with the error given to {@link QmpClient.fail} (or a generic one).
 */
export class QmpClient extends EventEmitter<{ event: [QmpEvent]; close: [] }> {
  private readonly socket: Socket;
  private buffer = "";
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closedError: Error | undefined;

  private constructor(socket: Socket, closeReason?: () => Promise<Error>) {
    super();
    this.socket = socket;
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => this.onData(chunk));
    socket.on("error", () => {});
    socket.on("close", () => {
      if (this.closedError) return;
      const generic = new VmmError("QMP_ERROR", "QMP socket closed");
      if (!closeReason) return this.fail(generic);
      let timer: NodeJS.Timeout | undefined;
      const fallback = new Promise<Error>((r) => {
        timer = setTimeout(() => r(generic), 1000);
      });
      Promise.race([closeReason(), fallback]).then((err) => {
        clearTimeout(timer);
        this.fail(err);
      });
    });
  }

  /**
   * Connects to a QMP unix socket (retrying while QEMU creates it), reads the
   * greeting and negotiates capabilities.
   */
  static async connect(path: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const deadline = Date.now() + (options.timeoutMs ?? 10_000);
    let aborted = false;
    options.abort?.then(
      () => {
        aborted = true;
      },
      () => {
        aborted = true;
      },
    );
    let lastErr: unknown;
    while (Date.now() < deadline && !aborted) {
      try {
        const socket = await connectUnix(path);
        const client = new QmpClient(socket, options.closeReason);
        await client.greeting(Math.max(1000, deadline - Date.now()));
        await client.execute("qmp_capabilities", {});
        return client;
      } catch (err) {
        lastErr = err;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    throw new VmmError("QEMU_START_FAILED", `QMP socket ${path} did not come up`, { cause: lastErr });
  }

  private greeting(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new VmmError("QMP_TIMEOUT", "no QMP greeting")), timeoutMs);
      this.greetingWaiter = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
  private greetingWaiter: (() => void) | undefined;

  private onData(chunk: string): void {
    this.buffer += chunk;
    let nl = this.buffer.indexOf("\n");
    while (nl >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line) this.onMessage(line);
      nl = this.buffer.indexOf("\n");
    }
  }

  private onMessage(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if ("QMP" in msg) {
      this.greetingWaiter?.();
      this.greetingWaiter = undefined;
      return;
    }
    if (typeof msg.event === "string") {
      this.emit("event", msg as unknown as QmpEvent);
      return;
    }
    const id = typeof msg.id === "number" ? msg.id : undefined;
    const p = id === undefined ? undefined : this.pending.get(id);
    if (!p || id === undefined) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if ("error" in msg) {
      const e = msg.error as { class?: string; desc?: string };
      p.reject(
        new VmmError("QMP_ERROR", `QMP ${p.command} failed: ${e.desc ?? "unknown error"}`, {
          details: { command: p.command, errorClass: e.class },
        }),
      );
    } else {
      p.resolve(msg.return);
    }
  }

  /** Runs a QMP command and resolves with its typed result. */
  execute<C extends QmpCommand>(
    command: C,
    args: QmpCommandMap[C]["args"],
    timeoutMs = 10_000,
  ): Promise<QmpCommandMap[C]["result"]> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new VmmError("QMP_TIMEOUT", `QMP ${command} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer, command });
      const hasArgs = Object.keys(args).length > 0;
      this.socket.write(
        `${JSON.stringify(hasArgs ? { execute: command, arguments: args, id } : { execute: command, id })}\n`,
      );
    });
  }

  /** Resolves with the first event named `name` that matches `predicate`. */
  waitForEvent(
    name: string,
    predicate: (e: QmpEvent) => boolean = () => true,
    timeoutMs = 10_000,
  ): Promise<QmpEvent> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      const onEvent = (e: QmpEvent) => {
        if (e.event === name && predicate(e)) {
          cleanup();
          resolve(e);
        }
      };
      const onClose = () => {
        cleanup();
        reject(this.closedError ?? new VmmError("QMP_ERROR", "QMP socket closed"));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new VmmError("QMP_TIMEOUT", `QMP event ${name} did not arrive within ${timeoutMs} ms`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.off("event", onEvent);
        this.off("close", onClose);
      };
      this.on("event", onEvent);
      this.on("close", onClose);
    });
  }

  /** Rejects every pending command with `err` and closes the socket. Idempotent. */
  fail(err: Error): void {
    if (this.closedError) return;
    this.closedError = err;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    this.socket.destroy();
    this.emit("close");
  }

  /** Closes the connection. Idempotent. */
  close(): void {
    this.fail(new VmmError("VM_CLOSED", "QMP client closed"));
  }
}
