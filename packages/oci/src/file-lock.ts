import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { AbortedError } from "./errors.js";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Runs `fn` holding an inter-process lock (a directory created with
 * `mkdir`, which is atomic). A lock left by a dead process on this host, or
 * an ownerless one older than 30 s, is taken over. `onWait` is called once
 * when another live holder makes this call wait.
 */
export async function withFileLock<T>(
  lockDir: string,
  fn: () => Promise<T>,
  signal?: AbortSignal,
  onWait?: () => void,
): Promise<T> {
  await mkdir(join(lockDir, ".."), { recursive: true });
  const me = `${hostname()} ${process.pid}`;
  for (;;) {
    if (signal?.aborted) throw new AbortedError({ cause: signal.reason });
    try {
      await mkdir(lockDir);
      await writeFile(join(lockDir, "owner"), me);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    let stale = false;
    try {
      const [host, pid] = (await readFile(join(lockDir, "owner"), "utf8")).split(" ");
      stale = host === hostname() && !alive(Number(pid));
    } catch {
      const st = await stat(lockDir).catch(() => undefined);
      stale = st !== undefined && Date.now() - st.mtimeMs > 30_000;
    }
    if (stale) await rm(lockDir, { recursive: true, force: true });
    else {
      onWait?.();
      onWait = undefined;
      await sleep(200);
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lockDir, { recursive: true, force: true });
  }
}
