import { describe, expect, it, vi } from "vitest";
import type { PoolEvent } from "./events.js";
import { FakeFactory } from "./test-support/fake-factory.js";
import { codeOf, flush, track, usePools } from "./test-support/harness.js";
import { WorkerPool } from "./worker-pool.js";

const makePool = usePools();

describe("dead workers", () => {
  it("lease.reportDead drops the worker and a replacement keeps min", async () => {
    const ff = new FakeFactory();
    const events: PoolEvent[] = [];
    const pool = makePool(ff, { min: 2, max: 2, onEvent: (e) => events.push(e) });
    await pool.ready();
    const lease = await pool.acquire();
    const dead = lease.worker;
    lease.reportDead();
    expect(lease.active).toBe(false);
    expect(dead.destroyed).toBe(1);
    expect(pool.counters()).toMatchObject({ alive: 1, inUse: 0, idle: 1, creating: 1 });
    await flush();
    expect(pool.stats()).toMatchObject({ alive: 2, idle: 2 });
    expect(events).toEqual([{ type: "worker-dropped", reason: "reported-dead" }]);
    await lease.release(); // no-op after death
    expect(pool.stats()).toMatchObject({ alive: 2, idle: 2 });
  });

  it("a death while a waiter queues serves the waiter with the replacement", async () => {
    const ff = new FakeFactory();
    ff.createDelayMs = 10;
    const pool = makePool(ff, { min: 1, max: 1 });
    await vi.advanceTimersByTimeAsync(10);
    const lease = await pool.acquire();
    const w = track(pool.acquire());
    expect(ff.createCalls).toBe(1);
    pool.reportDead(lease.worker);
    expect(ff.createCalls).toBe(2);
    await vi.advanceTimersByTimeAsync(10);
    expect(w.value?.worker.id).toBe(2);
  });

  it("pool.reportDead on an idle worker drops it and refills", async () => {
    const ff = new FakeFactory();
    const pool = makePool(ff, { min: 1 });
    await pool.ready();
    const w = ff.created[0]!;
    pool.reportDead(w);
    expect(w.destroyed).toBe(1);
    await flush();
    expect(pool.stats()).toMatchObject({ alive: 1, idle: 1 });
    expect((await pool.acquire()).worker.id).toBe(2);
    pool.reportDead(w); // unknown/stale: ignored
    expect(w.destroyed).toBe(1);
  });

  it("a worker reported dead while recycling is dropped when the recycle ends", async () => {
    const ff = new FakeFactory();
    ff.recycleDelayMs = 10;
    const pool = makePool(ff, { min: 1 });
    const lease = await pool.acquire();
    const w = lease.worker;
    await lease.release();
    pool.reportDead(w);
    await vi.advanceTimersByTimeAsync(10);
    expect(w.destroyed).toBe(1);
    const next = await pool.acquire();
    expect(next.worker).not.toBe(w);
  });

  it("isAlive false at checkout drops the worker and hands out a live one", async () => {
    const ff = new FakeFactory();
    const events: PoolEvent[] = [];
    const pool = makePool(ff, { min: 2, max: 2, onEvent: (e) => events.push(e) });
    await pool.ready();
    ff.created[1]!.alive = false; // the one LIFO would hand out first
    const lease = await pool.acquire();
    expect(lease.worker).toBe(ff.created[0]);
    expect(ff.created[1]!.destroyed).toBe(1);
    expect(events).toContainEqual({ type: "worker-dropped", reason: "not-alive" });
    await flush();
    expect(pool.stats()).toMatchObject({ alive: 2, idle: 1, inUse: 1 });
  });

  it("an isAlive that throws counts as dead; all idle dead means the caller waits for a fresh one", async () => {
    const ff = new FakeFactory();
    const base = ff.factory();
    let broken = false;
    const pool = new WorkerPool(
      {
        ...base,
        isAlive: (w) => {
          if (broken && w.id === 1) throw new Error("probe failed");
          return true;
        },
      },
      { min: 1 },
    );
    await pool.ready();
    broken = true;
    const lease = await pool.acquire();
    expect(lease.worker.id).toBe(2);
    expect(ff.created[0]!.destroyed).toBe(1);
    await pool.shutdown();
  });

  it("a failed recycle destroys the worker and a replacement serves the waiter", async () => {
    const ff = new FakeFactory();
    ff.failRecycles = true;
    const events: PoolEvent[] = [];
    const pool = makePool(ff, { min: 1, max: 1, onEvent: (e) => events.push(e) });
    const lease = await pool.acquire();
    const w = lease.worker;
    const next = track(pool.acquire());
    await lease.release();
    await flush();
    expect(w.destroyed).toBe(1);
    expect(next.value?.worker.id).toBe(2);
    expect(events.map((e) => e.type)).toEqual(["recycle-failed"]);
    expect(pool.stats()).toMatchObject({ alive: 1, inUse: 1 });
  });
});

