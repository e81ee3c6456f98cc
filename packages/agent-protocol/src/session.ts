import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import {
  DEFAULT_INITIAL_WINDOW,
  DEFAULT_MAX_PAYLOAD,
  ErrorCode,
  type EventKindName,
  Feature,
  FLAG_END,
  MAX_MAX_PAYLOAD,
  MessageType,
  MIN_MAX_PAYLOAD,
  PROTOCOL_VERSION,
  WORKLOAD_FLAG_EXEC_AS_WORKLOAD,
  WORKLOAD_FLAG_HOLD,
  WORKLOAD_FLAG_WATCH,
} from "./constants.js";
import { FrameDecoder } from "./decoder.js";
import { encodeFrame, encodePayload, encodeRawFrame } from "./encoder.js";
import {
  AgentError,
  HandshakeError,
  OperationAbortedError,
  ProtocolError,
  SessionClosedError,
} from "./errors.js";
import { type AgentEvent, EventQueue, toAgentEvent } from "./events.js";
import { type ExecOptions, ExecProcess, envList } from "./exec-stream.js";
import {
  collect,
  FileReadStream,
  WriteFileOp,
  type WriteFileOptions,
  type WriteFileSource,
} from "./file-transfer.js";
import type { SendWindow } from "./flow-control.js";
import { hostContextBytes } from "./host-context.js";
import { type Frame, GUEST_TO_HOST, type HelloOkMessage, type Message } from "./messages.js";
import { RequestOp } from "./request-op.js";
import { type RunOptions, type RunResult, runExec } from "./run.js";
import { isTerminal, type OutboundDataType, type StreamHandler, type StreamHost } from "./stream-host.js";
import { TcpStream } from "./tcp-stream.js";

/** Options of {@link AgentSession.open}. */
export interface SessionOptions {
  /** Largest payload we accept from the agent (4096..1 MiB, default 65536). */
  maxPayload?: number;
  /** Per-stream window we grant the agent (default 262144). */
  initialWindow?: number;
  /** Fail the handshake after this many ms (default: no limit). */
  handshakeTimeoutMs?: number;
  /** Aborting during the handshake fails it. */
  signal?: AbortSignal;
  /**
   * Append the host context to HELLO (current time and a random seed; the
   * agent sets the guest clock and reseeds its RNG). Default true.
   */
  sendHostContext?: boolean;
}

/** What the agent announced in HELLO_OK. */
export interface AgentInfo {
  /** Negotiated protocol version. */
  version: number;
  /** Largest payload the agent accepts. */
  maxPayload: number;
  /** The agent's per-stream window (our send credit). */
  initialWindow: number;
  /** Feature bits (`Feature.PTY`, `Feature.TCP`, `Feature.VSOCK`). */
  features: number;
  /** Agent build identification. */
  agentVersion: string;
}

/** Workload definition sent with WORKLOAD_CONFIG. */
export interface WorkloadConfig {
  /** Program and arguments; empty = no workload. */
  argv: string[];
  /** Environment (`KEY=VALUE` list or record). */
  env?: Record<string, string> | string[];
  /** Working directory (default `/`). */
  cwd?: string;
  /** Image `User` (`name`, `uid`, `name:group`, `uid:gid`); empty = root. */
  user?: string;
  /** Guest hostname. */
  hostname?: string;
  /** Do not start until `startWorkload()`; the agent emits WORKLOAD_READY. */
  hold?: boolean;
  /** Emit LISTENING once something listens on this TCP port. */
  watchPort?: number;
  /**
   * Later execs run as `user`, in `cwd` when they name none, with the user's
   * HOME (as `docker exec` does); otherwise they run as root in `/`.
   */
  execAsWorkload?: boolean;
}

/** Events emitted by {@link AgentSession}. */
export interface AgentSessionEvents {
  /** Every EVENT frame from the agent. */
  event: [AgentEvent];
  /** ERROR frames on stream 0 (the agent rejected something we sent). */
  "agent-error": [AgentError];
  /** The session closed; the error says why. */
  close: [SessionClosedError];
}

