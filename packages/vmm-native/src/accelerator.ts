import { accessSync, constants, existsSync } from "node:fs";

/** Hardware acceleration QEMU can use. `tcg` is software emulation and always works. */
export type Accelerator = "kvm" | "hvf" | "tcg";

/** An accelerator request: one by name, or `auto` (probe the hardware one, else TCG). */
export type AcceleratorRequest = Accelerator | "auto";

const NAMES: readonly string[] = ["kvm", "hvf", "tcg", "auto"];

/**
 * The KVM device node: `/dev/kvm`, or `SUPERMACHINE_KVM_DEVICE` (tests use it
 * to exercise the probe on hosts without KVM).
 */
export function kvmDevice(): string {
  return process.env.SUPERMACHINE_KVM_DEVICE || "/dev/kvm";
}

/** True when the KVM device exists (whether or not it can run a guest: only a probe tells). */
export function kvmDevicePresent(): boolean {
  return process.platform === "linux" && existsSync(kvmDevice());
}

/** Why this process cannot open `/dev/kvm` read-write, or undefined when it can. */
export function kvmAccessProblem(): string | undefined {
  if (process.platform !== "linux") return `KVM needs Linux (this is ${process.platform})`;
  const dev = kvmDevice();
  if (!existsSync(dev)) return `${dev} does not exist (no KVM on this host)`;
  try {
    accessSync(dev, constants.R_OK | constants.W_OK);
    return undefined;
  } catch (err) {
    return `${dev} cannot be opened read-write by this user (${(err as NodeJS.ErrnoException).code}); add the user to the kvm group`;
  }
}

/**
 * The request in force: an explicit `requested` other than `auto` wins, then
 * `SUPERMACHINE_ACCEL`, then `auto`. Unknown names are refused by the caller.
 */
export function requestedAccelerator(requested?: AcceleratorRequest): AcceleratorRequest {
  if (requested && requested !== "auto") return requested;
  const env = process.env.SUPERMACHINE_ACCEL;
  if (env && NAMES.includes(env)) return env as AcceleratorRequest;
  return "auto";
}

/** The hardware accelerator auto mode tries on this host, if any. */
export function hardwareAccelerator(): Accelerator | undefined {
  if (process.platform === "darwin") return "hvf";
  if (kvmDevicePresent()) return "kvm";
  return undefined;
}

/** The `-cpu` model for an accelerator: `max` under TCG, the host's own CPU under KVM/HVF. */
export function cpuModelFor(accel: Accelerator): string {
  return accel === "tcg" ? "max" : "host";
}
