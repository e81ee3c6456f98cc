import { PoolError } from "./errors.js";
import type { DropReason, PoolEvent } from "./events.js";
import type { WorkerFactory } from "./factory.js";
import { type Lease, type LeaseOwner, PoolLease } from "./lease.js";
import {
  intOption,
  MAX_TIMER_MS,
  type ResolvedPoolOptions,
  resolveOptions,
  retryDelay,
  type WorkerPoolOptions,
} from "./options.js";

/** Pool counters of the public contract; reading them is O(1). */
export interface PoolStats {
  /** Workers that exist: idle + in use + being recycled. */
  alive: number;
  /** Workers lent out (active leases). */
  inUse: number;
  /** Workers ready in the idle queue. */
  idle: number;
  /** Callers blocked in `acquire()`. */
  waiting: number;
  /** Configured `min`. */
  min: number;
  /** Configured `max`. */
  max: number;
}

/** {@link PoolStats} plus the workers still on their way. */
export interface PoolCounters extends PoolStats {
  /** `factory.create()` calls in flight (not yet counted in `alive`). */
  creating: number;
  /** Released workers being recycled (counted in `alive`). */
  recycling: number;
  /** `factory.destroy()` calls in flight. */
  destroying: number;
  /** True while creations are paused after a failure (retry backoff). */
  backingOff: boolean;
}

/** Options of one `acquire()` call. */
export interface AcquireOptions {
  /** Aborting it rejects the wait with `POOL_ACQUIRE_ABORTED`. */
  signal?: AbortSignal;
  /** Overrides the pool's `acquireTimeoutMs` for this call (`0` waits forever). */
  timeoutMs?: number;
}

interface Waiter<W> {
  resolve(lease: Lease<W>): void;
  reject(err: unknown): void;
  timer: NodeJS.Timeout | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

interface IdleEntry<W> {
  worker: W;
  /** `performance.now()` when it became idle. */
  since: number;
}

interface Deferred {
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * A generic pool of workers made by a {@link WorkerFactory}.
 *
 * Keeps `min` workers alive (created eagerly, refilled in the background),
 * grows up to `max` under demand, hands out idle workers LIFO, queues callers
 * FIFO with a timeout, recycles released workers in the background, evicts
 * idle workers above `min` after `idleTimeoutMs`, replaces dead workers and
 * retries failed creations with exponential backoff.
 *
 * Shutdown is immediate: waiters are rejected, idle and lent workers are
 * destroyed at once (their leases are revoked), and workers still being
 * created or recycled are destroyed as soon as they arrive.
 */
export class WorkerPool<W> {
  private readonly opts: ResolvedPoolOptions;
  private readonly owner: LeaseOwner<W> = {
    onRelease: (lease) => this.released(lease),
    onDead: (lease) => this.died(lease),
  };
  /** Idle workers, oldest first; handed out from the end (most recently used first). */
  private idle: IdleEntry<W>[] = [];
  private readonly leases = new Map<W, PoolLease<W>>();
  /** Workers being recycled, keyed by the released worker. */
  private readonly recycling = new Set<W>();
  /** Recycling workers reported dead meanwhile. */
  private readonly doomed = new Set<W>();
  private creating = 0;
  private destroying = 0;
  private readonly waiters = new Set<Waiter<W>>();
  private readyWaiters: Deferred[] = [];
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly abort = new AbortController();
  private failures = 0;
  private backoffTimer: NodeJS.Timeout | undefined;
  private janitorTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private shutdownPromise: Promise<void> | undefined;

  /**
   * Makes the pool and starts creating `min` workers. Throws `INVALID_OPTIONS`
   * on bad options. Await {@link WorkerPool.ready} to know they are up.
   */
  constructor(
    private readonly factory: WorkerFactory<W>,
    options: WorkerPoolOptions = {},
  ) {
    if (typeof factory?.create !== "function" || typeof factory.destroy !== "function") {
      throw new PoolError("INVALID_OPTIONS", "factory must have create() and destroy()");
    }
    this.opts = resolveOptions(options);
    this.pump();
  }

  /** True once `shutdown()` was called. */
  get isShutDown(): boolean {
    return this.closed;
  }

