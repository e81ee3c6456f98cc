/** Options accepted by {@link SupermachineError}. */
export interface SupermachineErrorOptions {
  /** The underlying error, if this one wraps another. */
  cause?: unknown;
  /** Structured facts about the failure (paths, exit codes, console tails). */
  details?: Record<string, unknown>;
}

/**
 * Base class of every error thrown by supermachine packages.
 *
 * Each error carries a stable string `code` (for example `"OCI_DIGEST_MISMATCH"`
 * or `"VM_EXITED"`) that callers can switch on, a human message, an optional
 * `cause`, and optional structured `details`. Packages subclass it to add
 * typed fields, but the `code` is always the thing to test.
 */
export class SupermachineError extends Error {
  /** Stable machine-readable error code. */
  readonly code: string;
  /** Structured facts about the failure. */
  readonly details: Record<string, unknown>;

  constructor(code: string, message: string, options: SupermachineErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details ?? {};
  }
}

/**
 * True when `err` is a {@link SupermachineError}, optionally with the given code.
 * Works across duplicated package copies (checks the shape, not the prototype).
 */
export function isSupermachineError(err: unknown, code?: string): err is SupermachineError {
  if (typeof err !== "object" || err === null) return false;
  const e = err as { code?: unknown; details?: unknown };
  if (typeof e.code !== "string" || typeof e.details !== "object" || !(err instanceof Error)) return false;
  return code === undefined || e.code === code;
}
