import { describe, expect, it, vi } from "vitest";
import { FakeFactory } from "./test-support/fake-factory.js";
import { codeOf, flush, track, usePools } from "./test-support/harness.js";

const makePool = usePools();

describe("startup", () => {
  it("creates min workers eagerly and ready() resolves once they are alive", async () => {
    const ff = new FakeFactory();
    ff.createDelayMs = 50;
    const pool = makePool(ff, { min: 3, max: 5 });
    expect(ff.createCalls).toBe(3);
    expect(pool.counters()).toMatchObject({ alive: 0, creating: 3, idle: 0 });
    const ready = track(pool.ready());
    await vi.advanceTimersByTimeAsync(49);
    expect(ready.done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(ready.done).toBe(true);
    expect(pool.stats()).toEqual({ alive: 3, inUse: 0, idle: 3, waiting: 0, min: 3, max: 5 });
  });

  it("defaults to min 1, max 1", async () => {
    const ff = new FakeFactory();
    const pool = makePool(ff);
    await pool.ready();
    expect(pool.stats()).toEqual({ alive: 1, inUse: 0, idle: 1, waiting: 0, min: 1, max: 1 });
  });

  it("min 0 creates nothing until asked", async () => {
    const ff = new FakeFactory();
    const pool = makePool(ff, { min: 0, max: 2 });
    await pool.ready();
    await flush();
    expect(ff.createCalls).toBe(0);
    const lease = await pool.acquire();
    expect(ff.createCalls).toBe(1);
    expect(lease.worker.id).toBe(1);
  });
});

describe("acquire", () => {
  it("pops an idle worker at once and grows up to max under demand", async () => {
    const ff = new FakeFactory();
    ff.createDelayMs = 10;
    const pool = makePool(ff, { min: 1, max: 3 });
    await vi.advanceTimersByTimeAsync(10);
    const a = await pool.acquire();
    expect(ff.createCalls).toBe(1);
    expect(pool.stats()).toMatchObject({ alive: 1, inUse: 1, idle: 0 });
    const b = track(pool.acquire());
    const c = track(pool.acquire());
    const d = track(pool.acquire());
    expect(ff.createCalls).toBe(3);
    expect(pool.counters()).toMatchObject({ alive: 1, inUse: 1, waiting: 3, creating: 2 });
    await vi.advanceTimersByTimeAsync(10);
    expect(b.done && c.done).toBe(true);
    expect(d.done).toBe(false);
    expect(pool.stats()).toEqual({ alive: 3, inUse: 3, idle: 0, waiting: 1, min: 1, max: 3 });
    const ids = new Set([a.worker.id, b.value!.worker.id, c.value!.worker.id]);
    expect(ids.size).toBe(3);
    expect(ff.createCalls).toBe(3);
    const aWorker = a.worker;
    await a.release();
    await flush();
    expect(d.value?.worker).toBe(aWorker);
  });

  it("serves waiters in FIFO order", async () => {
    const ff = new FakeFactory();
    const pool = makePool(ff, { min: 1, max: 1, restoreOnRelease: false });
    let lease = await pool.acquire();
    const order: number[] = [];
    const waits = [0, 1, 2, 3, 4].map((i) =>
      pool.acquire().then((l) => {
        order.push(i);
        return l;
      }),
    );
    expect(pool.stats().waiting).toBe(5);
    for (let i = 0; i < 5; i++) {
      await lease.release();
      lease = await waits[i]!;
    }
    expect(order).toEqual([0, 1, 2, 3, 4]);
    expect(pool.stats()).toMatchObject({ waiting: 0, inUse: 1 });
  });

  it("hands the most recently released idle worker out first (LIFO idle queue)", async () => {
    const ff = new FakeFactory();
    const pool = makePool(ff, { min: 3, max: 3, restoreOnRelease: false });
    await pool.ready();
    const ls = [await pool.acquire(), await pool.acquire(), await pool.acquire()];
    const second = ls[1]!.worker;
    await ls[0]!.release();
    await ls[1]!.release();
    expect((await pool.acquire()).worker).toBe(second);
  });

  it("times out with POOL_ACQUIRE_TIMEOUT after acquireTimeoutMs", async () => {
    const ff = new FakeFactory();
    const pool = makePool(ff, { min: 1, max: 1, acquireTimeoutMs: 1000 });
    await pool.acquire();
    const w = track(pool.acquire());
    await vi.advanceTimersByTimeAsync(999);
    expect(w.done).toBe(false);
    expect(pool.stats().waiting).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(codeOf(w.error)).toBe("POOL_ACQUIRE_TIMEOUT");
    expect((w.error as { details: Record<string, unknown> }).details).toMatchObject({ timeoutMs: 1000 });
    expect(pool.stats().waiting).toBe(0);
  });

  it("uses 60 s as the default timeout", async () => {
    const ff = new FakeFactory();
    const pool = makePool(ff);
    await pool.acquire();
    const w = track(pool.acquire());
    await vi.advanceTimersByTimeAsync(59_999);
    expect(w.done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(codeOf(w.error)).toBe("POOL_ACQUIRE_TIMEOUT");
  });

  it("acquireTimeoutMs 0 waits forever, and is served when a worker frees up", async () => {
    const ff = new FakeFactory();
    const pool = makePool(ff, { acquireTimeoutMs: 0, restoreOnRelease: false });
    const held = await pool.acquire();
    const w = track(pool.acquire());
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(365 * 24 * 3600 * 1000);
    expect(w.done).toBe(false);
    await held.release();
    await flush();
    expect(w.value?.worker).toBe(ff.created[0]);
  });

  it("a per-call timeoutMs overrides the pool's", async () => {
    const ff = new FakeFactory();
    const pool = makePool(ff, { acquireTimeoutMs: 0 });
    await pool.acquire();
    const w = track(pool.acquire({ timeoutMs: 5 }));
    await vi.advanceTimersByTimeAsync(5);
    expect(codeOf(w.error)).toBe("POOL_ACQUIRE_TIMEOUT");
    await expect(pool.acquire({ timeoutMs: -1 })).rejects.toMatchObject({ code: "INVALID_OPTIONS" });
  });

  it("an AbortSignal cancels the wait with POOL_ACQUIRE_ABORTED and leaves the queue intact", async () => {
    const ff = new FakeFactory();
    const pool = makePool(ff, { restoreOnRelease: false });
    const held = await pool.acquire();
    const ac = new AbortController();
    const a = track(pool.acquire({ signal: ac.signal }));
    const b = track(pool.acquire());
    expect(pool.stats().waiting).toBe(2);
    const reason = new Error("caller gave up");
    ac.abort(reason);
    await flush();
    expect(codeOf(a.error)).toBe("POOL_ACQUIRE_ABORTED");
    expect((a.error as Error).cause).toBe(reason);
    expect(pool.stats().waiting).toBe(1);
    await held.release();
    await flush();
    expect(b.value?.worker).toBe(ff.created[0]);
    // Already-aborted signals reject at once, even with an idle worker there.
    await b.value!.release();
    await expect(pool.acquire({ signal: AbortSignal.abort() })).rejects.toMatchObject({
      code: "POOL_ACQUIRE_ABORTED",
    });
    expect(pool.stats()).toMatchObject({ idle: 1, inUse: 0 });
  });

  it("a timed-out waiter does not consume the worker that arrives later", async () => {
    const ff = new FakeFactory();
    ff.createDelayMs = 100;
    const pool = makePool(ff, { min: 0, max: 1, acquireTimeoutMs: 50 });
    const a = track(pool.acquire());
    await vi.advanceTimersByTimeAsync(50);
    expect(codeOf(a.error)).toBe("POOL_ACQUIRE_TIMEOUT");
    await vi.advanceTimersByTimeAsync(50);
    expect(pool.stats()).toMatchObject({ alive: 1, idle: 1, inUse: 0 });
    const b = await pool.acquire();
    expect(b.worker.id).toBe(1);
    expect(ff.createCalls).toBe(1);
  });
});

describe("leases", () => {
  it("release is idempotent and the worker is unreadable afterwards", async () => {
    const ff = new FakeFactory();
    const pool = makePool(ff, { restoreOnRelease: false });
    const lease = await pool.acquire();
    expect(lease.active).toBe(true);
    await lease.release();
    await lease.release();
    expect(lease.active).toBe(false);
    expect(() => lease.worker).toThrow(expect.objectContaining({ code: "POOL_LEASE_RELEASED" }));
    expect(pool.stats()).toMatchObject({ alive: 1, idle: 1, inUse: 0 });
    // A stale lease cannot release the worker out from under its new holder.
    const again = await pool.acquire();
    await lease.release();
    lease.reportDead();
    expect(again.active).toBe(true);
    expect(pool.stats()).toMatchObject({ alive: 1, idle: 0, inUse: 1 });
  });

  it("supports await using", async () => {
    const ff = new FakeFactory();
    const pool = makePool(ff, { restoreOnRelease: false });
    {
      await using lease = await pool.acquire();
      expect(pool.stats().inUse).toBe(1);
      expect(lease.worker.id).toBe(1);
    }
    expect(pool.stats()).toMatchObject({ inUse: 0, idle: 1 });
  });
});

describe("release and recycling", () => {
  it("restoreOnRelease (default) recycles in the background before the worker is idle again", async () => {
    const ff = new FakeFactory();
    ff.recycleDelayMs = 30;
    const pool = makePool(ff);
    const lease = await pool.acquire();
    const w = lease.worker;
    w.dirty = 7;
    const released = lease.release();
    await released; // does not wait for the recycle
    expect(pool.counters()).toMatchObject({ alive: 1, inUse: 0, idle: 0, recycling: 1 });
    const next = track(pool.acquire());
    expect(ff.createCalls).toBe(1); // the recycling worker covers the waiter: no growth
    await vi.advanceTimersByTimeAsync(30);
    expect(next.value?.worker).toBe(w);
    expect(w).toMatchObject({ dirty: 0, recycled: 1 });
  });

  it("restoreOnRelease false hands the worker on as is, state included", async () => {
    const ff = new FakeFactory();
    const pool = makePool(ff, { restoreOnRelease: false });
    const lease = await pool.acquire();
    lease.worker.dirty = 3;
    await lease.release();
    const again = await pool.acquire();
    expect(again.worker.dirty).toBe(3);
    expect(ff.recycleCalls).toBe(0);
  });

  it("a recycle returning a new worker destroys the old one", async () => {
    const ff = new FakeFactory();
    ff.recycleReturnsNew = true;
    const pool = makePool(ff);
    const lease = await pool.acquire();
    const old = lease.worker;
    await lease.release();
    await flush();
    expect(old.destroyed).toBe(1);
    const fresh = await pool.acquire();
    expect(fresh.worker).not.toBe(old);
    expect(pool.stats()).toMatchObject({ alive: 1, inUse: 1 });
  });

  it("without factory.recycle, a release destroys the worker and creates a fresh one", async () => {
    const ff = new FakeFactory();
    ff.createDelayMs = 20;
    const pool = makePool(ff, {}, { recycle: false });
    await vi.advanceTimersByTimeAsync(20);
    const lease = await pool.acquire();
    const old = lease.worker;
    await lease.release();
    expect(old.destroyed).toBe(1);
    expect(pool.counters()).toMatchObject({ alive: 1, recycling: 1, idle: 0 });
    await vi.advanceTimersByTimeAsync(20);
    expect(pool.counters()).toMatchObject({ alive: 1, recycling: 0, idle: 1 });
    const next = await pool.acquire();
    expect(next.worker.id).toBe(2);
  });
});

describe("idle eviction", () => {
  it("evicts idle workers above min after idleTimeoutMs, never below min", async () => {
    const ff = new FakeFactory();
    const events: string[] = [];
    const pool = makePool(ff, {
      min: 1,
      max: 4,
      idleTimeoutMs: 1000,
      restoreOnRelease: false,
      onEvent: (e) => events.push(e.type === "worker-dropped" ? e.reason : e.type),
    });
    await pool.ready();
    const ls = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire(), pool.acquire()]);
    expect(pool.stats().alive).toBe(4);
    const first = ls[0]!.worker;
    await ls[0]!.release();
    await vi.advanceTimersByTimeAsync(400);
    await ls[1]!.release();
    await ls[2]!.release();
    await vi.advanceTimersByTimeAsync(599);
    expect(pool.stats().alive).toBe(4);
    await vi.advanceTimersByTimeAsync(1);
    expect(pool.stats()).toMatchObject({ alive: 3, idle: 2, inUse: 1 });
    expect(first.destroyed).toBe(1);
    await vi.advanceTimersByTimeAsync(400);
    expect(pool.stats()).toMatchObject({ alive: 1, idle: 0, inUse: 1 });
    await ls[3]!.release();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(pool.stats()).toMatchObject({ alive: 1, idle: 1 });
    expect(events).toEqual(["idle-timeout", "idle-timeout", "idle-timeout"]);
    expect(ff.live()).toHaveLength(1);
  });

  it("a worker taken and returned restarts its idle clock", async () => {
    const ff = new FakeFactory();
    const pool = makePool(ff, { min: 0, max: 2, idleTimeoutMs: 100, restoreOnRelease: false });
    let l = await pool.acquire();
    await l.release();
    await vi.advanceTimersByTimeAsync(90);
    l = await pool.acquire();
    await l.release();
    await vi.advanceTimersByTimeAsync(90);
    expect(pool.stats().alive).toBe(1);
    await vi.advanceTimersByTimeAsync(10);
    expect(pool.stats().alive).toBe(0);
  });

  it("without idleTimeoutMs workers above min stay, and no janitor timer runs", async () => {
    const ff = new FakeFactory();
    const pool = makePool(ff, { min: 0, max: 2, restoreOnRelease: false });
    const ls = await Promise.all([pool.acquire(), pool.acquire()]);
    for (const l of ls) await l.release();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(24 * 3600 * 1000);
    expect(pool.stats()).toMatchObject({ alive: 2, idle: 2 });
  });
});
