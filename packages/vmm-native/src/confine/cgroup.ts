import { accessSync, constants, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Accelerator } from "../accelerator.js";

/** Controllers a per-VM cgroup needs. */
export const CGROUP_CONTROLLERS = ["memory", "pids", "cpu"] as const;

/** Where cgroup v2 is mounted when it is the host's only hierarchy. */
const UNIFIED_MOUNT = "/sys/fs/cgroup";

/** Whether per-VM cgroups can be used, and if not, why. */
export type CgroupSupport = { usable: true; parent: string } | { usable: false; reason: string };

/**
 * True when `mountinfo` (text of /proc/self/mountinfo) shows cgroup v2 mounted
 * at /sys/fs/cgroup, i.e. the unified hierarchy is the host's hierarchy (not
 * the hybrid layout where controllers sit in v1 hierarchies and
 * /sys/fs/cgroup/unified has none of them).
 */
export function unifiedHierarchy(mountinfo: string): boolean {
  return mountinfo.split("\n").some((line) => {
    const [pre, post] = line.split(" - ");
    return pre?.split(" ")[4] === UNIFIED_MOUNT && post?.split(" ")[0] === "cgroup2";
  });
}

/** This process's cgroup v2 path (the `0::` line of /proc/self/cgroup), or undefined. */
export function ownCgroupPath(procSelfCgroup: string): string | undefined {
  const line = procSelfCgroup.split("\n").find((l) => l.startsWith("0::"));
  return line?.slice(3).trim() || undefined;
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/**
 * Whether `dir` can hold per-VM cgroups: its `cgroup.subtree_control` enables
 * memory, pids and cpu for children, and this process may create them.
 */
export function delegatedParent(dir: string): string | undefined {
  const enabled = readText(join(dir, "cgroup.subtree_control")).trim().split(/\s+/);
  const missing = CGROUP_CONTROLLERS.filter((c) => !enabled.includes(c));
  if (missing.length) return `${dir} does not enable ${missing.join(", ")} for its children`;
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    return `${dir} is not writable by this process (not delegated to it)`;
  }
  return undefined;
}

let cached: { key: string; support: CgroupSupport } | undefined;

/**
 * Detects per-VM cgroup support: cgroup v2 as the host's hierarchy and a
 * parent delegated to this process (`explicitParent`, else the process's own
 * cgroup). Hosts with cgroup v1 or hybrid hierarchies get rlimits only.
 */
export function detectCgroupSupport(explicitParent?: string): CgroupSupport {
  const key = explicitParent ?? "";
  if (cached?.key === key) return cached.support;
  let support: CgroupSupport;
  if (!unifiedHierarchy(readText("/proc/self/mountinfo"))) {
    support = {
      usable: false,
      reason: "cgroup v2 is not this host's hierarchy (cgroup v1 or hybrid); rlimits only",
    };
  } else {
    const own = ownCgroupPath(readText("/proc/self/cgroup"));
    const parent = explicitParent ?? (own ? join(UNIFIED_MOUNT, own) : undefined);
    const problem = parent ? delegatedParent(parent) : "this process has no cgroup v2 path";
    support = problem || !parent ? { usable: false, reason: problem ?? "" } : { usable: true, parent };
  }
  cached = { key, support };
  return support;
}

/** Limits written into a VM's cgroup. */
export interface CgroupLimits {
  /** `memory.max` in bytes. */
  memoryMax: number;
  /** `pids.max`. */
  pidsMax: number;
  /** `cpu.max` quota per 100 ms period, in µs (one vCPU = 100 000). */
  cpuQuotaUs: number;
}

/** QEMU's memory beyond guest RAM that its cgroup allows (TCG's translation cache dominates). */
const MEMORY_OVERHEAD_MIB: Record<Accelerator, number> = { tcg: 1280, kvm: 384, hvf: 384 };

/** The cgroup limits of a VM. */
export function cgroupLimits(memoryMib: number, vcpus: number, accel: Accelerator): CgroupLimits {
  return {
    memoryMax: (memoryMib + MEMORY_OVERHEAD_MIB[accel]) * 1024 * 1024,
    pidsMax: 512,
    cpuQuotaUs: vcpus * 100_000,
  };
}

/** Creates `parent/name` with `limits` written; returns its path. */
export function createVmCgroup(parent: string, name: string, limits: CgroupLimits): string {
  const dir = join(parent, name);
  mkdirSync(dir);
  try {
    writeFileSync(join(dir, "memory.max"), String(limits.memoryMax));
    writeFileSync(join(dir, "pids.max"), String(limits.pidsMax));
    writeFileSync(join(dir, "cpu.max"), `${limits.cpuQuotaUs} 100000`);
  } catch (err) {
    removeVmCgroup(dir);
    throw err;
  }
  return dir;
}

/** Removes a VM's cgroup once its processes are gone. Best effort. */
export function removeVmCgroup(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // still busy or already gone
  }
}
