import { spawn } from "node:child_process";
import { RootfsBuildError, throwIfAborted } from "./errors.js";
import type { ByteSink } from "./tar-writer.js";

/**
 * Runs `mke2fs args` (with `E2FSPROGS_FAKE_TIME` for reproducible
 * timestamps). Fails with `OCI_ROOTFS_BUILD` and mke2fs's output when it
 * cannot start or exits non-zero, and with `OCI_ABORTED` when `signal`
 * aborts (mke2fs is killed). The caller removes the half-written image.
 *
 * With `feed`, mke2fs reads its input from standard input (`-d -` in
 * `args`) and `feed` writes it there through the sink it is given (each
 * chunk's promise settles once the kernel has it, so the caller may reuse
 * the buffer). A feed that fails kills mke2fs and its error is thrown,
 * unless mke2fs failed first (the feed then only saw a broken pipe).
 */
export async function runMke2fs(
  args: string[],
  signal?: AbortSignal,
  feed?: (sink: ByteSink) => Promise<unknown>,
): Promise<void> {
  throwIfAborted(signal);
  const child = spawn("mke2fs", args, {
    stdio: [feed ? "pipe" : "ignore", "pipe", "pipe"],
    env: { ...process.env, E2FSPROGS_FAKE_TIME: "1" },
  });
  let output = "";
  const collect = (d: Buffer) => {
    output = (output + d.toString()).slice(-4000);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  const kill = () => child.kill("SIGKILL");
  signal?.addEventListener("abort", kill, { once: true });
  try {
    const closed = new Promise<number | null>((resolve, reject) => {
      child.on("error", (err) =>
        reject(new RootfsBuildError(`cannot run mke2fs: ${err.message}`, { cause: err })),
      );
      child.on("close", (c) => resolve(c));
    });
    closed.catch(() => {});
    let feedError: unknown;
    if (feed && child.stdin) {
      const stdin = child.stdin;
      stdin.on("error", () => {}); // a broken pipe: mke2fs's exit says why
      const sink: ByteSink = (chunk) =>
        new Promise<void>((resolve, reject) => {
          stdin.write(chunk, (err) => (err ? reject(err) : resolve()));
        });
      try {
        await feed(sink);
        stdin.end();
      } catch (err) {
        feedError = err;
        stdin.destroy();
        child.kill("SIGKILL");
      }
    }
    const code = await closed;
    throwIfAborted(signal);
    if (feedError && !isBrokenPipe(feedError)) throw feedError;
    if (code !== 0) {
      throw new RootfsBuildError(`mke2fs failed (exit ${code}): ${output.trim().slice(-2000)}`, {
        details: { cmd: "mke2fs", args, code },
      });
    }
  } finally {
    signal?.removeEventListener("abort", kill);
  }
}

function isBrokenPipe(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === "EPIPE" || code === "ERR_STREAM_DESTROYED";
}
