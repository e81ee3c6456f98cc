/**
 * How a {@link WorkerPool} makes, resets and ends its workers. The pool never
 * looks inside a worker; `W` is whatever the factory hands it (a VM, a
 * connection, a child process...).
 */
export interface WorkerFactory<W> {
  /**
   * Makes a ready worker. `signal` aborts when the pool shuts down; a worker
   * returned after that is destroyed at once.
   */
  create(signal: AbortSignal): Promise<W>;
  /**
   * Resets a released worker for its next holder (used when `restoreOnRelease`
   * is true). It may return the same worker or a new one; when it returns a new
   * one the pool destroys the old one. When it throws, the pool destroys the old
   * worker and creates a replacement if one is needed. Without `recycle`, a
   * release destroys the worker and creates a fresh one in the background.
   */
  recycle?(worker: W, signal: AbortSignal): Promise<W>;
  /** Ends a worker and frees what it holds. Called exactly once per worker the pool owned. */
  destroy(worker: W): Promise<void>;
  /**
   * Cheap liveness check, run whenever a worker is about to be handed out.
   * A worker for which it returns false (or throws) is destroyed and replaced.
   */
  isAlive?(worker: W): boolean;
}