describe("creation failures", () => {
  it("retries with exponential backoff, capped, and resets after a success", async () => {
    const ff = new FakeFactory();
    ff.failCreates = true;
    const events: PoolEvent[] = [];
    const pool = makePool(ff, {
      min: 1,
      retryInitialDelayMs: 100,
      retryMaxDelayMs: 1000,
      onEvent: (e) => events.push(e),
    });
    const t0 = Date.now();
    await vi.advanceTimersByTimeAsync(100 + 200 + 400 + 800 + 1000 + 1000);
    expect(ff.createTimes.map((t) => t - t0)).toEqual([0, 100, 300, 700, 1500, 2500, 3500]);
    expect(events.map((e) => (e.type === "create-failed" ? e.retryInMs : -1))).toEqual([
      100, 200, 400, 800, 1000, 1000, 1000,
    ]);
    expect(pool.stats().alive).toBe(0);
    ff.failCreates = false;
    await vi.advanceTimersByTimeAsync(1000);
    expect(pool.stats()).toMatchObject({ alive: 1, idle: 1 });
    // The streak was reset: the next failure waits the initial delay again.
    ff.failCreates = true;
    const start = ff.createCalls;
    pool.reportDead(ff.created[0]!);
    await vi.advanceTimersByTimeAsync(100);
    expect(ff.createCalls - start).toBe(2);
  });

  it("ready() rejects with POOL_CREATE_FAILED carrying the factory error", async () => {
    const ff = new FakeFactory();
    ff.plan = [true];
    const pool = makePool(ff, { min: 1 });
    const err = await pool.ready().catch((e: unknown) => e);
    expect(codeOf(err)).toBe("POOL_CREATE_FAILED");
    expect((err as Error).cause).toEqual(new Error("create #1 failed"));
    // The pool keeps retrying in the background and recovers.
    await vi.advanceTimersByTimeAsync(100);
    await pool.ready();
    expect(pool.stats().alive).toBe(1);
  });

  it("a waiter nothing else can serve gets the creation error instead of hanging (timeout 0)", async () => {
    const ff = new FakeFactory();
    ff.failCreates = true;
    const pool = makePool(ff, { min: 0, max: 1, acquireTimeoutMs: 0 });
    const err = await pool.acquire().catch((e: unknown) => e);
    expect(codeOf(err)).toBe("POOL_CREATE_FAILED");
    expect(pool.stats().waiting).toBe(0);
  });

  it("each failure rejects at most one uncovered waiter; others wait for the retry", async () => {
    const ff = new FakeFactory();
    ff.plan = [true, false];
    const pool = makePool(ff, { min: 0, max: 1, acquireTimeoutMs: 0, retryInitialDelayMs: 50 });
    const a = track(pool.acquire());
    const b = track(pool.acquire());
    await flush();
    expect(codeOf(a.error)).toBe("POOL_CREATE_FAILED");
    expect(b.done).toBe(false);
    expect(pool.stats().waiting).toBe(1);
    await vi.advanceTimersByTimeAsync(50);
    expect(b.value?.worker.id).toBe(1);
  });

  it("a waiter covered by another creation in flight is not failed by a sibling's failure", async () => {
    const ff = new FakeFactory();
    ff.createDelayMs = 10;
    ff.plan = [true, false];
    const pool = makePool(ff, { min: 0, max: 2 });
    const a = track(pool.acquire());
    const b = track(pool.acquire());
    expect(ff.createCalls).toBe(2);
    await vi.advanceTimersByTimeAsync(10);
    // One creation failed, one succeeded: the oldest waiter is served, the other gets the error.
    expect(a.value?.worker.id).toBe(1);
    expect(codeOf(b.error)).toBe("POOL_CREATE_FAILED");
  });

  it("a waiter that can be served by a release keeps waiting through backoff", async () => {
    const ff = new FakeFactory();
    const pool = makePool(ff, { min: 1, max: 2, restoreOnRelease: false });
    const held = await pool.acquire();
    ff.failCreates = true;
    const w = track(pool.acquire());
    await flush();
    expect(codeOf(w.error)).toBe("POOL_CREATE_FAILED");
    // During backoff, a new waiter is served by the release.
    const w2 = track(pool.acquire());
    const heldWorker = held.worker;
    await held.release();
    await flush();
    expect(w2.value?.worker).toBe(heldWorker);
  });

  it("without factory.recycle a failing re-create counts as a creation failure", async () => {
    const ff = new FakeFactory();
    const events: PoolEvent[] = [];
    const pool = makePool(ff, { min: 1, max: 1, onEvent: (e) => events.push(e) }, { recycle: false });
    const lease = await pool.acquire();
    ff.plan = [true];
    const w = track(pool.acquire());
    await lease.release();
    await flush();
    expect(codeOf(w.error)).toBe("POOL_CREATE_FAILED");
    expect(events.map((e) => e.type)).toEqual(["create-failed"]);
    await vi.advanceTimersByTimeAsync(100);
    expect(pool.stats()).toMatchObject({ alive: 1, idle: 1 });
  });

  it("a factory whose create throws synchronously is handled like a rejection", async () => {
    const ff = new FakeFactory();
    const pool = new WorkerPool(
      {
        ...ff.factory(),
        create: () => {
          throw new Error("sync boom");
        },
      },
      { min: 1 },
    );
    await expect(pool.ready()).rejects.toMatchObject({ code: "POOL_CREATE_FAILED" });
    await pool.shutdown();
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("destroy failures", () => {
  it("are reported as events and do not break the pool", async () => {
    const ff = new FakeFactory();
    ff.failDestroys = true;
    const events: PoolEvent[] = [];
    const pool = makePool(ff, { min: 1, onEvent: (e) => events.push(e) });
    const lease = await pool.acquire();
    lease.reportDead();
    await flush();
    expect(events.map((e) => e.type)).toEqual(["worker-dropped", "destroy-failed"]);
    expect(pool.stats()).toMatchObject({ alive: 1, idle: 1 });
    await pool.shutdown();
    expect(events.filter((e) => e.type === "destroy-failed")).toHaveLength(2);
  });

  it("an onEvent that throws is ignored", async () => {
    const ff = new FakeFactory();
    const pool = makePool(ff, {
      onEvent: () => {
        throw new Error("observer bug");
      },
    });
    const lease = await pool.acquire();
    lease.reportDead();
    await flush();
    expect(pool.stats()).toMatchObject({ alive: 1, idle: 1 });
  });
});
