import { Writable } from "node:stream";
import { asBuffer } from "./chunk-queue.js";
import { EXEC_FLAG_TTY, FLAG_END } from "./constants.js";
import { AgentError, ProtocolError, type SessionClosedError } from "./errors.js";
import { SendWindow } from "./flow-control.js";
import { InboundReadable } from "./inbound-readable.js";
import type { Frame, Message } from "./messages.js";
import type { StreamHandler, StreamHost } from "./stream-host.js";

/** Options of an exec. */
export interface ExecOptions {
  /** Program and arguments; `argv[0]` is looked up in the guest `PATH` when it has no `/`. */
  argv: string[];
  /** Environment overlaid on the agent's base environment (`KEY=VALUE` strings or a record). */
  env?: Record<string, string> | string[];
  /** Working directory (default `/`). */
  cwd?: string;
  /** Run under a pty (stderr is then merged into stdout). */
  tty?: boolean;
  /** Initial pty size in columns (0 = 80). */
  cols?: number;
  /** Initial pty size in rows (0 = 24). */
  rows?: number;
  /** Kill the whole process group after this many milliseconds (0/undefined = never). */
  timeoutMs?: number;
  /** Shell commands run in turn after `argv` succeeds (`/bin/sh -c ENTRY`). */
  chain?: string[];
  /** Aborting resets the stream: the agent kills the process group with SIGKILL. */
  signal?: AbortSignal;
}

/** How an exec ended. */
export interface ExecResult {
  /** Exit status, or -1 when killed by a signal. */
  exitCode: number;
  /** Terminating signal number, or null. */
  signal: number | null;
  /** True when the `timeoutMs` watchdog killed it. */
  timedOut: boolean;
  /** Peak RSS in KiB from `wait4`, or null when unknown. */
  peakRssKib: number | null;
}