const STICKY: ReadonlySet<string> = new Set([
  "WORKLOAD_READY",
  "WORKLOAD_STARTED",
  "LISTENING",
  "WORKLOAD_EXITED",
]);

/**
 * Host side of the agent protocol over any byte-stream `Duplex` (a unix
 * socket to a virtio-serial port, a vsock connection, a child's stdio).
 * Create it with {@link AgentSession.open}, which performs the handshake.
 */
export class AgentSession extends EventEmitter<AgentSessionEvents> implements StreamHost, AsyncDisposable {
  /** What the agent announced. Valid after {@link open} resolves. */
  agent: AgentInfo = {
    version: 0,
    maxPayload: DEFAULT_MAX_PAYLOAD,
    initialWindow: DEFAULT_INITIAL_WINDOW,
    features: 0,
    agentVersion: "",
  };
  /** Our max payload (announced in HELLO). */
  readonly hostMaxPayload: number;
  /** Our per-stream window (announced in HELLO). */
  readonly hostWindow: number;
  private readonly transport: Duplex;
  private corked = false;
  private readonly decoder: FrameDecoder;
  private readonly handlers = new Map<number, StreamHandler>();
  private nextId = 1;
  private closeError: SessionClosedError | undefined;
  private readonly pings = new Map<
    bigint,
    { resolve: (ms: number) => void; reject: (e: unknown) => void; t0: number }
  >();
  private nextToken = 1n;
  private readonly latest = new Map<string, AgentEvent>();
  private readonly eventWaiters = new Set<{
    kind: string;
    resolve: (e: AgentEvent) => void;
    reject: (e: unknown) => void;
  }>();
  private readonly queues = new Set<EventQueue>();
  private drainWaiter: Promise<void> | undefined;
  private handshake: { nonce: bigint; resolve: () => void; reject: (e: unknown) => void } | undefined;
  private readonly onData = (chunk: Buffer) => this.receive(chunk);
  private readonly onEnd = () => this.fail(new Error("agent transport ended (EOF)"));
  private readonly onError = (err: Error) => this.fail(err);
  private readonly onClose = () => this.fail(new Error("agent transport closed"));

  private constructor(transport: Duplex, opts: SessionOptions) {
    super();
    this.hostMaxPayload = opts.maxPayload ?? DEFAULT_MAX_PAYLOAD;
    this.hostWindow = opts.initialWindow ?? DEFAULT_INITIAL_WINDOW;
    if (this.hostMaxPayload < MIN_MAX_PAYLOAD || this.hostMaxPayload > MAX_MAX_PAYLOAD) {
      throw new RangeError(`maxPayload must be in [${MIN_MAX_PAYLOAD}, ${MAX_MAX_PAYLOAD}]`);
    }
    if (!(this.hostWindow >= 1 && this.hostWindow <= 0xffffffff))
      throw new RangeError("initialWindow out of range");
    this.transport = transport;
    this.decoder = new FrameDecoder({
      maxPayload: DEFAULT_MAX_PAYLOAD,
      scan: true,
      accept: () => false,
      // data frames are handed on as their bytes arrive, never copied whole
      splitData: true,
    });
    transport.on("data", this.onData);
    transport.on("end", this.onEnd);
    transport.on("error", this.onError);
    transport.on("close", this.onClose);
  }

  /**
   * Performs the handshake over `transport` and returns the open session.
   * Everything received before the HELLO_OK carrying our nonce is discarded.
   * Rejects with `HandshakeError` (version refused, timeout, abort) or
   * `SessionClosedError` (transport ended).
   */
  static async open(transport: Duplex, opts: SessionOptions = {}): Promise<AgentSession> {
    const s = new AgentSession(transport, opts);
    await s.hello(opts);
    return s;
  }

