export type { PoolErrorCode } from "./errors.js";
export { PoolError } from "./errors.js";
export type { DropReason, PoolEvent } from "./events.js";
export type { WorkerFactory } from "./factory.js";
export type { Lease } from "./lease.js";
export type { WorkerPoolOptions } from "./options.js";
export type { AcquireOptions, PoolCounters, PoolStats } from "./worker-pool.js";
export { WorkerPool } from "./worker-pool.js";
