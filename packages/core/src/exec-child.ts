import { CoreError } from "./errors.js";
import type { ExecHandle } from "./guest-session.js";
import type { ExecWaitResult } from "./options.js";
import { PullReader } from "./pull-reader.js";

/**
 * A process started with `Vm.spawn`: write its stdin, pull its stdout and
 * stderr chunk by chunk, resize its terminal, signal it, wait for it.
 */
export class ExecChild {
  private readonly out: PullReader;
  private readonly err: PullReader;
  private waited = false;
  private stdinClosed = false;

  /** @internal */
  constructor(private readonly handle: ExecHandle) {
    this.out = new PullReader(handle.stdout);
    this.err = new PullReader(handle.stderr);
  }

  /** Resolves with the guest process id once the agent has started it. */
  get pid(): Promise<number> {
    return this.handle.started;
  }

  /** Queues bytes for the process's stdin; resolves once the agent's window has taken them. */
  async writeStdin(bytes: Buffer): Promise<void> {
    if (this.stdinClosed) throw new CoreError("INVALID_OPTIONS", "stdin is already closed");
    const stdin = this.handle.stdin;
    await new Promise<void>((resolve, reject) => {
      stdin.write(bytes, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Closes stdin (EOF for the process). Idempotent. */
  async closeStdin(): Promise<void> {
    if (this.stdinClosed) return;
    this.stdinClosed = true;
    await new Promise<void>((resolve) => this.handle.stdin.end(() => resolve()));
  }

  /** Next stdout chunk (at most `maxBytes`, default 64 KiB); empty Buffer at the end. */
  readStdout(maxBytes?: number | null): Promise<Buffer> {
    return this.out.read(maxBytes ?? 64 * 1024);
  }

  /** Next stderr chunk; empty Buffer at the end (always empty with `tty`). */
  readStderr(maxBytes?: number | null): Promise<Buffer> {
    return this.err.read(maxBytes ?? 64 * 1024);
  }

  /** Changes the pty size (ignored without `tty`). */
  async resize(cols: number, rows: number): Promise<void> {
    this.handle.resize(cols, rows);
  }

  /** Sends a signal (e.g. 2 = SIGINT, 9 = SIGKILL) to the process group. */
  async signal(signum: number): Promise<void> {
    this.handle.signal(signum);
  }

  /**
   * Waits for exit. Output not yet read is drained and dropped. A second
   * call rejects with `ALREADY_WAITED`.
   */
  async wait(): Promise<ExecWaitResult> {
    if (this.waited) throw new CoreError("ALREADY_WAITED", "ExecChild.wait() was already called");
    this.waited = true;
    const [r] = await Promise.all([this.handle.wait(), this.out.drain(), this.err.drain()]);
    return {
      exitCode: r.exitCode,
      timedOut: r.timedOut,
      signal: r.signal ?? undefined,
      peakRssKib: r.peakRssKib ?? undefined,
    };
  }
}