  private async hello(opts: SessionOptions): Promise<void> {
    const nonce = randomBytes(8).readBigUInt64LE(0);
    const done = new Promise<void>((resolve, reject) => {
      this.handshake = { nonce, resolve, reject };
    });
    this.decoder.setScanMode(
      true,
      (f) =>
        (f.type === "HELLO_OK" && f.stream === 0 && f.nonce === nonce) ||
        (f.type === "ERROR" && f.stream === 0 && f.code === ErrorCode.UNSUPPORTED_VERSION),
    );
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => this.fail(new HandshakeError("handshake aborted", { cause: opts.signal?.reason }));
    try {
      if (opts.signal?.aborted) onAbort();
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      if (opts.handshakeTimeoutMs) {
        timer = setTimeout(
          () => this.fail(new HandshakeError(`no HELLO_OK within ${opts.handshakeTimeoutMs} ms`)),
          opts.handshakeTimeoutMs,
        );
      }
      const hello = encodePayload({
        type: "HELLO",
        stream: 0,
        flags: 0,
        minVersion: PROTOCOL_VERSION,
        maxVersion: PROTOCOL_VERSION,
        maxPayload: this.hostMaxPayload,
        initialWindow: this.hostWindow,
        nonce,
      });
      const context = opts.sendHostContext === false ? Buffer.alloc(0) : hostContextBytes();
      this.transport.write(encodeRawFrame(MessageType.HELLO, 0, 0, Buffer.concat([hello, context])));
      await done;
    } catch (err) {
      const cause =
        err instanceof SessionClosedError && err.cause instanceof HandshakeError ? err.cause : err;
      throw cause;
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
    }
  }

  /** True once the session is closed. */
  get closed(): boolean {
    return this.closeError !== undefined;
  }

  /** Largest payload the agent accepts. */
  get agentMaxPayload(): number {
    return this.agent.maxPayload;
  }

  /** The agent's per-stream window. */
  get agentWindow(): number {
    return this.agent.initialWindow;
  }

  /** Number of open streams. */
  get openStreams(): number {
    return this.handlers.size;
  }

  /** Round trip to the agent; resolves with the elapsed milliseconds. */
  ping(): Promise<number> {
    if (this.closeError) return Promise.reject(this.closeError);
    const token = this.nextToken++;
    const p = new Promise<number>((resolve, reject) =>
      this.pings.set(token, { resolve, reject, t0: performance.now() }),
    );
    this.sendControl({ type: "PING", stream: 0, flags: 0, token });
    return p;
  }

  /** Starts a process in the guest and returns its streaming handle. Throws if the session is closed. */
  exec(opts: ExecOptions): ExecProcess {
    return new ExecProcess(this, opts);
  }

  /** Runs a process to completion, collecting stdout and stderr (see {@link RunOptions}). */
  run(opts: RunOptions): Promise<RunResult> {
    return runExec(this, opts);
  }

  /** Writes `data` (Buffer, string, Readable or async iterable) to `path`; resolves with bytes written. */
  async writeFile(path: string, data: WriteFileSource, opts: WriteFileOptions = {}): Promise<number> {
    return new WriteFileOp(this, path, opts).run(data, opts.signal);
  }

  /** Streams a guest file. Rejects (stream `error`) with `AgentError` NOT_FOUND / IO. */
  createReadStream(path: string): FileReadStream {
    return new FileReadStream(this, { type: "READ_FILE", path });
  }

