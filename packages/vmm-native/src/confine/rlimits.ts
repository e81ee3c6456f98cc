import { readFileSync } from "node:fs";
import type { Accelerator } from "../accelerator.js";

/** Resource limits of one QEMU process (soft = hard; `prlimit` sets them before QEMU starts). */
export interface QemuRlimits {
  /** RLIMIT_CORE: no core dumps (a dump would hold guest memory). */
  core: number;
  /** RLIMIT_NOFILE. */
  nofile: number;
  /** RLIMIT_AS in bytes: guest RAM plus QEMU's own mappings. */
  addressSpace: number;
  /**
   * RLIMIT_NPROC, set only when QEMU runs under its own uid (the kernel
   * counts every process and thread of that uid, so this bounds all QEMUs
   * of the host together); undefined otherwise.
   */
  nproc?: number;
}

const MIB = 1024 * 1024;

/**
 * Address space QEMU maps besides guest RAM, by accelerator. TCG reserves its
 * translation-block cache (1 GiB by default in QEMU 10) plus libraries,
 * thread stacks and I/O buffers: measured VmPeak 1.4 GiB above a 64-256 MiB
 * guest; KVM has no translation cache. Both get generous headroom: hitting
 * the limit makes QEMU abort.
 */
export const ADDRESS_SPACE_OVERHEAD_MIB: Record<Accelerator, number> = { tcg: 3072, kvm: 2048, hvf: 2048 };

/** File descriptors QEMU may hold (it uses ~25 with this device model). */
export const QEMU_NOFILE = 1024;
/** Processes and threads of the dedicated QEMU uid, all VMs together. */
export const QEMU_NPROC = 8192;

const HARD_LIMIT_ROWS = {
  nofile: "Max open files",
  addressSpace: "Max address space",
  nproc: "Max processes",
};

/** This process's hard limit from `/proc/self/limits` (Infinity when unlimited or unknown). */
function hardLimit(row: string): number {
  try {
    const line = readFileSync("/proc/self/limits", "utf8")
      .split("\n")
      .find((l) => l.startsWith(row));
    const hard = line?.slice(row.length).trim().split(/\s+/)[1];
    return hard === undefined || hard === "unlimited" ? Number.POSITIVE_INFINITY : Number(hard);
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

/**
 * The limits for a VM of `memoryMib` MiB under `accel`, never above this
 * process's own hard limits (which an unprivileged caller cannot raise).
 */
export function qemuRlimits(memoryMib: number, accel: Accelerator, ownUid: boolean): QemuRlimits {
  const cap = (want: number, row: string) => Math.min(want, hardLimit(row));
  return {
    core: 0,
    nofile: cap(QEMU_NOFILE, HARD_LIMIT_ROWS.nofile),
    addressSpace: cap((memoryMib + ADDRESS_SPACE_OVERHEAD_MIB[accel]) * MIB, HARD_LIMIT_ROWS.addressSpace),
    ...(ownUid ? { nproc: cap(QEMU_NPROC, HARD_LIMIT_ROWS.nproc) } : {}),
  };
}

/** `prlimit` arguments (before its `--`) that set `l` as soft and hard limits. */
export function prlimitArgs(l: QemuRlimits): string[] {
  const both = (n: number) => `${n}:${n}`;
  const args = [`--core=${both(l.core)}`, `--nofile=${both(l.nofile)}`, `--as=${both(l.addressSpace)}`];
  if (l.nproc !== undefined) args.push(`--nproc=${both(l.nproc)}`);
  return args;
}
