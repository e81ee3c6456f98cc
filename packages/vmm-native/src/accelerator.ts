import { accessSync, constants, existsSync } from "node:fs";
import { type GuestArch, guestArchOfNode, hostGuestArch } from "./machine-model.js";

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

/**
 * The hardware accelerator auto mode tries on this host for a guest of
 * `arch` (default x86_64), if any: HVF on macOS, KVM on Linux, and only when
 * the guest has the host's own architecture (hardware virtualization does not
 * translate instructions: a foreign guest always runs under TCG, with no
 * probe). `arch` defaults to the host's; `platform` and `hostArch` (a Node
 * `process.arch`) to this process's.
 */
export function hardwareAccelerator(
  arch: GuestArch = hostGuestArch(),
  platform: NodeJS.Platform = process.platform,
  hostArch: string = process.arch,
): Accelerator | undefined {
  if (guestArchOfNode(hostArch) !== arch) return undefined;
  if (platform === "darwin") return "hvf";
  if (platform === "linux" && kvmDevicePresent()) return "kvm";
  return undefined;
}

/**
 * Why `accel` cannot run a guest of `arch` on this host at all, whatever a
 * probe would say (a foreign architecture, the wrong OS), or undefined.
 */
export function acceleratorArchProblem(
  accel: Exclude<Accelerator, "tcg">,
  arch: GuestArch = hostGuestArch(),
  platform: NodeJS.Platform = process.platform,
  hostArch: string = process.arch,
): string | undefined {
  const host = guestArchOfNode(hostArch) ?? hostArch;
  if (host !== arch) {
    return `${accel.toUpperCase()} runs guests of the host's own architecture (${host}) only, not ${arch}; use TCG`;
  }
  if (accel === "hvf" && platform !== "darwin") return `HVF needs macOS (this is ${platform})`;
  if (accel === "kvm" && platform !== "linux") return `KVM needs Linux (this is ${platform})`;
  return undefined;
}

/**
 * The `-cpu` model for an accelerator and guest architecture: the host's own
 * CPU under KVM/HVF; under TCG `max`, for x86_64 without ERMS and FSRM.
 * Those two flags tell the guest that `rep movsb` is the fastest copy, so its
 * kernel and libc copy byte by byte with it, and TCG runs that instruction one
 * byte per iteration: without them the guest copies with `rep movsq` and
 * wider moves, 2-2.5x faster (a 64 MiB page cache read 144 -> 60 ms).
 */
export function cpuModelFor(accel: Accelerator, arch: GuestArch = hostGuestArch()): string {
  if (accel !== "tcg") return "host";
  return arch === "x86_64" ? "max,-erms,-fsrm" : "max";
}
