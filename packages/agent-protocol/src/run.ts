import { Readable } from "node:stream";
import { ExecTimeoutError, OperationAbortedError } from "./errors.js";
import { type ExecOptions, ExecProcess, type ExecResult } from "./exec-stream.js";
import { collect } from "./file-transfer.js";
import type { StreamHost } from "./stream-host.js";

/** Options of `run`: an exec whose output is collected. */
export interface RunOptions extends ExecOptions {
  /** Data written to stdin, then stdin is closed. Without it stdin is closed at once. */
  stdin?: Uint8Array | string | AsyncIterable<Uint8Array | string>;
  /**
   * Cap on each of stdout and stderr. Past it the process is killed (RESET)
   * and `run` rejects with `OutputLimitError`. Default: unlimited.
   */
  maxOutputBytes?: number;
  /** Reject with `ExecTimeoutError` (instead of resolving with `timedOut: true`). */
  rejectOnTimeout?: boolean;
}

/** Result of `run`. */
export interface RunResult extends ExecResult {
  /** Everything the process wrote to stdout. */
  stdout: Buffer;
  /** Everything the process wrote to stderr. */
  stderr: Buffer;
}

/** Runs an exec to completion and collects its output (internal; use `AgentSession.run`). */
export async function runExec(host: StreamHost, opts: RunOptions): Promise<RunResult> {
  const proc = new ExecProcess(host, opts);
  const input = opts.stdin;
  if (input === undefined) proc.stdin.end();
  else if (typeof input === "string" || input instanceof Uint8Array) proc.stdin.end(input);
  else
    Readable.from(input)
      .on("error", () => proc.stdin.end())
      .pipe(proc.stdin);
  const max = opts.maxOutputBytes;
  let out: [Buffer, Buffer];
  try {
    out = await Promise.all([collect(proc.stdout, max, "stdout"), collect(proc.stderr, max, "stderr")]);
  } catch (err) {
    if (!proc.finished) proc.reset();
    await proc.wait().catch(() => {});
    throw err;
  }
  const result = await proc.wait();
  if (opts.signal?.aborted) throw new OperationAbortedError("exec aborted", { cause: opts.signal.reason });
  const full: RunResult = { ...result, stdout: out[0], stderr: out[1] };
  if (result.timedOut && opts.rejectOnTimeout) {
    throw new ExecTimeoutError(`exec timed out after ${opts.timeoutMs} ms`, {
      details: { argv: opts.argv, stdout: full.stdout, stderr: full.stderr, exitCode: result.exitCode },
    });
  }
  return full;
}
