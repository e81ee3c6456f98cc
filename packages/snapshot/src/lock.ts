import { randomBytes } from "node:crypto";
import { link, readFile, stat, unlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { SnapshotError } from "./errors.js";
import { isLocal, isProcessAlive, type ProcessIdentity, selfIdentity } from "./process-identity.js";

/** Prefix of lock files in the snapshots directory: `.lock.<name>`. */
export const LOCK_PREFIX = ".lock.";
/** Suffix of the short-lived guard that serializes breaking a stale lock. */
const BREAK_SUFFIX = ".break";

/** The contents of a lock file. */
export interface LockOwner extends ProcessIdentity {
  /** Random token identifying this acquisition (release only removes its own). */
  token: string;
  /** When the lock was taken (ISO 8601). */
  acquiredAt: string;
}

/** Options of {@link acquireLock}. */
export interface LockOptions {
  /** Give up with `SNAPSHOT_LOCK_TIMEOUT` after this long (ms). Default: wait forever. */
  timeoutMs?: number;
  /** Abort the wait (`SNAPSHOT_ABORTED`). */
  signal?: AbortSignal;
  /**
   * Locks held by a process on another host cannot be checked by pid; they
   * count as stale when their file was not refreshed for this long (ms).
   * The holder refreshes it every `staleMs / 4`. Default 120 000.
   */
  staleMs?: number;
  /** Called once when the lock is busy and the caller starts waiting, with the holder. */
  onWait?: (holder: LockOwner | undefined) => void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function readOwner(path: string): Promise<LockOwner | undefined | "gone"> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "gone";
    throw err;
  }
  try {
    const o = JSON.parse(text) as LockOwner;
    return typeof o.pid === "number" && typeof o.token === "string" ? o : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Creates `path` holding `owner` atomically: the JSON is written to a
 * private temp file that is then hard-linked to `path` (link fails with
 * EEXIST if `path` exists), so a lock file is never seen half written.
 */
async function createExclusive(path: string, owner: LockOwner): Promise<boolean> {
  const tmp = `${path}.${owner.token}.tmp`;
  await writeFile(tmp, `${JSON.stringify(owner)}\n`, { flag: "wx" });
  try {
    await link(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

async function isStale(path: string, owner: LockOwner | undefined, staleMs: number): Promise<boolean> {
  if (owner && isLocal(owner)) return !isProcessAlive(owner);
  // Another host, or unreadable contents: judge by the heartbeat (mtime).
  try {
    const st = await stat(path);
    return Date.now() - st.mtimeMs > staleMs;
  } catch {
    return false;
  }
}

/** Removes `path` only if it still holds `token` (no one took it over meanwhile). */
async function unlinkIfToken(path: string, token: string | undefined): Promise<void> {
  const now = await readOwner(path);
  if (now === "gone") return;
  if ((now?.token ?? undefined) !== token) return;
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "ENOENT") throw err;
  });
}

/**
 * Breaks a stale lock. Breakers serialize on a guard file (taken the same
 * way as the lock) and re-check, under the guard, that the lock file still
 * holds the stale owner's token before removing it, so a breaker never
 * removes a lock that another process has just taken.
 */
async function breakStale(path: string, staleToken: string | undefined, staleMs: number): Promise<void> {
  const guard = `${path}${BREAK_SUFFIX}`;
  const me: LockOwner = {
    ...selfIdentity(),
    token: randomBytes(8).toString("hex"),
    acquiredAt: new Date().toISOString(),
  };
  if (!(await createExclusive(guard, me))) {
    // Someone else is breaking it. If that breaker died mid-break, clear its guard.
    const g = await readOwner(guard);
    if (g !== "gone" && (await isStale(guard, g, Math.min(staleMs, 10_000)))) {
      await unlinkIfToken(guard, g?.token);
    }
    return;
  }
  try {
    const cur = await readOwner(path);
    if (cur !== "gone" && (cur?.token ?? undefined) === staleToken && (await isStale(path, cur, staleMs))) {
      await unlink(path).catch(() => {});
    }
  } finally {
    await unlinkIfToken(guard, me.token);
  }
}

/**
 * A held cross-process lock. Release it with {@link SnapshotLock.release}
 * (idempotent), `close()` or `await using`.
 */
export class SnapshotLock {
  private released = false;
  private readonly heartbeat: NodeJS.Timeout;

  /** @internal */
  constructor(
    /** Path of the lock file. */
    readonly path: string,
    /** The owner record written into it. */
    readonly owner: LockOwner,
    staleMs: number,
  ) {
    this.heartbeat = setInterval(
      () => {
        const t = new Date();
        utimes(this.path, t, t).catch(() => {});
      },
      Math.max(1000, Math.floor(staleMs / 4)),
    );
    this.heartbeat.unref();
  }

  /** Releases the lock (removes the lock file if it is still ours). Idempotent. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearInterval(this.heartbeat);
    await unlinkIfToken(this.path, this.owner.token);
  }

  /** Same as {@link SnapshotLock.release}. */
  async close(): Promise<void> {
    await this.release();
  }

  /** Same as {@link SnapshotLock.release}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }
}

/** The lock file path for `key` in `dir`. */
export function lockPath(dir: string, key: string): string {
  return join(dir, `${LOCK_PREFIX}${key}`);
}

/**
 * Takes the cross-process lock `key` in directory `dir` once, or returns
 * undefined when a live process holds it. A stale lock (holder dead) is
 * broken and retried.
 */
export async function tryAcquireLock(
  dir: string,
  key: string,
  options: Pick<LockOptions, "staleMs"> = {},
): Promise<SnapshotLock | undefined> {
  const staleMs = options.staleMs ?? 120_000;
  const path = lockPath(dir, key);
  for (let attempt = 0; attempt < 5; attempt++) {
    const owner: LockOwner = {
      ...selfIdentity(),
      token: randomBytes(12).toString("hex"),
      acquiredAt: new Date().toISOString(),
    };
    if (await createExclusive(path, owner)) return new SnapshotLock(path, owner, staleMs);
    const holder = await readOwner(path);
    if (holder === "gone") continue;
    if (!(await isStale(path, holder, staleMs))) return undefined;
    await breakStale(path, holder?.token, staleMs);
  }
  return undefined;
}

/**
 * Takes the cross-process lock `key` in directory `dir`, waiting while a
 * live process holds it. The lock is a file `.lock.<key>` created
 * atomically (hard link of a fully written temp file) that records the
 * holder's pid, process start time, host and boot id; a lock whose holder is
 * gone (crashed, SIGKILLed, pid reused, host rebooted) is detected and
 * taken over. See the package README for the full mechanism.
 */
export async function acquireLock(
  dir: string,
  key: string,
  options: LockOptions = {},
): Promise<SnapshotLock> {
  const started = Date.now();
  let delay = 20;
  let notified = false;
  for (;;) {
    if (options.signal?.aborted) {
      throw new SnapshotError("SNAPSHOT_ABORTED", `waiting for the lock ${key} was aborted`, {
        cause: options.signal.reason,
      });
    }
    const lock = await tryAcquireLock(dir, key, options);
    if (lock) return lock;
    if (!notified) {
      notified = true;
      const holder = await readOwner(lockPath(dir, key));
      options.onWait?.(holder === "gone" ? undefined : holder);
    }
    if (options.timeoutMs !== undefined && Date.now() - started >= options.timeoutMs) {
      const holder = await readOwner(lockPath(dir, key));
      throw new SnapshotError(
        "SNAPSHOT_LOCK_TIMEOUT",
        `lock ${key} in ${dir} is still held after ${options.timeoutMs} ms`,
        {
          details: { dir, key, holder: holder === "gone" ? undefined : holder },
        },
      );
    }
    await sleep(delay);
    delay = Math.min(250, Math.round(delay * 1.5));
  }
}
