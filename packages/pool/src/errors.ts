import { SupermachineError, type SupermachineErrorOptions } from "@supermachine/errors";

/**
 * Error codes raised by `@supermachine/pool`.
 *
 * - `INVALID_OPTIONS`: a pool or acquire option is out of range or of the wrong type.
 * - `POOL_ACQUIRE_TIMEOUT`: `acquire()` waited `acquireTimeoutMs` without getting a worker.
 * - `POOL_ACQUIRE_ABORTED`: the `signal` passed to `acquire()` was aborted (its reason is the `cause`).
 * - `POOL_SHUT_DOWN`: the pool was shut down (before or while `acquire()` / `ready()` waited).
 * - `POOL_CREATE_FAILED`: the factory failed to create a worker and no other worker was on its
 *   way to serve this caller (the factory's error is the `cause`).
 * - `POOL_LEASE_RELEASED`: `lease.worker` was read after the lease ended (released, reported
 *   dead, or revoked by shutdown).
 */
export type PoolErrorCode =
  | "INVALID_OPTIONS"
  | "POOL_ACQUIRE_TIMEOUT"
  | "POOL_ACQUIRE_ABORTED"
  | "POOL_SHUT_DOWN"
  | "POOL_CREATE_FAILED"
  | "POOL_LEASE_RELEASED";

/** Errors raised by a {@link WorkerPool}. Switch on `code`. */
export class PoolError extends SupermachineError {
  declare readonly code: PoolErrorCode;
  constructor(code: PoolErrorCode, message: string, options: SupermachineErrorOptions = {}) {
    super(code, message, options);
  }
}
