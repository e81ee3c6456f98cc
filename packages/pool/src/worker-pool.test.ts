import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { isSupermachineError } from "@supermachine/errors";
import type { Lease } from "./lease.js";
import { FakeFactory, type FakeWorker } from "./test-support/fake-factory.js";
import { WorkerPool } from "./worker-pool.js";

const flush = () => vi.advanceTimersByTimeAsync(0);

/** Settles a promise into a value-or-error record without unhandled rejections. */
function track<T>(p: Promise<T>): { value?: T; error?: unknown; done: boolean } {
  const r: { value?: T; error?: unknown; done: boolean } = { done: false };
  p.then(
    (v) => {
      r.value = v;
      r.done = true;
    },
    (e) => {
      r.error = e;
      r.done = true;
    },
  );
  return r;
}

function codeOf(err: unknown): string | undefined {
  return isSupermachineError(err) ? err.code : undefined;
}

let pools: WorkerPool<FakeWorker>[] = [];
function makePool(ff: FakeFactory, opts: ConstructorParameters<typeof WorkerPool<FakeWorker>>[1] = {}, fopts = {}) {
  const p = new WorkerPool(ff.factory(fopts), opts);
  pools.push(p);
  return p;
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(async () => {
  const done = Promise.all(pools.map((p) => p.shutdown()));
  await vi.runAllTimersAsync();
  await done;
  pools = [];
  vi.useRealTimers();
});

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

  it("uses the fake clock for performance.now", () => {
    const t0 = performance.now();
    vi.advanceTimersByTime(1000);
    expect(performance.now() - t0).toBe(1000);
  });
});