  /** Reads a whole guest file; fails with `OutputLimitError` past `maxBytes`. */
  async readFile(path: string, opts: { maxBytes?: number; signal?: AbortSignal } = {}): Promise<Buffer> {
    const stream = this.createReadStream(path);
    const onAbort = () =>
      stream.destroy(new OperationAbortedError("readFile aborted", { cause: opts.signal?.reason }));
    if (opts.signal?.aborted) onAbort();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      return await collect(stream, opts.maxBytes, `file ${path}`);
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Opens a TCP connection to `port` inside the guest (`host` empty = 127.0.0.1
   * then ::1). Resolves once connected; rejects with `AgentError` (errno set).
   */
  async tcpConnect(port: number, host = "", opts: { signal?: AbortSignal } = {}): Promise<TcpStream> {
    const stream = new TcpStream(this, port, host);
    const onAbort = () => stream.destroy();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await Promise.race([
        stream.connected,
        new Promise<never>((_, reject) => {
          if (opts.signal?.aborted) reject(new OperationAbortedError("tcpConnect aborted"));
          opts.signal?.addEventListener(
            "abort",
            () => reject(new OperationAbortedError("tcpConnect aborted")),
            {
              once: true,
            },
          );
        }),
      ]);
      return stream;
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Sends WORKLOAD_CONFIG; rejects with `AgentError` STATE when already configured. */
  async configureWorkload(cfg: WorkloadConfig): Promise<void> {
    const flags =
      (cfg.hold ? WORKLOAD_FLAG_HOLD : 0) |
      (cfg.watchPort ? WORKLOAD_FLAG_WATCH : 0) |
      (cfg.execAsWorkload ? WORKLOAD_FLAG_EXEC_AS_WORKLOAD : 0);
    await new RequestOp(this, {
      type: "WORKLOAD_CONFIG",
      workloadFlags: flags,
      watchPort: cfg.watchPort ?? 0,
      argv: cfg.argv,
      env: envList(cfg.env),
      cwd: cfg.cwd ?? "",
      user: cfg.user ?? "",
      hostname: cfg.hostname ?? "",
    }).result;
  }

  /** Starts a held workload; resolves with its pid. */
  async startWorkload(): Promise<number> {
    return Number(await new RequestOp(this, { type: "WORKLOAD_START" }).result);
  }

  /**
   * The workload's recent output: the newest bytes (at most `maxBytes`; 0 or
   * unset = all the agent holds, 64 KiB in sm-init) of its stdout and stderr,
   * interleaved as written, and `totalBytes`, everything it wrote since it
   * started (so `totalBytes - tail.length` bytes were dropped).
   */
  async workloadLogs(opts: { maxBytes?: number } = {}): Promise<{ tail: Buffer; totalBytes: number }> {
    if (!(this.agent.features & Feature.LOGS)) {
      throw new AgentError(
        ErrorCode.UNKNOWN_TYPE,
        0,
        `agent ${JSON.stringify(this.agent.agentVersion)} does not keep the workload's output (no WORKLOAD_LOGS); it predates it`,
      );
    }
    const maxBytes = opts.maxBytes ?? 0;
    if (!Number.isInteger(maxBytes) || maxBytes < 0 || maxBytes > 0xffffffff)
      throw new RangeError("maxBytes must be an integer in [0, 2^32)");
    const stream = new FileReadStream(this, { type: "WORKLOAD_LOGS", maxBytes });
    // the agent is untrusted: never collect more than asked for (16 MiB when "all")
    const tail = await collect(stream, maxBytes > 0 ? maxBytes : 16 << 20, "workload logs");
    return { tail, totalBytes: Number(await stream.total) };
  }

  /** Sends `signum` to the workload's process group. */
  async signalWorkload(signum: number): Promise<void> {
    await new RequestOp(this, { type: "WORKLOAD_SIGNAL", signum }).result;
  }

  /** The latest event of a sticky kind (WORKLOAD_READY, WORKLOAD_STARTED, LISTENING, WORKLOAD_EXITED). */
  latestEvent(kind: EventKindName): AgentEvent | undefined {
    return this.latest.get(kind);
  }

  /**
   * Resolves with the next event of `kind`, or at once with the latest one
   * already received for sticky kinds (so a late subscriber does not miss it).
   */
  waitForEvent(kind: EventKindName, opts: { signal?: AbortSignal } = {}): Promise<AgentEvent> {
    const seen = this.latest.get(kind);
    if (seen) return Promise.resolve(seen);
    if (this.closeError) return Promise.reject(this.closeError);
    return new Promise((resolve, reject) => {
      const w = {
        kind,
        resolve: (e: AgentEvent) => {
          opts.signal?.removeEventListener("abort", onAbort);
          resolve(e);
        },
        reject,
      };
      const onAbort = () => {
        this.eventWaiters.delete(w);
        reject(new OperationAbortedError(`waitForEvent(${kind}) aborted`, { cause: opts.signal?.reason }));
      };
      if (opts.signal?.aborted) {
        onAbort();
        return;
      }
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      this.eventWaiters.add(w);
    });
  }

  /** Async iterator over events received from now on; ends when the session closes. */
  events(): AsyncIterableIterator<AgentEvent> {
    const q = new EventQueue((x) => this.queues.delete(x));
    if (this.closeError) q.end();
    else this.queues.add(q);
    return q;
  }

  /** Closes the session and the transport; pending operations reject with `SessionClosedError`. Idempotent. */
  async close(): Promise<void> {
    this.fail(undefined);
  }

  /** Same as {@link close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- StreamHost ----

  /** @internal */
  open(handler: StreamHandler, request: Message): number {
    if (this.closeError) throw this.closeError;
    if (this.handlers.size >= 0xfffffff0) throw new RangeError("too many open streams");
    let id = this.nextId;
    while (this.handlers.has(id)) id = id >= 0xffffffff ? 1 : id + 1;
    this.nextId = id >= 0xffffffff ? 1 : id + 1;
    const frame = { ...request, stream: id, flags: 0 } as Frame;
    const bytes = encodeFrame(frame, this.agent.maxPayload); // throws before registering
    this.handlers.set(id, handler);
    this.writeBatched(bytes);
    return id;
  }

  /** @internal */
  sendControl(frame: Frame): void {
    if (this.closeError) throw this.closeError;
    this.writeBatched(encodeFrame(frame, this.agent.maxPayload));
  }

  /**
   * Writes a request or control frame together with whatever else this turn
   * of the event loop writes: a request and what follows it at once (an EXEC
   * and its STDIN END, say) reach the agent in one write, so the guest wakes
   * once instead of twice. The frames leave before any I/O is polled again.
   */
  private writeBatched(bytes: Uint8Array): void {
    if (!this.corked) {
      this.corked = true;
      this.transport.cork();
      setImmediate(() => {
        this.corked = false;
        this.transport.uncork();
      });
    }
    this.transport.write(bytes);
  }

  /** @internal */
  async sendData(
    stream: number,
    type: OutboundDataType,
    data: Uint8Array,
    end: boolean,
    window: SendWindow,
    alive: () => boolean,
  ): Promise<void> {
    if (data.length === 0 && !end) return;
    let off = 0;
    do {
      if (!alive()) return;
      if (this.closeError) throw this.closeError;
      let n = 0;
      if (off < data.length) {
        try {
          n = await window.acquire(Math.min(data.length - off, this.agent.maxPayload));
        } catch (err) {
          if (!alive()) return;
          throw err;
        }
        if (!alive()) return;
        if (this.closeError) throw this.closeError;
      }
      const last = off + n >= data.length;
      const chunk = data.subarray(off, off + n);
      off += n;
      const ok = this.transport.write(
        encodeFrame(
          { type, stream, flags: last && end ? FLAG_END : 0, data: chunk } as Frame,
          this.agent.maxPayload,
        ),
      );
      if (!ok) await this.drained();
    } while (off < data.length);
  }

  private drained(): Promise<void> {
    if (!this.transport.writableNeedDrain) return Promise.resolve();
    this.drainWaiter ??= new Promise<void>((resolve) => {
      const done = () => {
        this.transport.off("drain", done);
        this.off("close", done);
        this.drainWaiter = undefined;
        resolve();
      };
      this.transport.on("drain", done);
      this.on("close", done);
    });
    return this.drainWaiter;
  }

  // ---- receive path ----

  private receive(chunk: Buffer): void {
    if (this.closeError) return;
    this.decoder.push(chunk);
    try {
      for (;;) {
        if (this.closeError) return;
        const f = this.decoder.next();
        if (!f) return;
        this.dispatch(f);
      }
    } catch (err) {
      this.fail(err);
    }
  }

  private dispatch(f: Frame): void {
    if (this.handshake) {
      this.onHandshakeFrame(f);
      return;
    }
    if (!GUEST_TO_HOST.has(f.type))
      throw new ProtocolError("UNEXPECTED_FRAME", `the agent must not send ${f.type}`);
    if (f.stream === 0) {
      switch (f.type) {
        case "PONG": {
          const p = this.pings.get(f.token);
          if (!p) throw new ProtocolError("UNEXPECTED_FRAME", `PONG with unknown token ${f.token}`);
          this.pings.delete(f.token);
          p.resolve(performance.now() - p.t0);
          return;
        }
        case "EVENT":
          this.onEvent(toAgentEvent(f));
          return;
        case "ERROR":
          if (this.listenerCount("agent-error") > 0) {
            this.emit("agent-error", new AgentError(f.code, f.errno, f.message, { details: { stream: 0 } }));
          }
          return;
        default:
          throw new ProtocolError("UNEXPECTED_FRAME", `unexpected ${f.type} on stream 0`);
      }
    }
    if (f.type === "HELLO_OK" || f.type === "PONG" || f.type === "EVENT") {
      throw new ProtocolError("UNEXPECTED_FRAME", `${f.type} on stream ${f.stream}`);
    }
    const h = this.handlers.get(f.stream);
    if (!h) return; // not open (a race with its end): dropped
    if (isTerminal(f)) this.handlers.delete(f.stream);
    h.onFrame(f);
  }

  private onHandshakeFrame(f: Frame): void {
    const hs = this.handshake as NonNullable<typeof this.handshake>;
    if (f.type === "ERROR") {
      throw new HandshakeError(`agent refused the handshake: ${f.message}`, {
        cause: new AgentError(f.code, f.errno, f.message),
      });
    }
    const ok = f as HelloOkMessage;
    if (
      ok.version !== PROTOCOL_VERSION ||
      ok.maxPayload < MIN_MAX_PAYLOAD ||
      ok.maxPayload > MAX_MAX_PAYLOAD ||
      ok.initialWindow < 1
    ) {
      throw new ProtocolError(
        "BAD_HANDSHAKE",
        `HELLO_OK out of range: version ${ok.version}, max_payload ${ok.maxPayload}, initial_window ${ok.initialWindow}`,
      );
    }
    this.agent = {
      version: ok.version,
      maxPayload: ok.maxPayload,
      initialWindow: ok.initialWindow,
      features: ok.features,
      agentVersion: ok.agentVersion,
    };
    this.handshake = undefined;
    this.decoder.setScanMode(false);
    this.decoder.maxPayload = this.hostMaxPayload;
    hs.resolve();
  }

  private onEvent(ev: AgentEvent): void {
    if (STICKY.has(ev.kind)) this.latest.set(ev.kind, ev);
    for (const w of [...this.eventWaiters]) {
      if (w.kind === ev.kind) {
        this.eventWaiters.delete(w);
        w.resolve(ev);
      }
    }
    for (const q of this.queues) q.push(ev);
    this.emit("event", ev);
  }

  private fail(cause: unknown): void {
    if (this.closeError) return;
    const err =
      cause === undefined
        ? new SessionClosedError("agent session closed")
        : new SessionClosedError(
            `agent session failed: ${cause instanceof Error ? cause.message : String(cause)}`,
            {
              cause,
            },
          );
    this.closeError = err;
    this.transport.off("data", this.onData);
    this.transport.off("end", this.onEnd);
    this.transport.off("close", this.onClose);
    // Keep a no-op error listener: a late transport error must not crash the process.
    this.transport.off("error", this.onError);
    this.transport.on("error", () => {});
    this.transport.destroy();
    this.handshake?.reject(err);
    this.handshake = undefined;
    const handlers = [...this.handlers.values()];
    this.handlers.clear();
    for (const h of handlers) {
      try {
        h.onSessionClose(err);
      } catch {
        // a handler's cleanup must not stop the others
      }
    }
    for (const p of this.pings.values()) p.reject(err);
    this.pings.clear();
    for (const w of this.eventWaiters) w.reject(err);
    this.eventWaiters.clear();
    for (const q of this.queues) q.end();
    this.queues.clear();
    this.emit("close", err);
  }
}

/** Opens an {@link AgentSession} over `transport` (same as `AgentSession.open`). */
export function openSession(transport: Duplex, opts?: SessionOptions): Promise<AgentSession> {
  return AgentSession.open(transport, opts);
}