  /**
   * Resolves when `min` workers are alive. Rejects with `POOL_CREATE_FAILED`
   * if a creation fails before that (the pool keeps retrying in the
   * background), or `POOL_SHUT_DOWN`.
   */
  ready(): Promise<void> {
    if (this.closed) return Promise.reject(shutDownError());
    if (this.alive() >= this.opts.min) return Promise.resolve();
    return new Promise<void>((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  /**
   * Lends a worker: an idle one at once if there is one; otherwise waits
   * (FIFO) for one to be created, recycled or released. Rejects with
   * `POOL_ACQUIRE_TIMEOUT`, `POOL_ACQUIRE_ABORTED`, `POOL_CREATE_FAILED` or
   * `POOL_SHUT_DOWN`.
   */
  acquire(options: AcquireOptions = {}): Promise<Lease<W>> {
    if (this.closed) return Promise.reject(shutDownError());
    const { signal } = options;
    let timeoutMs: number;
    try {
      timeoutMs = intOption("timeoutMs", options.timeoutMs, this.opts.acquireTimeoutMs, 0, MAX_TIMER_MS);
    } catch (err) {
      return Promise.reject(err);
    }
    if (signal?.aborted) return Promise.reject(abortedError(signal));
    // Waiters exist only while nothing is idle, so taking an idle worker never jumps the queue.
    const lease = this.takeIdle();
    if (lease) return Promise.resolve(lease);
    return new Promise<Lease<W>>((resolve, reject) => {
      const waiter: Waiter<W> = { resolve, reject, timer: undefined, signal, onAbort: undefined };
      if (timeoutMs > 0) {
        waiter.timer = setTimeout(() => {
          this.removeWaiter(waiter);
          reject(
            new PoolError("POOL_ACQUIRE_TIMEOUT", `no worker became free within ${timeoutMs} ms`, {
              details: { timeoutMs, ...this.stats() },
            }),
          );
        }, timeoutMs);
      }
      if (signal) {
        waiter.onAbort = () => {
          this.removeWaiter(waiter);
          reject(abortedError(signal));
        };
        signal.addEventListener("abort", waiter.onAbort, { once: true });
      }
      this.waiters.add(waiter);
      this.backoffTimer?.ref();
      this.pump();
    });
  }

  /** The contract's counters. O(1); cheap enough to poll. */
  stats(): PoolStats {
    return {
      alive: this.alive(),
      inUse: this.leases.size,
      idle: this.idle.length,
      waiting: this.waiters.size,
      min: this.opts.min,
      max: this.opts.max,
    };
  }

  /** {@link PoolStats} plus creations, recycles and destroys in flight. O(1). */
  counters(): PoolCounters {
    return {
      ...this.stats(),
      creating: this.creating,
      recycling: this.recycling.size,
      destroying: this.destroying,
      backingOff: this.backoffTimer !== undefined,
    };
  }

  /**
   * Reports that `worker` died, wherever it is: a lent worker's lease ends
   * (as with `lease.reportDead()`), an idle one is dropped, a recycling one is
   * dropped when its recycle finishes. Unknown workers are ignored.
   */
  reportDead(worker: W): void {
    if (this.closed) return;
    const lease = this.leases.get(worker);
    if (lease) {
      lease.reportDead();
      return;
    }
    const i = this.idle.findIndex((e) => e.worker === worker);
    if (i >= 0) {
      this.idle.splice(i, 1);
      this.drop(worker, "reported-dead");
      this.pump();
      return;
    }
    if (this.recycling.has(worker)) this.doomed.add(worker);
  }

  /**
   * Stops the pool. Idempotent (every call returns the same promise).
   * Rejects waiters and `ready()` with `POOL_SHUT_DOWN`, revokes every lease,
   * destroys idle and lent workers at once, aborts the signal given to the
   * factory, waits for creations and recycles in flight and destroys what they
   * return. Resolves once every `destroy()` settled; destroy failures are
   * reported as `destroy-failed` events, never thrown. Leaves no timer behind.
   */
  shutdown(): Promise<void> {
    if (this.shutdownPromise) return this.shutdownPromise;
    this.closed = true;
    clearTimeout(this.backoffTimer);
    clearTimeout(this.janitorTimer);
    this.backoffTimer = undefined;
    this.janitorTimer = undefined;
    const err = shutDownError();
    this.abort.abort(err);
    for (const w of [...this.waiters]) {
      this.removeWaiter(w);
      w.reject(err);
    }
    for (const d of this.readyWaiters.splice(0)) d.reject(err);
    for (const e of this.idle.splice(0)) this.destroy(e.worker);
    for (const lease of this.leases.values()) {
      lease.revoke();
      this.destroy(lease.raw);
    }
    this.leases.clear();
    this.shutdownPromise = (async () => {
      while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
    })();
    return this.shutdownPromise;
  }

  /** Same as {@link WorkerPool.shutdown}. */
  close(): Promise<void> {
    return this.shutdown();
  }

  /** Same as {@link WorkerPool.shutdown}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }

  // ---- internals ----------------------------------------------------------

  private released(lease: PoolLease<W>): void {
    const worker = lease.raw;
    if (this.closed || this.leases.get(worker) !== lease) return;
    this.leases.delete(worker);
    if (this.opts.restoreOnRelease) this.recycle(worker);
    else this.offer(worker);
    this.pump();
  }

  private died(lease: PoolLease<W>): void {
    const worker = lease.raw;
    if (this.closed || this.leases.get(worker) !== lease) return;
    this.leases.delete(worker);
    this.drop(worker, "reported-dead");
    this.pump();
  }

  private alive(): number {
    return this.idle.length + this.leases.size + this.recycling.size;
  }

  private isAlive(worker: W): boolean {
    if (!this.factory.isAlive) return true;
    try {
      return this.factory.isAlive(worker) === true;
    } catch {
      return false;
    }
  }

  private lend(worker: W): PoolLease<W> {
    const lease = new PoolLease(worker, this.owner);
    this.leases.set(worker, lease);
    return lease;
  }

  /** Pops live idle workers (dropping dead ones) and lends the first live one. */
  private takeIdle(): PoolLease<W> | undefined {
    let dropped = false;
    let lease: PoolLease<W> | undefined;
    while (!lease && this.idle.length > 0) {
      const { worker } = this.idle.pop()!;
      if (this.isAlive(worker)) lease = this.lend(worker);
      else {
        this.drop(worker, "not-alive");
        dropped = true;
      }
    }
    if (dropped || lease) this.pump();
    return lease;
  }

  /** A worker became ready: give it to the oldest waiter, or park it idle. */
  private offer(worker: W): void {
    if (this.closed) {
      this.destroy(worker);
      return;
    }
    if (!this.isAlive(worker)) {
      this.drop(worker, "not-alive");
      return;
    }
    const waiter = first(this.waiters);
    if (waiter) {
      this.removeWaiter(waiter);
      waiter.resolve(this.lend(worker));
    } else {
      this.idle.push({ worker, since: performance.now() });
    }
  }

  private removeWaiter(w: Waiter<W>): void {
    this.waiters.delete(w);
    clearTimeout(w.timer);
    w.timer = undefined;
    if (w.onAbort) w.signal?.removeEventListener("abort", w.onAbort);
  }

  /**
   * Brings the pool back in shape: creates workers to keep `min` alive and to
   * cover waiters (up to `max`, not while backing off), settles `ready()`
   * callers and (re)arms the idle janitor.
   */
  private pump(): void {
    if (this.closed) return;
    const { min, max } = this.opts;
    if (this.backoffTimer === undefined) {
      const slots = this.alive() + this.creating;
      const forMin = min - slots;
      const forWaiters = this.waiters.size - this.creating - this.recycling.size;
      const n = Math.min(Math.max(forMin, forWaiters, 0), max - slots);
      for (let i = 0; i < n; i++) this.create();
    }
    if (this.readyWaiters.length > 0 && this.alive() >= min) {
      for (const d of this.readyWaiters.splice(0)) d.resolve();
    }
    this.armJanitor();
  }

  private create(): void {
    this.creating++;
    const p = call(() => this.factory.create(this.abort.signal)).then(
      (worker) => {
        this.creating--;
        this.failures = 0;
        this.offer(worker);
        this.pump();
      },
      (err: unknown) => {
        this.creating--;
        if (this.closed) return;
        this.creationFailed(err);
        this.pump();
      },
    );
    this.track(p);
  }

  /** Records a failed creation: backs off, and hands the error to one waiter nothing else is coming for. */
  private creationFailed(err: unknown): void {
    this.failures++;
    const attempt = this.failures;
    const retryInMs = retryDelay(attempt, this.opts.retryInitialDelayMs, this.opts.retryMaxDelayMs);
    clearTimeout(this.backoffTimer);
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = undefined;
      this.pump();
    }, retryInMs);
    this.emit({ type: "create-failed", error: err, attempt, retryInMs });
    const error = new PoolError("POOL_CREATE_FAILED", `could not create a worker: ${messageOf(err)}`, {
      cause: err,
      details: { attempt, retryInMs },
    });
    for (const d of this.readyWaiters.splice(0)) d.reject(error);
    // Workers on their way serve the oldest waiters; the first waiter beyond them gets the error.
    const covered = this.creating + this.recycling.size;
    let i = 0;
    for (const w of this.waiters) {
      if (i++ < covered) continue;
      this.removeWaiter(w);
      w.reject(error);
      break;
    }
    // Keep the process alive for the retry only if someone waits for it.
    if (this.waiters.size === 0) this.backoffTimer.unref();
  }

  /** Resets a released worker in the background, then offers it. */
  private recycle(worker: W): void {
    this.recycling.add(worker);
    const custom = this.factory.recycle;
    const signal = this.abort.signal;
    const p = call(() => {
      if (custom) return custom.call(this.factory, worker, signal);
      this.destroy(worker);
      return this.factory.create(signal);
    }).then(
      (fresh) => {
        this.recycling.delete(worker);
        const doomed = this.doomed.delete(worker);
        if (custom && fresh !== worker) this.destroy(worker);
        if (!custom) this.failures = 0;
        if (this.closed) this.destroy(fresh);
        else if (doomed && fresh === worker) this.drop(worker, "reported-dead");
        else this.offer(fresh);
        this.pump();
      },
      (err: unknown) => {
        this.recycling.delete(worker);
        this.doomed.delete(worker);
        if (custom) {
          this.destroy(worker);
          if (!this.closed) this.emit({ type: "recycle-failed", error: err });
        } else if (!this.closed) {
          this.creationFailed(err);
        }
        this.pump();
      },
    );
    this.track(p);
  }

  /** Evicts idle workers above `min` that idled `idleTimeoutMs`; re-arms itself. */
  private armJanitor(): void {
    const ttl = this.opts.idleTimeoutMs;
    if (ttl === undefined || this.closed) return;
    const oldest = this.idle[0];
    if (!oldest || this.alive() + this.creating <= this.opts.min) {
      clearTimeout(this.janitorTimer);
      this.janitorTimer = undefined;
      return;
    }
    if (this.janitorTimer) return;
    const due = Math.max(0, Math.ceil(oldest.since + ttl - performance.now()));
    this.janitorTimer = setTimeout(() => {
      this.janitorTimer = undefined;
      const now = performance.now();
      while (this.idle.length > 0 && this.alive() + this.creating > this.opts.min) {
        const e = this.idle[0]!;
        if (now - e.since < ttl) break;
        this.idle.shift();
        this.drop(e.worker, "idle-timeout");
      }
      this.pump();
    }, due);
    this.janitorTimer.unref();
  }

  private drop(worker: W, reason: DropReason): void {
    this.emit({ type: "worker-dropped", reason });
    this.destroy(worker);
  }

  private destroy(worker: W): void {
    this.destroying++;
    const p = call(() => this.factory.destroy(worker))
      .catch((err: unknown) => this.emit({ type: "destroy-failed", error: err }))
      .finally(() => {
        this.destroying--;
      });
    this.track(p);
  }

  private track(p: Promise<unknown>): void {
    this.inflight.add(p);
    const done = () => this.inflight.delete(p);
    p.then(done, done);
  }

  private emit(event: PoolEvent): void {
    try {
      this.opts.onEvent?.(event);
    } catch {
      // Observers must not break the pool.
    }
  }
}

/** Runs `fn`, turning a synchronous throw into a rejection. */
function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err);
  }
}

function first<T>(set: Set<T>): T | undefined {
  for (const v of set) return v;
  return undefined;
}

function shutDownError(): PoolError {
  return new PoolError("POOL_SHUT_DOWN", "the pool is shut down");
}

function abortedError(signal: AbortSignal): PoolError {
  return new PoolError("POOL_ACQUIRE_ABORTED", "acquire() was aborted", { cause: signal.reason });
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
