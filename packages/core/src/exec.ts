import { isSupermachineError } from "@supermachine/errors";
import { CoreError } from "./errors.js";
import type { ExecRequest, GuestSession } from "./guest-session.js";
import type { ExecOptions, ExecOutput } from "./options.js";
import { intOption } from "./validate.js";

/**
 * Default cap on each of stdout and stderr that `exec` collects (and on
 * `readFile`): a pool of VMs returning big outputs at once must not exhaust
 * Node's memory. Per call: `maxOutputBytes` / `maxBytes`.
 */
export const DEFAULT_OUTPUT_CAP = 64 * 1024 * 1024;

/** Largest per-call cap accepted (a Buffer of it must stay well within Node's limits). */
export const MAX_OUTPUT_CAP = 1024 * 1024 * 1024;

/**
 * How long past its `timeoutMs` an `exec` may take before the host gives up
 * on the guest: the agent kills the command at `timeoutMs` and normally
 * answers within milliseconds; no answer by then means the guest (or its
 * agent) is stuck, and the VM is killed.
 */
export const HOST_TIMEOUT_GRACE_MS = 5_000;

/** What `runExec` does when the guest does not answer in time. */
export interface ExecHooks {
  /** Called once when the host deadline passes, with the error `runExec` then throws. Kill the VM here. */
  onUnresponsive?: (err: CoreError) => void;
}

/** Writes `stageFiles` and `stageFilesMode` into the guest before a command runs. */
export async function stageFiles(session: GuestSession, options: ExecOptions): Promise<void> {
  const files: Array<{ path: string; bytes: Buffer; mode: number }> = [];
  for (const [path, bytes] of Object.entries(options.stageFiles ?? {}))
    files.push({ path, bytes, mode: 0o644 });
  for (const f of options.stageFilesMode ?? [])
    files.push({ path: f.guestPath, bytes: f.bytes, mode: f.mode ?? 0o644 });
  for (const f of files) {
    if (!f.path.startsWith("/"))
      throw new CoreError("INVALID_OPTIONS", `staged file path must be absolute: ${f.path}`);
    if (!Buffer.isBuffer(f.bytes))
      throw new CoreError("INVALID_OPTIONS", `staged file ${f.path} must be a Buffer`);
  }
  await Promise.all(files.map((f) => session.writeFile(f.path, f.bytes, { mode: f.mode, mkdirs: true })));
}

/** Translates public exec options into the agent request. */
export function toExecRequest(options: ExecOptions, withTimeout: boolean): ExecRequest {
  if (
    !options ||
    !Array.isArray(options.argv) ||
    options.argv.length === 0 ||
    options.argv.some((a) => typeof a !== "string")
  ) {
    throw new CoreError("INVALID_OPTIONS", "exec needs a non-empty argv of strings");
  }
  const timeoutMs = withTimeout ? (options.timeoutMs ?? 0) : 0;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > 0xffffffff)
    throw new CoreError("INVALID_OPTIONS", "timeoutMs must be a non-negative integer");
  return {
    argv: options.argv,
    env: Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`),
    tty: options.tty === true,
    cwd: options.cwd ?? "",
    chain: options.chain ?? [],
    cols: options.winsize?.cols ?? 0,
    rows: options.winsize?.rows ?? 0,
    timeoutMs,
  };
}

/** The per-stream output cap of an exec (validated). */
export function outputCap(options: ExecOptions): number {
  return intOption("maxOutputBytes", options.maxOutputBytes, DEFAULT_OUTPUT_CAP, 1, MAX_OUTPUT_CAP);
}

/**
 * Runs a command to completion and collects its output (the `exec` of `Vm`
 * and `WarmupVm`). Output past the cap kills the command and throws
 * `EXEC_OUTPUT_TOO_LARGE`. With a `timeoutMs`, the agent kills the command
 * then; if the guest has not answered `HOST_TIMEOUT_GRACE_MS` later,
 * `hooks.onUnresponsive` runs and this throws `VM_UNRESPONSIVE`.
 */
export async function runExec(
  session: GuestSession,
  options: ExecOptions,
  hooks: ExecHooks = {},
): Promise<ExecOutput> {
  const req = toExecRequest(options, true);
  const cap = outputCap(options);
  await stageFiles(session, options);
  const run = session.run({ ...req, maxOutputBytes: cap });
  const timeoutMs = req.timeoutMs ?? 0;
  let timer: NodeJS.Timeout | undefined;
  // (setTimeout cannot wait past 2^31-1 ms; such timeouts get no host deadline)
  const deadline =
    timeoutMs > 0 && timeoutMs + HOST_TIMEOUT_GRACE_MS <= 2 ** 31 - 1
      ? new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            const err = new CoreError(
              "VM_UNRESPONSIVE",
              `the guest did not end ${JSON.stringify(req.argv)} within its timeoutMs (${timeoutMs} ms) plus ${HOST_TIMEOUT_GRACE_MS} ms: its agent stopped answering; the VM was killed and its pool replaces it`,
              { details: { argv: req.argv, timeoutMs, graceMs: HOST_TIMEOUT_GRACE_MS } },
            );
            run.catch(() => {});
            hooks.onUnresponsive?.(err);
            reject(err);
          }, timeoutMs + HOST_TIMEOUT_GRACE_MS);
        })
      : undefined;
  try {
    const r = await (deadline ? Promise.race([run, deadline]) : run);
    return {
      stdout: r.stdout,
      stderr: r.stderr,
      exitCode: r.exitCode,
      timedOut: r.timedOut,
      peakRssKib: r.peakRssKib ?? undefined,
    };
  } catch (err) {
    if (isSupermachineError(err, "OUTPUT_LIMIT")) {
      throw new CoreError(
        "EXEC_OUTPUT_TOO_LARGE",
        `${JSON.stringify(req.argv)} wrote more than maxOutputBytes (${cap}) to ${outputStream(err)}; the process was killed. Stream large output with vm.spawn() and readStdout()/readStderr(), or raise maxOutputBytes`,
        { cause: err, details: { argv: req.argv, maxOutputBytes: cap } },
      );
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

function outputStream(err: unknown): string {
  const m = /^(stdout|stderr)/.exec((err as Error).message ?? "");
  return m?.[1] ?? "stdout or stderr";
}
