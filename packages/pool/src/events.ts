/** Why the pool dropped (destroyed) a worker. */
export type DropReason =
  /** Reported dead via `lease.reportDead()` or `pool.reportDead()`. */
  | "reported-dead"
  /** `factory.isAlive()` returned false (or threw) when the worker was about to be handed out. */
  | "not-alive"
  /** Idle longer than `idleTimeoutMs` while the pool held more than `min` workers. */
  | "idle-timeout";

/**
 * Something notable happened in a pool; delivered to the `onEvent` option.
 * Meant for logs and metrics, never needed for correctness.
 */
export type PoolEvent =
  /** `factory.create()` (or the destroy + create of a release) failed; the next try waits `retryInMs`. */
  | { type: "create-failed"; error: unknown; attempt: number; retryInMs: number }
  /** `factory.recycle()` failed; the worker was destroyed and will be replaced if needed. */
  | { type: "recycle-failed"; error: unknown }
  /** A worker was taken out of the pool and destroyed. */
  | { type: "worker-dropped"; reason: DropReason }
  /** `factory.destroy()` failed (the worker is forgotten anyway). */
  | { type: "destroy-failed"; error: unknown };
