import type { Accelerator } from "./accelerator.js";
import { VmmError } from "./errors.js";
import { type GuestArch, machineModel } from "./machine-model.js";
import type { QemuRequirements } from "./qemu-capabilities.js";

/**
 * Everything that determines a VM's device model. Bake and restore must use
 * the same values (except `memoryShared`, `incoming` and the socket paths),
 * which is why snapshots record it.
 */
export interface MachineSpec {
  /**
   * Guest architecture: picks the machine model (`microvm` for x86_64, `virt`
   * for aarch64) and the QEMU binary. Absent means x86_64 (records written
   * before other architectures existed).
   */
  arch?: GuestArch;
  /** Guest kernel (bzImage on x86_64, Image on aarch64). */
  kernel: string;
  /** Initramfs holding the guest init/agent. */
  initrd: string;
  /** Extra kernel command-line arguments. */
  cmdline?: string;
  /** Guest RAM in MiB. */
  memoryMib: number;
  /** Virtual CPUs. */
  vcpus: number;
  /** Read-only root file system image attached as /dev/vda. */
  rootfs?: string;
  /** Attach a user-mode (slirp) network card. Default true. */
  network?: boolean;
  /**
   * Build hash of `kernel` (as the guest manifest names it). With `agentHash`,
   * a snapshot's `machine.json` names the guest by these hashes instead of
   * by paths (relocatable). Default: the hashes of the resolved guest
   * assets when `kernel`/`initrd` are theirs.
   */
  kernelHash?: string;
  /** Build hash of the init/agent in `initrd`. */
  agentHash?: string;
  /**
   * Content address (`sha256:` + 64 hex) of `rootfs` in the root fs store.
   * Given, a snapshot's `machine.json` names the root fs by it instead of by
   * its path (relocatable).
   */
  rootfsDigest?: string;
}

/** Host-side paths and modes of one QEMU process. */
export interface ProcessSpec {
  accel: Accelerator;
  /** `-cpu` model: `max` under TCG, one the host can set under KVM/HVF (see `chooseEngine`). */
  cpuModel: string;
  /** File that backs guest RAM. */
  memoryFile: string;
  /** `true` maps the file MAP_SHARED (bake), `false` MAP_PRIVATE copy-on-write (restore). */
  memoryShared: boolean;
  qmpSocket: string;
  agentSocket: string;
  /** Named pipe the console chardev writes to (a `ConsoleSink` reads it). */
  consolePipe: string;
  /** Start paused in `-incoming defer`, waiting for a restore. */
  incoming: boolean;
}

/** Kernel command line used for every guest. */
export function kernelCmdline(spec: MachineSpec): string {
  const model = machineModel(spec.arch);
  const parts = [`console=${model.console}`, "quiet", "panic=-1", ...model.cmdline];
  if (spec.rootfs) parts.push("sm.root=/dev/vda");
  if (spec.cmdline) parts.push(spec.cmdline);
  return parts.join(" ");
}

/** The QEMU machine type of x86_64 guests (see `machineModel` for the others). */
export const MACHINE_TYPE = "microvm";

/** Devices {@link buildQemuArgs} attaches (whatever the spec). */
const BASE_DEVICES = ["virtio-serial-device", "virtserialport", "virtio-rng-device", "virtio-blk-device"];

/** What a QEMU binary must support to run `spec` under `accel`. */
export function qemuRequirements(
  spec: Pick<MachineSpec, "network" | "arch">,
  accel: Accelerator,
): QemuRequirements {
  const network = spec.network !== false;
  const model = machineModel(spec.arch);
  return {
    arch: model.arch,
    accel,
    machine: model.machineType,
    netdevs: network ? ["user"] : [],
    devices: network ? [...BASE_DEVICES, "virtio-net-device"] : BASE_DEVICES,
  };
}

/**
 * A value placed inside a QEMU `key=value,...` option string. QEMU reads `,,`
 * as a literal comma, so commas are doubled: a path can never add options.
 * Control characters are refused outright.
 */
export function optionValue(value: string, what: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\x00-\x1f\x7f]/.test(value)) {
    throw new VmmError("INVALID_PATH", `${what} contains a control character: ${JSON.stringify(value)}`);
  }
  return value.replaceAll(",", ",,");
}

/** A path passed as a whole argument (not inside an option string): control characters refused. */
function plainPath(value: string, what: string): string {
  optionValue(value, what);
  return value;
}

/**
 * Builds the QEMU argument vector of a guest: its architecture's machine
 * model (`microvm` or `virt`) with the same devices, all on virtio-mmio.
 */
export function buildQemuArgs(spec: MachineSpec, proc: ProcessSpec): string[] {
  const accel = proc.accel;
  const model = machineModel(spec.arch);
  const memPath = optionValue(proc.memoryFile, "memory file path");
  const args = [
    "-M",
    [model.machineType, ...model.machineOptions, "memory-backend=mem"].join(","),
    "-accel",
    accel,
    "-cpu",
    proc.cpuModel,
    "-smp",
    String(spec.vcpus),
    "-m",
    `${spec.memoryMib}M`,
    "-object",
    // restored: the file is opened read-only and mapped private and writable, so a write can never reach it
    `memory-backend-file,id=mem,size=${spec.memoryMib}M,mem-path=${memPath},${proc.memoryShared ? "share=on" : "share=off,readonly=on,rom=off"}`,
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    "-no-reboot",
    "-kernel",
    plainPath(spec.kernel, "kernel path"),
    "-initrd",
    plainPath(spec.initrd, "initramfs path"),
    "-append",
    kernelCmdline(spec),
    "-chardev",
    `file,id=con0,path=${optionValue(proc.consolePipe, "console pipe path")}`,
    "-serial",
    "chardev:con0",
    "-qmp",
    `unix:${optionValue(proc.qmpSocket, "QMP socket path")},server=on,wait=off`,
    "-device",
    "virtio-serial-device",
    "-chardev",
    `socket,id=agent,path=${optionValue(proc.agentSocket, "agent socket path")},server=on,wait=off`,
    "-device",
    "virtserialport,chardev=agent,name=sm.agent",
    "-device",
    "virtio-rng-device",
  ];
  if (spec.rootfs) {
    args.push(
      "-drive",
      `file=${optionValue(spec.rootfs, "root fs path")},if=none,id=root,format=raw,readonly=on,cache=unsafe`,
      "-device",
      "virtio-blk-device,drive=root",
    );
  }
  if (spec.network !== false) {
    args.push("-netdev", "user,id=net0", "-device", "virtio-net-device,netdev=net0");
  }
  if (proc.incoming) args.push("-S", "-incoming", "defer");
  return args;
}
