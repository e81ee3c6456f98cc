import { describe, expect, it, vi } from "vitest";
import { FakeFactory } from "./test-support/fake-factory.js";
import { codeOf, flush, track, usePools } from "./test-support/harness.js";
import { WorkerPool } from "./worker-pool.js";

const makePool = usePools();

describe("shutdown", () => {
  it("rejects waiters, revokes leases, destroys idle and lent workers at once", async () => {
    const ff = new FakeFactory();
    const pool = makePool(ff, { min: 2, max: 2, acquireTimeoutMs: 0 });
    await pool.ready();
    const lease = await pool.acquire();
    await pool.acquire();
    const waiter = track(pool.acquire());
    const done = pool.shutdown();
    expect(pool.isShutDown).toBe(true);
    expect(ff.created.map((w) => w.destroyed)).toEqual([1, 1]);
    expect(lease.active).toBe(false);
    expect(() => lease.worker).toThrow(expect.objectContaining({ code: "POOL_LEASE_RELEASED" }));
    await lease.release(); // safe after shutdown
    lease.reportDead();
    await done;
    expect(codeOf(waiter.error)).toBe("POOL_SHUT_DOWN");
    expect(ff.created.map((w) => w.destroyed)).toEqual([1, 1]);
    expect(pool.stats()).toEqual({ alive: 0, inUse: 0, idle: 0, waiting: 0, min: 2, max: 2 });
  });

  it("is idempotent and aliased by close() and Symbol.asyncDispose", async () => {
    const ff = new FakeFactory();
    const pool = makePool(ff);
    await pool.ready();
    const a = pool.shutdown();
    expect(pool.shutdown()).toBe(a);
    expect(pool.close()).toBe(a);
    expect(pool[Symbol.asyncDispose]()).toBe(a);
    await a;
    expect(ff.created[0]!.destroyed).toBe(1);
  });

  it("rejects acquire() and ready() afterwards with POOL_SHUT_DOWN", async () => {
    const ff = new FakeFactory();
    const pool = makePool(ff);
    await pool.shutdown();
    await expect(pool.acquire()).rejects.toMatchObject({ code: "POOL_SHUT_DOWN" });
    await expect(pool.ready()).rejects.toMatchObject({ code: "POOL_SHUT_DOWN" });
    pool.reportDead(ff.created[0]!);
  });

  it("rejects a pending ready()", async () => {
    const ff = new FakeFactory();
    ff.createDelayMs = 100;
    const pool = makePool(ff);
    const ready = track(pool.ready());
    void pool.shutdown();
    await flush();
    expect(codeOf(ready.error)).toBe("POOL_SHUT_DOWN");
  });

  it("waits for creations in flight, aborts their signal and destroys what they return", async () => {
    const ff = new FakeFactory();
    ff.createDelayMs = 100;
    let signal: AbortSignal | undefined;
    const base = ff.factory();
    const pool = new WorkerPool(
      {
        ...base,
        create: (s) => {
          signal = s;
          return base.create(s);
        },
      },
      { min: 1 },
    );
    const done = track(pool.shutdown());
    expect(signal?.aborted).toBe(true);
    expect(codeOf(signal?.reason)).toBe("POOL_SHUT_DOWN");
    await vi.advanceTimersByTimeAsync(99);
    expect(done.done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(done.done).toBe(true);
    expect(ff.created.map((w) => w.destroyed)).toEqual([1]);
  });

  it("waits for recycles in flight and destroys both old and new workers", async () => {
    const ff = new FakeFactory();
    ff.recycleDelayMs = 50;
    ff.recycleReturnsNew = true;
    const pool = makePool(ff);
    const lease = await pool.acquire();
    await lease.release();
    const done = track(pool.shutdown());
    await vi.advanceTimersByTimeAsync(49);
    expect(done.done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(done.done).toBe(true);
    expect(ff.created.map((w) => w.destroyed)).toEqual([1, 1]);
  });

  it("waits for destroy() calls to finish", async () => {
    const ff = new FakeFactory();
    ff.destroyDelayMs = 30;
    const pool = makePool(ff, { min: 3, max: 3 });
    await pool.ready();
    const done = track(pool.shutdown());
    expect(pool.counters().destroying).toBe(3);
    await vi.advanceTimersByTimeAsync(29);
    expect(done.done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(done.done).toBe(true);
    expect(pool.counters().destroying).toBe(0);
  });

  it("leaves no timer running: janitor, waiter timeouts and backoff are all cleared", async () => {
    const ff = new FakeFactory();
    // Janitor: an idle worker above min.
    const a = makePool(ff, { min: 0, max: 2, idleTimeoutMs: 1000, restoreOnRelease: false });
    await (await a.acquire()).release();
    expect(vi.getTimerCount()).toBe(1);
    // Waiter timeout: a saturated pool.
    const b = makePool(ff, { min: 1, max: 1 });
    await b.acquire();
    const waiter = track(b.acquire({ timeoutMs: 5000 }));
    expect(vi.getTimerCount()).toBe(2);
    // Backoff: a failing refill.
    ff.failCreates = true;
    const c = makePool(ff, { min: 1 });
    await flush();
    expect(vi.getTimerCount()).toBe(3);
    await Promise.all([a.shutdown(), b.shutdown(), c.shutdown()]);
    expect(vi.getTimerCount()).toBe(0);
    expect(codeOf(waiter.error)).toBe("POOL_SHUT_DOWN");
    expect(ff.live()).toEqual([]);
    expect(ff.created.every((w) => w.destroyed === 1)).toBe(true);
  });

  it("an abort after shutdown does not touch anything", async () => {
    const ff = new FakeFactory();
    const pool = makePool(ff, { acquireTimeoutMs: 0 });
    await pool.acquire();
    const ac = new AbortController();
    const w = track(pool.acquire({ signal: ac.signal }));
    await pool.shutdown();
    ac.abort();
    await flush();
    expect(codeOf(w.error)).toBe("POOL_SHUT_DOWN");
  });
});
