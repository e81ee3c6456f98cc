import { isSupermachineError } from "@supermachine/errors";
import { afterEach, beforeEach, vi } from "vitest";
import type { WorkerPoolOptions } from "../options.js";
import { WorkerPool } from "../worker-pool.js";
import type { FakeFactory, FakeWorker } from "./fake-factory.js";

/** Runs due timers and pending microtasks on the fake clock. */
export const flush = (): Promise<unknown> => vi.advanceTimersByTimeAsync(0);

/** A promise's outcome, observable synchronously once settled. */
export interface Tracked<T> {
  value?: T;
  error?: unknown;
  done: boolean;
}

/** Observes a promise without leaving an unhandled rejection. */
export function track<T>(p: Promise<T>): Tracked<T> {
  const r: Tracked<T> = { done: false };
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

/** The `code` of a supermachine error, else undefined. */
export function codeOf(err: unknown): string | undefined {
  return isSupermachineError(err) ? err.code : undefined;
}

/**
 * Installs fake timers around each test and returns a pool maker whose pools
 * are shut down (with timers run) after the test.
 */
export function usePools(): (
  ff: FakeFactory,
  opts?: WorkerPoolOptions,
  fopts?: { recycle?: boolean; isAlive?: boolean },
) => WorkerPool<FakeWorker> {
  let pools: WorkerPool<FakeWorker>[] = [];
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
  return (ff, opts = {}, fopts = {}) => {
    const p = new WorkerPool(ff.factory(fopts), opts);
    pools.push(p);
    return p;
  };
}
