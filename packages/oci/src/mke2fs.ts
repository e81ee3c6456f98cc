import { spawn } from "node:child_process";
import { RootfsBuildError, throwIfAborted } from "./errors.js";

/**
 * Runs `mke2fs args` (with `E2FSPROGS_FAKE_TIME` for reproducible
 * timestamps). Fails with `OCI_ROOTFS_BUILD` and mke2fs's output when it
 * cannot start or exits non-zero, and with `OCI_ABORTED` when `signal`
 * aborts (mke2fs is killed). The caller removes the half-written image.
 */
export async function runMke2fs(args: string[], signal?: AbortSignal): Promise<void> {
  throwIfAborted(signal);
  const child = spawn("mke2fs", args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, E2FSPROGS_FAKE_TIME: "1" },
  });
  let output = "";
  const collect = (d: Buffer) => {
    output = (output + d.toString()).slice(-4000);
  };
  child.stdout.on("data", collect);
  child.stderr.on("data", collect);
  const kill = () => child.kill("SIGKILL");
  signal?.addEventListener("abort", kill, { once: true });
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on("error", (err) =>
        reject(new RootfsBuildError(`cannot run mke2fs: ${err.message}`, { cause: err })),
      );
      child.on("close", (c) => resolve(c));
    });
    throwIfAborted(signal);
    if (code !== 0) {
      throw new RootfsBuildError(`mke2fs failed (exit ${code}): ${output.trim().slice(-2000)}`, {
        details: { cmd: "mke2fs", args, code },
      });
    }
  } finally {
    signal?.removeEventListener("abort", kill);
  }
}
