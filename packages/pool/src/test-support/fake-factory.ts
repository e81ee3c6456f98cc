import type { WorkerFactory } from "../factory.js";

/** A fake worker: plain state the tests can inspect and break. */
export interface FakeWorker {
  readonly id: number;
  /** Set to false to make `isAlive` report it dead. */
  alive: boolean;
  /** How many times `destroy` was called on it (must end at exactly 1). */
  destroyed: number;
  /** Bumped by test code to simulate a holder changing its state; cleared by `recycle`. */
  dirty: number;
  /** How many times it was recycled in place. */
  recycled: number;
}

/** Waits `ms` on the (possibly fake) timer queue, or one microtask when 0. */
function delay(ms: number): Promise<void> {
  return ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
}

/**
 * A controllable worker factory for pool tests. Every knob is a public field
 * so a test can flip it mid-run. `plan` fixes the outcome of the next create
 * calls (true = fail), then `failCreates` decides.
 */
export class FakeFactory {
  createDelayMs = 0;
  recycleDelayMs = 0;
  destroyDelayMs = 0;
  failCreates = false;
  plan: boolean[] = [];
  failRecycles = false;
  /** `recycle` returns a brand-new worker instead of resetting in place. */
  recycleReturnsNew = false;
  /** `destroy` rejects (after counting the call). */
  failDestroys = false;
  readonly created: FakeWorker[] = [];
  createCalls = 0;
  recycleCalls = 0;
  /** Creation start times (fake clock), to check backoff. */
  readonly createTimes: number[] = [];
  private nextId = 1;

  /** Workers created and not yet destroyed. */
  live(): FakeWorker[] {
    return this.created.filter((w) => w.destroyed === 0);
  }

  /** The factory object handed to the pool; `recycle: false` leaves `recycle` out. */
  factory(opts: { recycle?: boolean; isAlive?: boolean } = {}): WorkerFactory<FakeWorker> {
    const f: WorkerFactory<FakeWorker> = {
      create: (signal) => this.create(signal),
      destroy: (w) => this.destroy(w),
    };
    if (opts.recycle !== false) f.recycle = (w) => this.recycle(w);
    if (opts.isAlive !== false) f.isAlive = (w) => w.alive && w.destroyed === 0;
    return f;
  }

  private make(): FakeWorker {
    const w: FakeWorker = { id: this.nextId++, alive: true, destroyed: 0, dirty: 0, recycled: 0 };
    this.created.push(w);
    return w;
  }

  async create(_signal: AbortSignal): Promise<FakeWorker> {
    const n = ++this.createCalls;
    this.createTimes.push(Date.now());
    const fail = this.plan.length > 0 ? this.plan.shift()! : this.failCreates;
    await delay(this.createDelayMs);
    if (fail) throw new Error(`create #${n} failed`);
    return this.make();
  }

  async recycle(w: FakeWorker): Promise<FakeWorker> {
    this.recycleCalls++;
    await delay(this.recycleDelayMs);
    if (this.failRecycles) throw new Error(`recycle of #${w.id} failed`);
    if (this.recycleReturnsNew) return this.make();
    w.dirty = 0;
    w.recycled++;
    return w;
  }

  async destroy(w: FakeWorker): Promise<void> {
    w.destroyed++;
    await delay(this.destroyDelayMs);
    if (this.failDestroys) throw new Error(`destroy of #${w.id} failed`);
  }
}
