import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir, readFile, utimes, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SnapshotError } from "./errors.js";
import { acquireLock, type LockOwner, lockPath, tryAcquireLock } from "./lock.js";
import { selfIdentity } from "./process-identity.js";
import { makeTestDirs, type TestDirs } from "./test-support/fixtures.js";

let t: TestDirs;
beforeEach(async () => {
  t = await makeTestDirs();
});
afterEach(async () => {
  await t.cleanup();
});

function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", ""]);
  return r.pid!;
}

async function writeOwner(path: string, over: Partial<LockOwner>): Promise<void> {
  const owner: LockOwner = {
    ...selfIdentity(),
    token: "planted",
    acquiredAt: new Date().toISOString(),
    ...over,
  };
  await writeFile(path, JSON.stringify(owner));
}

describe("cross-process lock", () => {
  it("is exclusive, records its owner, and release is idempotent", async () => {
    const lock = await acquireLock(t.root, "x");
    const owner = JSON.parse(await readFile(lockPath(t.root, "x"), "utf8")) as LockOwner;
    expect(owner).toMatchObject({ pid: process.pid, host: hostname(), token: lock.owner.token });
    expect(owner.startTime).toMatch(/^\d+$/);
    expect(await tryAcquireLock(t.root, "x")).toBeUndefined();
    await lock.release();
    await lock.release();
    expect(existsSync(lockPath(t.root, "x"))).toBe(false);
    {
      await using again = await tryAcquireLock(t.root, "x");
      expect(again).toBeDefined();
    }
    expect(existsSync(lockPath(t.root, "x"))).toBe(false);
    // No temp files left behind by the link-based creation.
    expect(await readdir(t.root)).toEqual(["cache"]);
  });

  it("release does not remove a lock someone else holds now", async () => {
    const lock = await acquireLock(t.root, "y");
    await writeOwner(lockPath(t.root, "y"), { token: "someone-else" });
    await lock.release();
    expect(existsSync(lockPath(t.root, "y"))).toBe(true);
  });

  it("serializes holders within one process", async () => {
    // Every holder asks while the first one holds the lock, so the others must wait.
    const log: string[] = [];
    const waited: number[] = [];
    const first = await acquireLock(t.root, "z");
    const others = Promise.all(
      [1, 2, 3].map(async (i) => {
        const lock = await acquireLock(t.root, "z", { onWait: () => waited.push(i) });
        log.push(`in ${i}`);
        await new Promise((r) => setTimeout(r, 10));
        log.push(`out ${i}`);
        await lock.release();
      }),
    );
    for (const deadline = Date.now() + 10_000; waited.length < 3; await new Promise((r) => setTimeout(r, 5)))
      if (Date.now() > deadline) throw new Error(`only ${waited.length} of 3 waiters waited`);
    expect(log).toEqual([]);
    await first.release();
    await others;
    expect(waited.sort()).toEqual([1, 2, 3]);
    // One holder at a time: entries and exits strictly alternate, each exit by the holder that entered.
    expect(log).toHaveLength(6);
    for (let k = 0; k < log.length; k += 2) {
      expect(log[k]).toMatch(/^in \d$/);
      expect(log[k + 1]).toBe(log[k]?.replace("in", "out"));
    }
  });

  it("takes over a lock whose holder process is gone", async () => {
    await writeOwner(lockPath(t.root, "dead"), { pid: deadPid(), token: "dead-token" });
    const lock = await tryAcquireLock(t.root, "dead");
    expect(lock).toBeDefined();
    expect(lock?.owner.pid).toBe(process.pid);
    await lock?.release();
  });

  it("takes over a lock whose pid was reused by another process (start time differs)", async () => {
    await writeOwner(lockPath(t.root, "reused"), { pid: process.pid, startTime: "1", token: "old-token" });
    const lock = await tryAcquireLock(t.root, "reused");
    expect(lock?.owner.token).not.toBe("old-token");
    await lock?.release();
  });

  it("takes over a lock from before a reboot (boot id differs)", async () => {
    // Linux always has a boot id; without one this check could not run, so that fails too.
    expect(selfIdentity().bootId).toMatch(/^[0-9a-f-]{36}$/);
    await writeOwner(lockPath(t.root, "boot"), { bootId: "another-boot", token: "old-boot" });
    const lock = await tryAcquireLock(t.root, "boot");
    expect(lock).toBeDefined();
    await lock?.release();
  });

  it("judges a lock from another host by its heartbeat age", async () => {
    const path = lockPath(t.root, "remote");
    await writeOwner(path, { host: "some-other-host", pid: 1, token: "remote" });
    expect(await tryAcquireLock(t.root, "remote", { staleMs: 60_000 })).toBeUndefined();
    const old = new Date(Date.now() - 120_000);
    await utimes(path, old, old);
    const lock = await tryAcquireLock(t.root, "remote", { staleMs: 60_000 });
    expect(lock).toBeDefined();
    await lock?.release();
  });

  it("concurrent waiters on a stale lock: exactly one holds it at a time", async () => {
    await writeOwner(lockPath(t.root, "race"), { pid: deadPid(), token: "stale" });
    let inside = 0;
    let maxInside = 0;
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        const lock = await acquireLock(t.root, "race");
        inside++;
        maxInside = Math.max(maxInside, inside);
        await new Promise((r) => setTimeout(r, 5));
        inside--;
        await lock.release();
      }),
    );
    expect(maxInside).toBe(1);
    expect(await readdir(t.root)).toEqual(["cache"]);
  });

  it("times out with SNAPSHOT_LOCK_TIMEOUT naming the holder, and reports the wait", async () => {
    const lock = await acquireLock(t.root, "busy");
    const waits: Array<LockOwner | undefined> = [];
    const err = await acquireLock(t.root, "busy", { timeoutMs: 50, onWait: (h) => waits.push(h) }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(SnapshotError);
    expect(err.code).toBe("SNAPSHOT_LOCK_TIMEOUT");
    expect(err.details.holder.pid).toBe(process.pid);
    expect(waits).toHaveLength(1);
    expect(waits[0]?.token).toBe(lock.owner.token);
    await lock.release();
  });

  it("stops waiting with SNAPSHOT_ABORTED when aborted", async () => {
    const lock = await acquireLock(t.root, "abort");
    const ac = new AbortController();
    const p = acquireLock(t.root, "abort", { signal: ac.signal, onWait: () => ac.abort(new Error("stop")) });
    await expect(p).rejects.toMatchObject({ code: "SNAPSHOT_ABORTED" });
    await lock.release();
  });

  it("lock files are created atomically (never empty) even under contention", async () => {
    const seen: string[] = [];
    const path = lockPath(t.root, "atomic");
    let done = false;
    const reader = (async () => {
      while (!done) {
        try {
          seen.push(await readFile(path, "utf8"));
        } catch {
          // absent between holders
        }
        await new Promise((r) => setImmediate(r));
      }
    })();
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        const l = await acquireLock(t.root, "atomic");
        await new Promise((r) => setTimeout(r, 2));
        await l.release();
      }),
    );
    done = true;
    await reader;
    expect(seen.length).toBeGreaterThan(0);
    for (const s of seen) expect(() => JSON.parse(s)).not.toThrow();
  });
});
