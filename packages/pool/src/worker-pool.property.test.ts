import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Lease } from "./lease.js";
import { FakeFactory, type FakeWorker } from "./test-support/fake-factory.js";
import { codeOf, flush, track } from "./test-support/harness.js";
import { WorkerPool } from "./worker-pool.js";

type Mode = "in-place" | "returns-new" | "none" | "keep";

interface Config {
  min: number;
  extra: number;
  acquireTimeoutMs: number;
  idleTimeoutMs: number | undefined;
  mode: Mode;
  createDelayMs: number;
  recycleDelayMs: number;
}

type Op =
  | { op: "acquire"; timeoutMs: number | undefined; abortable: boolean }
  | { op: "release"; pick: number }
  | { op: "dead"; pick: number }
  | { op: "kill"; pick: number }
  | { op: "abort"; pick: number }
  | { op: "advance"; ms: number }
  | { op: "failCreates"; on: boolean }
  | { op: "failRecycles"; on: boolean };

const configArb: fc.Arbitrary<Config> = fc.record({
  min: fc.integer({ min: 0, max: 3 }),
  extra: fc.integer({ min: 0, max: 3 }),
  acquireTimeoutMs: fc.constantFrom(0, 30, 400),
  idleTimeoutMs: fc.constantFrom(undefined, 50, 500),
  mode: fc.constantFrom<Mode>("in-place", "returns-new", "none", "keep"),
  createDelayMs: fc.constantFrom(0, 10, 35),
  recycleDelayMs: fc.constantFrom(0, 20),
});

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant("acquire" as const),
      timeoutMs: fc.constantFrom(undefined, undefined, 0, 15),
      abortable: fc.boolean(),
    }),
  },
  { weight: 4, arbitrary: fc.record({ op: fc.constant("release" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("dead" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("kill" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("abort" as const), pick: fc.nat() }) },
  {
    weight: 4,
    arbitrary: fc.record({ op: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 120 }) }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("failCreates" as const), on: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("failRecycles" as const), on: fc.boolean() }) },
);

const ALLOWED_REJECTIONS = new Set(["POOL_ACQUIRE_TIMEOUT", "POOL_ACQUIRE_ABORTED", "POOL_CREATE_FAILED"]);

interface Pending {
  seq: number;
  waited: boolean;
  controller: AbortController | undefined;
  settled: boolean;
}

