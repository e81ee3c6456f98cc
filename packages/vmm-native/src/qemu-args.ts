import type { Accelerator } from "./accelerator.js";

/**
 * Everything that determines a VM's device model. Bake and restore must use
 * the same values (except `memoryShared`, `incoming` and the socket paths),
 * which is why snapshots record it.
 */
export interface MachineSpec {
  /** Guest kernel (bzImage). */
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
}

/** Host-side paths and modes of one QEMU process. */
export interface ProcessSpec {
  accel: Accelerator;
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
  const parts = ["console=ttyS0", "quiet", "panic=-1", "reboot=t", "tsc=reliable", "no_timer_check"];
  if (spec.rootfs) parts.push("sm.root=/dev/vda");
  if (spec.cmdline) parts.push(spec.cmdline);
  return parts.join(" ");
}

/** Builds the QEMU argument vector for a microvm guest. */
export function buildQemuArgs(spec: MachineSpec, proc: ProcessSpec): string[] {
  const accel = proc.accel;
  const args = [
    "-M",
    "microvm,acpi=off,pit=on,pic=on,rtc=on,memory-backend=mem",
    "-accel",
    accel,
    "-cpu",
    proc.accel === "tcg" ? "max" : "host",
    "-smp",
    String(spec.vcpus),
    "-m",
    `${spec.memoryMib}M`,
    "-object",
    `memory-backend-file,id=mem,size=${spec.memoryMib}M,mem-path=${proc.memoryFile},share=${proc.memoryShared ? "on" : "off"}`,
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    "-no-reboot",
    "-kernel",
    spec.kernel,
    "-initrd",
    spec.initrd,
    "-append",
    kernelCmdline(spec),
    "-chardev",
    `file,id=con0,path=${proc.consolePipe}`,
    "-serial",
    "chardev:con0",
    "-qmp",
    `unix:${proc.qmpSocket},server=on,wait=off`,
    "-device",
    "virtio-serial-device",
    "-chardev",
    `socket,id=agent,path=${proc.agentSocket},server=on,wait=off`,
    "-device",
    "virtserialport,chardev=agent,name=sm.agent",
    "-device",
    "virtio-rng-device",
  ];
  if (spec.rootfs) {
    args.push(
      "-drive",
      `file=${spec.rootfs},if=none,id=root,format=raw,readonly=on,cache=unsafe`,
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
