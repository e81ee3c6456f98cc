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
 * - `EXEC_OUTPUT_TOO_LARGE`: `exec` output passed `maxOutputBytes` (the process was
 *   killed); stream it with `spawn` instead.
 * - `FILE_TOO_LARGE`: `readFile` passed `maxBytes`; stream it with `readFileStream`.
 * - `VM_UNRESPONSIVE`: the guest did not finish an `exec` within its `timeoutMs`
 *   plus a grace period (its agent stopped answering); the VM was killed and
 *   its pool replaces it. Every later call on that `Vm` throws it too.
 * - `VM_LEASE_EXPIRED`: the pool's `maxLeaseMs` ran out; the VM was destroyed
 *   and its pool replaces it. Every later call on that `Vm` throws it.
 * - `SNAPSHOT_ROOTFS_UNAVAILABLE`: a snapshot's root fs is not on this host and
 *   cannot be rebuilt from its image's layers (image gone, moved tag, other bytes).
 * - `SNAPSHOT_PUSH_UNSUPPORTED`: a snapshot cannot be published for this image
 *   (e.g. a local `oci:` image without a `snapshotRepository`).
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
  | "UNSUPPORTED_OVERRIDE"
  | "EXEC_OUTPUT_TOO_LARGE"
  | "FILE_TOO_LARGE"
  | "VM_UNRESPONSIVE"
  | "VM_LEASE_EXPIRED"
  | "SNAPSHOT_ROOTFS_UNAVAILABLE"
  | "SNAPSHOT_PUSH_UNSUPPORTED";

/** Errors raised by `@supermachine/core` itself (lower layers raise their own codes). */
export class CoreError extends SupermachineError {
  declare readonly code: CoreErrorCode;
  constructor(code: CoreErrorCode, message: string, options: SupermachineErrorOptions = {}) {
    super(code, message, options);
  }
}
