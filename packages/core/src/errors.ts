import { SupermachineError, type SupermachineErrorOptions } from "@supermachine/errors";

/**
 * Error codes of the public API.
 *
 * - `INVALID_OPTIONS`: an option is out of range or of the wrong type.
 * - `VM_RELEASED`: the VM was used after `release()`.
 * - `WARMUP_VM_EXPIRED`: a warmup VM was used after its callback returned.
 * - `ALREADY_WAITED`: `ExecChild.wait()` called twice.
 * - `BAKE_IMAGE_NOT_FOUND`, `BAKE_WORKLOAD_EXITED`, `BAKE_LISTENER_TIMEOUT`,
 *   `BAKE_GUEST_DIED`, `BAKE_OUT_OF_MEMORY`, `BAKE_WARMUP_FAILED`, `BAKE_FAILED`: why a bake failed
 *   (details hold the console tail).
 * - `UNSUPPORTED_OVERRIDE`: a pool override the engine cannot apply at restore.
 */
export type CoreErrorCode =
  | "INVALID_OPTIONS"
  | "VM_RELEASED"
  | "WARMUP_VM_EXPIRED"
  | "ALREADY_WAITED"
  | "BAKE_IMAGE_NOT_FOUND"
  | "BAKE_WORKLOAD_EXITED"
  | "BAKE_LISTENER_TIMEOUT"
  | "BAKE_GUEST_DIED"
  | "BAKE_WARMUP_FAILED"
  | "BAKE_OUT_OF_MEMORY"
  | "BAKE_FAILED"
  | "UNSUPPORTED_OVERRIDE";

/** Errors raised by `@supermachine/core` itself (lower layers raise their own codes). */
export class CoreError extends SupermachineError {
  declare readonly code: CoreErrorCode;
  constructor(code: CoreErrorCode, message: string, options: SupermachineErrorOptions = {}) {
    super(code, message, options);
  }
}
