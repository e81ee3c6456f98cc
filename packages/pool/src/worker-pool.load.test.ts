import { setImmediate as tick } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import type { PoolEvent } from "./events.js";
import { FakeFactory, type FakeWorker } from "./test-support/fake-factory.js";
import { WorkerPool } from "./worker-pool.js";

/**
 * 200 acquire/use/release cycles from 16 concurrent callers on a pool of at
 * most 4 workers, on real timers: checks exclusivity and the final state, not speed.
 */
async function load(ff: FakeFactory, factoryOpts: { recycle?: boolean }, restoreOnRelease: boolean) {
  const events: PoolEvent[] = [];
  const pool = new WorkerPool<FakeWorker>(ff.factory(factoryOpts), {
    min: 1,
    max: 4,
    acquireTimeoutMs: 0,
    restoreOnRelease,
    onEvent: (e) => events.push(e),
  });
  try {
    await pool.ready();
    const holding = new Set<FakeWorker>();
    let peak = 0;
    let started = 0;
    let completed = 0;
    let overlaps = 0;
    let dirtyHandouts = 0;
    const caller = async (n: number) => {
      for (let i = 0; i < 200 / 16 + 1 && started < 200; i++) {
        started++;
        const lease = await pool.acquire();
        const w = lease.worker;
        if (holding.has(w)) overlaps++;
        if (restoreOnRelease && w.dirty !== 0) dirtyHandouts++;
        holding.add(w);
        peak = Math.max(peak, holding.size);
        const s = pool.stats();
        expect(s.alive).toBeLessThanOrEqual(4);
        expect(s.inUse + s.idle).toBeLessThanOrEqual(s.alive);
        w.dirty = n + 1;
        for (let k = 0; k < 1 + ((n + i) % 3); k++) await tick();
        holding.delete(w);
        await lease.release();
        completed++;
      }
    };
    await Promise.all(Array.from({ length: 16 }, (_, n) => caller(n)));
    expect(completed).toBe(200);
    expect(overlaps).toBe(0);
    expect(dirtyHandouts).toBe(0);
    expect(peak).toBe(4);
    const s = pool.stats();
    expect(s).toMatchObject({ inUse: 0, waiting: 0 });
    expect(s.alive).toBeLessThanOrEqual(4);
    expect(events.filter((e) => e.type !== "worker-dropped")).toEqual([]);
  } finally {
    await pool.shutdown();
  }
  expect(ff.created.every((w) => w.destroyed === 1)).toBe(true);
  expect(pool.counters()).toMatchObject({ alive: 0, creating: 0, recycling: 0, destroying: 0 });
  return ff;
}

describe("load: 200 cycles, 16 callers, max 4", () => {
  it("with in-place recycling", async () => {
    const ff = await load(new FakeFactory(), {}, true);
    expect(ff.created.length).toBe(4);
    expect(ff.recycleCalls).toBe(200);
  });

  it("with destroy + create on release (no factory.recycle)", async () => {
    const ff = await load(new FakeFactory(), { recycle: false }, true);
    expect(ff.createCalls).toBe(ff.created.length);
    expect(ff.created.length).toBeGreaterThanOrEqual(200);
  });

  it("without recycling", async () => {
    const ff = await load(new FakeFactory(), {}, false);
    expect(ff.created.length).toBe(4);
    expect(ff.recycleCalls).toBe(0);
  });
});
