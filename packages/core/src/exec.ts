import { CoreError } from "./errors.js";
import type { ExecRequest, GuestSession } from "./guest-session.js";
import type { ExecOptions, ExecOutput } from "./options.js";

/** Largest stdout or stderr `exec` collects before failing (use `spawn` to stream more). */
export const EXEC_OUTPUT_CAP = 256 * 1024 * 1024;

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
  if (!Number.isInteger(timeoutMs) || timeoutMs < 0)
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

/** Runs a command to completion and collects its output (the `exec` of `Vm` and `WarmupVm`). */
export async function runExec(session: GuestSession, options: ExecOptions): Promise<ExecOutput> {
  const req = toExecRequest(options, true);
  await stageFiles(session, options);
  const r = await session.run({ ...req, maxOutputBytes: EXEC_OUTPUT_CAP });
  return {
    stdout: r.stdout,
    stderr: r.stderr,
    exitCode: r.exitCode,
    timedOut: r.timedOut,
    peakRssKib: r.peakRssKib ?? undefined,
  };
}