/** Runs one random scenario and checks the pool's invariants after every step. */
async function scenario(cfg: Config, ops: Op[], staysBroken: boolean): Promise<void> {
  const ff = new FakeFactory();
  ff.createDelayMs = cfg.createDelayMs;
  ff.recycleDelayMs = cfg.recycleDelayMs;
  ff.recycleReturnsNew = cfg.mode === "returns-new";
  const max = Math.max(1, cfg.min + cfg.extra);
  const pool = new WorkerPool<FakeWorker>(
    ff.factory({ recycle: cfg.mode === "in-place" || cfg.mode === "returns-new" }),
    {
      min: cfg.min,
      max,
      acquireTimeoutMs: cfg.acquireTimeoutMs,
      idleTimeoutMs: cfg.idleTimeoutMs,
      restoreOnRelease: cfg.mode !== "keep",
      retryInitialDelayMs: 10,
      retryMaxDelayMs: 80,
    },
  );

  const held: Lease<FakeWorker>[] = [];
  const holders = new Map<FakeWorker, Lease<FakeWorker>>();
  const pending = new Set<Pending>();
  const servedWaiters: number[] = [];
  const failures: string[] = [];
  let seq = 0;

  const acquire = (timeoutMs: number | undefined, abortable: boolean): void => {
    const controller = abortable ? new AbortController() : undefined;
    const before = pool.stats().waiting;
    const p: Pending = { seq: seq++, waited: false, controller, settled: false };
    pending.add(p);
    pool
      .acquire({ signal: controller?.signal, ...(timeoutMs === undefined ? {} : { timeoutMs }) })
      .then(
        (lease) => {
          const w = lease.worker;
          // Handed-out workers are live and belong to exactly one holder.
          if (!w.alive || w.destroyed !== 0) failures.push(`handed out dead worker #${w.id}`);
          if (holders.has(w)) failures.push(`worker #${w.id} handed to two holders`);
          holders.set(w, lease);
          held.push(lease);
          if (p.waited) servedWaiters.push(p.seq);
        },
        (err: unknown) => {
          const code = codeOf(err);
          if (!code || !ALLOWED_REJECTIONS.has(code)) failures.push(`unexpected rejection ${String(err)}`);
        },
      )
      .finally(() => {
        p.settled = true;
        pending.delete(p);
      });
    p.waited = pool.stats().waiting > before;
  };

  const takeHeld = (pick: number): Lease<FakeWorker> | undefined => {
    if (held.length === 0) return undefined;
    const [lease] = held.splice(pick % held.length, 1);
    holders.delete(lease!.worker);
    return lease;
  };

  const check = (where: string): void => {
    const s = pool.stats();
    const c = pool.counters();
    const ctx = `${where} ${JSON.stringify(c)}`;
    expect(failures, ctx).toEqual([]);
    expect(s.alive, ctx).toBeLessThanOrEqual(max);
    expect(s.alive + c.creating, ctx).toBeLessThanOrEqual(max);
    expect(s.inUse + s.idle, ctx).toBeLessThanOrEqual(s.alive);
    expect(s.inUse, ctx).toBe(held.length);
    expect(s.waiting, ctx).toBe([...pending].filter((p) => p.waited).length);
    if (s.waiting > 0) expect(s.idle, ctx).toBe(0);
    for (const w of ff.created) expect(w.destroyed, ctx).toBeLessThanOrEqual(1);
    for (const l of held) expect(l.worker.destroyed, ctx).toBe(0);
    // Every live worker the factory made is accounted for by the pool (default recycling has already
    // destroyed the old worker while its replacement is being created).
    const pendingDefault = cfg.mode === "none" ? c.recycling : 0;
    expect(ff.live().length + pendingDefault, ctx).toBe(s.alive);
    // Demand-driven growth and refill, unless creations are paused by a failure.
    if (!c.backingOff) {
      expect(s.alive + c.creating, ctx).toBeGreaterThanOrEqual(cfg.min);
      if (s.alive + c.creating < max) expect(s.waiting, ctx).toBeLessThanOrEqual(c.creating + c.recycling);
    }
    // FIFO: waiters are served in the order they queued.
    expect(servedWaiters, ctx).toEqual([...servedWaiters].sort((a, b) => a - b));
  };

  for (const [i, op] of ops.entries()) {
    switch (op.op) {
      case "acquire":
        acquire(op.timeoutMs, op.abortable);
        break;
      case "release":
        await takeHeld(op.pick)?.release();
        break;
      case "dead":
        takeHeld(op.pick)?.reportDead();
        break;
      case "kill": {
        // A worker dies silently (not in use): found by isAlive at checkout.
        const idle = ff.live().filter((w) => !holders.has(w) && w.alive);
        const w = idle[op.pick % Math.max(1, idle.length)];
        if (w) w.alive = false;
        break;
      }
      case "abort": {
        const abortable = [...pending].filter((p) => p.controller);
        abortable[op.pick % Math.max(1, abortable.length)]?.controller?.abort();
        break;
      }
      case "advance":
        await vi.advanceTimersByTimeAsync(op.ms);
        break;
      case "failCreates":
        ff.failCreates = op.on;
        break;
      case "failRecycles":
        ff.failRecycles = op.on;
        break;
    }
    await flush();
    check(`after op ${i} ${JSON.stringify(op)}`);
  }

  // Drain: keep releasing; every waiter must be served, time out or get the creation error, even
  // when the factory stays broken and waiters wait forever.
  if (!staysBroken) {
    ff.failCreates = false;
    ff.failRecycles = false;
  }
  for (let round = 0; round < 60 && pending.size > 0; round++) {
    while (held.length > 0) await takeHeld(0)!.release();
    await vi.advanceTimersByTimeAsync(100);
    check(`drain round ${round}`);
  }
  expect(pending.size, "waiters left hanging").toBe(0);
  ff.failCreates = false;
  ff.failRecycles = false;
  while (held.length > 0) await takeHeld(0)!.release();
  await vi.advanceTimersByTimeAsync(1000);
  check("healed");
  const after = pool.stats();
  expect(after.alive).toBeGreaterThanOrEqual(cfg.min);
  // Some live worker must be serveable now.
  const last = track(pool.acquire({ timeoutMs: 5000 }));
  await vi.advanceTimersByTimeAsync(100);
  expect(last.error).toBeUndefined();
  expect(last.value?.active).toBe(true);

  const done = pool.shutdown();
  await vi.runAllTimersAsync();
  await done;
  expect(vi.getTimerCount()).toBe(0);
  expect(ff.created.every((w) => w.destroyed === 1)).toBe(true);
  expect(pool.stats()).toMatchObject({ alive: 0, inUse: 0, idle: 0, waiting: 0 });
}

describe("WorkerPool invariants under random schedules", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("keeps alive <= max, inUse + idle <= alive, one holder per worker, FIFO, no hung waiter", async () => {
    await fc.assert(
      fc.asyncProperty(configArb, fc.array(opArb, { minLength: 1, maxLength: 60 }), fc.boolean(), scenario),
      {
        numRuns: Number(process.env.POOL_PROPERTY_RUNS ?? 300),
      },
    );
  });
});
