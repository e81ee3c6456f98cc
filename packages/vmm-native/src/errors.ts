import { SupermachineError, type SupermachineErrorOptions } from "@supermachine/errors";

/**
 * Error codes raised by the engine.
 *
 * - `QEMU_NOT_FOUND`: no usable QEMU binary for the chosen accelerator.
 * - `QEMU_START_FAILED`: QEMU could not be spawned or its QMP socket never came up.
 * - `VM_EXITED`: the QEMU process ended (crash, kill, guest panic) while a caller waited on it.
 * - `QMP_ERROR`: QEMU answered a QMP command with an error.
 * - `QMP_TIMEOUT`: a QMP command or event did not arrive in time.
 * - `RESTORE_TIMEOUT` / `RESTORE_FAILED`: restoring from a snapshot did not complete.
 * - `SNAPSHOT_FAILED`: capturing a snapshot failed.
 * - `SNAPSHOT_INVALID`: snapshot files are missing, truncated or unreadable.
 * - `SNAPSHOT_INPUT_MISSING`: this host lacks an input a snapshot names by hash: the guest
 *   kernel/agent build (`details.input: "guest"`) or the root fs image (`"rootfs"`, `details.digest`).
 * - `GUEST_ASSETS_MISSING`: the guest kernel or agent has not been built.
 * - `VM_CLOSED`: the machine was already closed.
 * - `BOOT_TIMEOUT`: a guest did not come up in time.
 * - `ACCEL_UNAVAILABLE`: the requested accelerator cannot run the guest here (the reason says why).
 * - `ACCEL_MISMATCH`: a snapshot baked under one accelerator/CPU model was asked to restore under another.
 * - `INVALID_PATH`: a path handed to QEMU is unsafe (control characters).
 * - `NETWORK_POLICY_INVALID`: a network policy (allow/deny rule, option) is malformed.
 * - `NETWORK_UNAVAILABLE`: this host cannot enforce a network policy (not Linux, or `slirp4netns`,
 *   `nft`, `unshare` or `nsenter` missing); the message names the fix.
 * - `NETWORK_SETUP_FAILED`: creating a VM's network namespace, its rules or its uplink failed.
 * - `CONFINEMENT_FAILED`: a confinement layer could not be applied (a tool missing, a file QEMU could not read).
 * - `RUN_DIR_UNSAFE`: the run directory root is a symlink, someone else's, or open to others.
 * - `UNSUPPORTED_ARCH`: a guest architecture the engine does not know (`x86_64` and `aarch64` it does).
 */
export type VmmErrorCode =
  | "QEMU_NOT_FOUND"
  | "QEMU_START_FAILED"
  | "VM_EXITED"
  | "QMP_ERROR"
  | "QMP_TIMEOUT"
  | "RESTORE_TIMEOUT"
  | "RESTORE_FAILED"
  | "SNAPSHOT_FAILED"
  | "SNAPSHOT_INVALID"
  | "SNAPSHOT_INPUT_MISSING"
  | "GUEST_ASSETS_MISSING"
  | "VM_CLOSED"
  | "BOOT_TIMEOUT"
  | "ACCEL_UNAVAILABLE"
  | "ACCEL_MISMATCH"
  | "INVALID_PATH"
  | "NETWORK_POLICY_INVALID"
  | "NETWORK_UNAVAILABLE"
  | "NETWORK_SETUP_FAILED"
  | "CONFINEMENT_FAILED"
  | "RUN_DIR_UNSAFE"
  | "UNSUPPORTED_ARCH";

/** Every error thrown by `@supermachine/vmm-native`. */
export class VmmError extends SupermachineError {
  declare readonly code: VmmErrorCode;
  constructor(code: VmmErrorCode, message: string, options: SupermachineErrorOptions = {}) {
    super(code, message, options);
  }
}

/** Facts about a QEMU process that ended. */
export interface ExitInfo {
  /** Exit status, or null when killed by a signal. */
  exitCode: number | null;
  /** Terminating signal name, or null. */
  signal: NodeJS.Signals | null;
  /** The last lines of the guest serial console. */
  consoleTail: string;
  /** The last lines QEMU wrote to stderr. */
  stderrTail: string;
}

/** Thrown (and delivered to every waiter) when the QEMU process of a VM ends unexpectedly. */
export class VmExitedError extends VmmError {
  /** How the process ended and what it printed last. */
  readonly exit: ExitInfo;
  constructor(exit: ExitInfo, context = "QEMU exited") {
    const how = exit.signal ? `killed by ${exit.signal}` : `exit status ${exit.exitCode}`;
    const tail = exit.consoleTail.trim() ? `\n--- console tail ---\n${exit.consoleTail.trimEnd()}` : "";
    const err = exit.stderrTail.trim() ? `\n--- qemu stderr ---\n${exit.stderrTail.trimEnd()}` : "";
    super("VM_EXITED", `${context} (${how})${err}${tail}`, { details: { ...exit } });
    this.exit = exit;
  }
}

/** True when `err` says the VM's QEMU process exited. */
export function isVmExited(err: unknown): err is VmmError {
  return err instanceof VmmError && err.code === "VM_EXITED";
}
