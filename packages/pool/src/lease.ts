import { PoolError } from "./errors.js";

/**
 * A worker lent by a pool to one holder. End it with `release()` (idempotent)
 * or `reportDead()`. After it ends, reading `worker` throws
 * `POOL_LEASE_RELEASED`, so use-after-release is caught, not silent.
 */
export interface Lease<W> {
  /** The lent worker. Throws `POOL_LEASE_RELEASED` once the lease has ended. */
  readonly worker: W;
  /** True until the lease is released, reported dead or revoked by shutdown. */
  readonly active: boolean;
  /**
   * Gives the worker back. The pool recycles it in the background (see
   * `restoreOnRelease`), so this resolves at once. A no-op after the first call,
   * after `reportDead()` and after shutdown.
   */
  release(): Promise<void>;
  /** Tells the pool the worker died: it is destroyed and replaced. Ends the lease; idempotent. */
  reportDead(): void;
  /** Same as `release()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** What a lease needs from its pool. @internal */
export interface LeaseOwner<W> {
  onRelease(lease: PoolLease<W>): void;
  onDead(lease: PoolLease<W>): void;
}

/** The pool's {@link Lease} implementation. @internal */
export class PoolLease<W> implements Lease<W> {
  private state: "active" | "released" | "dead" | "revoked" = "active";

  constructor(
    private readonly lent: W,
    private readonly owner: LeaseOwner<W>,
  ) {}

  get worker(): W {
    if (this.state !== "active") {
      throw new PoolError(
        "POOL_LEASE_RELEASED",
        `this lease has ended (${this.state}); acquire a new worker`,
        {
          details: { state: this.state },
        },
      );
    }
    return this.lent;
  }

  get active(): boolean {
    return this.state === "active";
  }

  /** The worker, whatever the state (for the pool's bookkeeping). */
  get raw(): W {
    return this.lent;
  }

  release(): Promise<void> {
    if (this.state === "active") {
      this.state = "released";
      this.owner.onRelease(this);
    }
    return Promise.resolve();
  }

  reportDead(): void {
    if (this.state !== "active") return;
    this.state = "dead";
    this.owner.onDead(this);
  }

  /** Ends the lease without telling the owner (the pool is shutting down). */
  revoke(): void {
    if (this.state === "active") this.state = "revoked";
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}