/** Converts an env record or list to `KEY=VALUE` strings. */
export function envList(env: ExecOptions["env"]): string[] {
  if (!env) return [];
  if (Array.isArray(env)) return env;
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

const swallow = () => {};

/**
 * A running process in the guest (one exec stream). `stdout`/`stderr` are
 * Readables (async-iterable) that return window to the agent as they are
 * read; `stdin` is a Writable whose `end()` closes the child's stdin.
 */
export class ExecProcess implements StreamHandler {
  /** Stream id of this exec. */
  readonly id: number;
  /** Child's stdout (with a tty: the terminal output). */
  readonly stdout: InboundReadable;
  /** Child's stderr (always empty with a tty). */
  readonly stderr: InboundReadable;
  /** Child's stdin; `end()` sends STDIN END. */
  readonly stdin: Writable;
  /** Resolves with the pid once the agent reports STARTED. */
  readonly started: Promise<number>;
  private readonly exit: Promise<ExecResult>;
  private resolveStarted!: (pid: number) => void;
  private rejectStarted!: (err: unknown) => void;
  private resolveExit!: (r: ExecResult) => void;
  private rejectExit!: (err: unknown) => void;
  private readonly window: SendWindow;
  private done = false;
  private readonly host: StreamHost;

  constructor(host: StreamHost, opts: ExecOptions) {
    this.host = host;
    this.started = new Promise((res, rej) => {
      this.resolveStarted = res;
      this.rejectStarted = rej;
    });
    this.exit = new Promise((res, rej) => {
      this.resolveExit = res;
      this.rejectExit = rej;
    });
    this.started.catch(swallow);
    this.exit.catch(swallow);
    this.window = new SendWindow(host.agentWindow);
    const grant = (increment: number) => this.control({ type: "WINDOW", increment });
    this.stdout = new InboundReadable(host.hostWindow, grant);
    this.stderr = new InboundReadable(host.hostWindow, grant);
    this.stdin = new Writable({
      highWaterMark: 64 * 1024,
      write: (chunk: Buffer, _enc, cb) => {
        this.sendStdin(chunk, false).then(
          () => cb(),
          () => cb(),
        );
      },
      final: (cb) => {
        this.sendStdin(Buffer.alloc(0), true).then(
          () => cb(),
          () => cb(),
        );
      },
    });
    this.id = host.open(this, {
      type: "EXEC",
      execFlags: opts.tty ? EXEC_FLAG_TTY : 0,
      timeoutMs: opts.timeoutMs ?? 0,
      cols: opts.cols ?? 0,
      rows: opts.rows ?? 0,
      argv: opts.argv,
      env: envList(opts.env),
      cwd: opts.cwd ?? "",
      chain: opts.chain ?? [],
    });
    const signal = opts.signal;
    if (signal) {
      const onAbort = () => this.reset();
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener("abort", onAbort, { once: true });
        this.exit.finally(() => signal.removeEventListener("abort", onAbort)).catch(swallow);
      }
    }
  }

  /** True once the exec stream ended (EXIT or ERROR received, or the session closed). */
  get finished(): boolean {
    return this.done;
  }

  /** Resizes the pty (ignored by the agent without a tty). */
  resize(cols: number, rows: number): void {
    this.control({ type: "RESIZE", cols, rows });
  }

  /** Sends `signum` to the process group. */
  signal(signum: number): void {
    this.control({ type: "SIGNAL", signum });
  }

  /** Ends the stream early: the agent SIGKILLs the process group and reports EXIT with signal 9. */
  reset(): void {
    this.control({ type: "RESET" });
  }

  /**
   * Waits for the process to exit. Output streams nobody has started
   * consuming are drained (discarded) so the child cannot block on them.
   * Rejects with `AgentError` if the agent refused the exec, or
   * `SessionClosedError` if the session ends first.
   */
  wait(): Promise<ExecResult> {
    for (const r of [this.stdout, this.stderr]) {
      if (r.readableFlowing === null && r.listenerCount("readable") === 0) r.resume();
    }
    return this.exit;
  }

  /** @internal */
  onFrame(frame: Frame): void {
    switch (frame.type) {
      case "STARTED":
        this.resolveStarted(frame.pid);
        return;
      case "STDOUT":
        this.stdout.inbound.receive(asBuffer(frame.data), (frame.flags & FLAG_END) !== 0);
        return;
      case "STDERR":
        this.stderr.inbound.receive(asBuffer(frame.data), (frame.flags & FLAG_END) !== 0);
        return;
      case "WINDOW":
        this.window.add(frame.increment);
        return;
      case "EXIT": {
        this.finish();
        const result: ExecResult = {
          exitCode: frame.exitCode,
          signal: frame.termSignal === 0 ? null : frame.termSignal,
          timedOut: frame.timedOut !== 0,
          peakRssKib: frame.peakRssKib === 0n ? null : Number(frame.peakRssKib),
        };
        // An exec that never reported STARTED (it failed to start) still has a result.
        this.rejectStarted(
          new AgentError(13, 0, `process exited before STARTED (exit code ${result.exitCode})`),
        );
        this.resolveExit(result);
        return;
      }
      case "ERROR": {
        this.finish();
        const err = new AgentError(frame.code, frame.errno, frame.message, { details: { stream: this.id } });
        this.rejectStarted(err);
        this.rejectExit(err);
        return;
      }
      default:
        throw new ProtocolError("UNKNOWN_TYPE", `unexpected ${frame.type} on exec stream ${this.id}`);
    }
  }

  /** @internal */
  onSessionClose(err: SessionClosedError): void {
    this.finish();
    this.rejectStarted(err);
    this.rejectExit(err);
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.window.fail(new Error("exec stream ended"));
    this.stdout.finish();
    this.stderr.finish();
  }

  private control(msg: Message): void {
    if (this.done) return;
    this.host.sendControl({ ...msg, stream: this.id, flags: 0 } as Frame);
  }

  private sendStdin(data: Buffer, end: boolean): Promise<void> {
    if (this.done) return Promise.resolve();
    return this.host.sendData(this.id, "STDIN", data, end, this.window, () => !this.done);
  }
}
