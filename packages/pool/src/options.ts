import { PoolError } from "./errors.js";
import type { PoolEvent } from "./events.js";

/** Largest delay Node timers accept without overflowing (about 24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Options of a {@link WorkerPool}. Every field is optional. */
export interface WorkerPoolOptions {
  /** Workers kept alive (idle or in use); created eagerly when the pool is made. Default 1. */
  min?: number;
  /** Most workers alive at once (in use + idle + recycling + being created). Default `max(1, min)`. */
  max?: number;
  /** How long `acquire()` waits when no worker is free (ms). Default 60 000; `0` waits forever. */
  acquireTimeoutMs?: number;
  /** Idle workers above `min` are destroyed after this long idle (ms). Default: never. */
  idleTimeoutMs?: number | null;
  /** Recycle a released worker (factory `recycle`, or destroy + create) before reuse. Default true. */
  restoreOnRelease?: boolean;
  /** First delay before creating again after a creation failure (ms); doubles per failure. Default 100. */
  retryInitialDelayMs?: number;
  /** Cap of the creation retry delay (ms). Default 10 000. */
  retryMaxDelayMs?: number;
  /** Called synchronously on notable events (failures, drops). Exceptions it throws are ignored. */
  onEvent?: (event: PoolEvent) => void;
}

/** {@link WorkerPoolOptions} with defaults applied and values checked. */
export interface ResolvedPoolOptions {
  min: number;
  max: number;
  acquireTimeoutMs: number;
  idleTimeoutMs: number | undefined;
  restoreOnRelease: boolean;
  retryInitialDelayMs: number;
  retryMaxDelayMs: number;
  onEvent: ((event: PoolEvent) => void) | undefined;
}

/** Checks that `value` is an integer in `[lo, hi]` (or absent, giving `fallback`). */
export function intOption(name: string, value: unknown, fallback: number, lo: number, hi: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < lo || value > hi) {
    throw new PoolError(
      "INVALID_OPTIONS",
      `${name} must be an integer in [${lo}, ${hi}], got ${String(value)}`,
      {
        details: { option: name, value },
      },
    );
  }
  return value;
}

/** Applies defaults to `options` and validates them; throws `INVALID_OPTIONS` on a bad value. */
export function resolveOptions(options: WorkerPoolOptions = {}): ResolvedPoolOptions {
  if (typeof options !== "object" || options === null) {
    throw new PoolError("INVALID_OPTIONS", "pool options must be an object");
  }
  const min = intOption("min", options.min, 1, 0, 1_000_000);
  const max = intOption("max", options.max, Math.max(1, min), 1, 1_000_000);
  if (max < min) {
    throw new PoolError("INVALID_OPTIONS", `max (${max}) must be >= min (${min})`, { details: { min, max } });
  }
  const acquireTimeoutMs = intOption("acquireTimeoutMs", options.acquireTimeoutMs, 60_000, 0, MAX_TIMER_MS);
  const idleTimeoutMs =
    options.idleTimeoutMs === null || options.idleTimeoutMs === undefined
      ? undefined
      : intOption("idleTimeoutMs", options.idleTimeoutMs, 0, 0, MAX_TIMER_MS);
  const restoreOnRelease = options.restoreOnRelease ?? true;
  if (typeof restoreOnRelease !== "boolean") {
    throw new PoolError("INVALID_OPTIONS", "restoreOnRelease must be a boolean", {
      details: { option: "restoreOnRelease", value: restoreOnRelease },
    });
  }
  const retryInitialDelayMs = intOption(
    "retryInitialDelayMs",
    options.retryInitialDelayMs,
    100,
    0,
    MAX_TIMER_MS,
  );
  const retryMaxDelayMs = intOption(
    "retryMaxDelayMs",
    options.retryMaxDelayMs,
    Math.max(10_000, retryInitialDelayMs),
    retryInitialDelayMs,
    MAX_TIMER_MS,
  );
  if (options.onEvent !== undefined && typeof options.onEvent !== "function") {
    throw new PoolError("INVALID_OPTIONS", "onEvent must be a function");
  }
  return {
    min,
    max,
    acquireTimeoutMs,
    idleTimeoutMs,
    restoreOnRelease,
    retryInitialDelayMs,
    retryMaxDelayMs,
    onEvent: options.onEvent,
  };
}

/** Delay before creation attempt number `failures + 1`: exponential from `initial`, capped at `cap`. */
export function retryDelay(failures: number, initial: number, cap: number): number {
  if (failures <= 0) return 0;
  return Math.min(cap, initial * 2 ** Math.min(failures - 1, 40));
}
