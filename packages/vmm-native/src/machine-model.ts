import type { Accelerator } from "./accelerator.js";
import { VmmError } from "./errors.js";

/** A guest CPU architecture the engine can run. */
export type GuestArch = "x86_64" | "aarch64";

/** Every guest architecture, in a stable order. */
export const GUEST_ARCHES: readonly GuestArch[] = ["x86_64", "aarch64"];

/**
 * How one guest architecture becomes a QEMU machine: the machine type and its
 * options, the console, the kernel command-line additions and the QEMU binary
 * names. Everything else (file-backed RAM, virtio-mmio devices, QMP,
 * `-incoming defer` restores) is the same for every architecture.
 */
export interface MachineModel {
  /** The guest architecture. */
  readonly arch: GuestArch;
  /** QEMU machine type: `microvm` (x86_64) or `virt` (aarch64). */
  readonly machineType: string;
  /** Options after the machine type in `-M` (without `memory-backend`). */
  readonly machineOptions: readonly string[];
  /** The guest's serial console device (`ttyS0`, `ttyAMA0`). */
  readonly console: string;
  /** Kernel command-line words specific to this architecture. */
  readonly cmdline: readonly string[];
  /** The file name of the kernel image in the guest package (`bzImage`, `Image`). */
  readonly kernelFile: string;
  /** Names of the QEMU system emulators that run this machine under `accel`, best first. */
  qemuNames(accel: Accelerator): string[];
}

const X86_64: MachineModel = {
  arch: "x86_64",
  machineType: "microvm",
  // under TCG the PIT and PIC must stay on, or the guest hangs in early boot
  machineOptions: ["acpi=off", "pit=on", "pic=on", "rtc=on"],
  console: "ttyS0",
  cmdline: ["reboot=t", "tsc=reliable", "no_timer_check"],
  kernelFile: "bzImage",
  // Debian's minimal microvm build starts faster but is KVM-only (and lacks the user network
  // backend, which the capability check then catches)
  qemuNames: (accel) =>
    accel === "kvm" ? ["qemu-system-x86_64-microvm", "qemu-system-x86_64"] : ["qemu-system-x86_64"],
};

const AARCH64: MachineModel = {
  arch: "aarch64",
  machineType: "virt",
  // GICv3 (a GICv2 has at most 8 CPUs and no HVF/KVM on newer hosts); no firmware: QEMU
  // loads the kernel and writes the device tree that lists the virtio-mmio transports
  machineOptions: ["gic-version=3"],
  console: "ttyAMA0",
  cmdline: [],
  kernelFile: "Image",
  qemuNames: () => ["qemu-system-aarch64"],
};

/** The machine model of a guest architecture. */
export function machineModel(arch: GuestArch = "x86_64"): MachineModel {
  switch (arch) {
    case "x86_64":
      return X86_64;
    case "aarch64":
      return AARCH64;
    default:
      throw new VmmError(
        "UNSUPPORTED_ARCH",
        `unknown guest architecture ${JSON.stringify(arch)}; supported: ${GUEST_ARCHES.join(", ")}`,
      );
  }
}

/**
 * Reads a guest architecture name (`x86_64`/`amd64`, `aarch64`/`arm64`).
 * Throws `UNSUPPORTED_ARCH` listing the supported ones.
 */
export function parseGuestArch(value: unknown): GuestArch {
  const v = typeof value === "string" ? value.toLowerCase() : "";
  if (v === "x86_64" || v === "amd64" || v === "x64") return "x86_64";
  if (v === "aarch64" || v === "arm64") return "aarch64";
  throw new VmmError(
    "UNSUPPORTED_ARCH",
    `unknown guest architecture ${JSON.stringify(value)}; supported: ${GUEST_ARCHES.join(", ")}`,
  );
}

/** The guest architecture that matches a Node `process.arch` value, if any. */
export function guestArchOfNode(nodeArch: string): GuestArch | undefined {
  if (nodeArch === "x64") return "x86_64";
  if (nodeArch === "arm64") return "aarch64";
  return undefined;
}

/** The host's own architecture as a guest architecture (x86_64 on hosts that are neither). */
export function hostGuestArch(): GuestArch {
  return guestArchOfNode(process.arch) ?? "x86_64";
}
