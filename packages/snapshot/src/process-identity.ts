import { readFileSync } from "node:fs";
import { hostname } from "node:os";

/**
 * Who a process is, precisely enough to tell a live owner from a dead one
 * whose pid was reused: pid, its start time (clock ticks since boot, field
 * 22 of `/proc/<pid>/stat`; "0" where `/proc` is absent), the host name and
 * the kernel boot id.
 */
export interface ProcessIdentity {
  /** Process id. */
  pid: number;
  /** Start time from `/proc/<pid>/stat`, or "0" when unknown. */
  startTime: string;
  /** `os.hostname()` of the machine. */
  host: string;
  /** `/proc/sys/kernel/random/boot_id`, or "" when unknown. */
  bootId: string;
}

function readStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Field 2 (comm) may contain spaces and parentheses: split after the last ")".
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // rest[0] is field 3 (state), so field 22 (starttime) is rest[19].
    return rest[19];
  } catch {
    return undefined;
  }
}

let bootIdCache: string | undefined;
function bootId(): string {
  if (bootIdCache === undefined) {
    try {
      bootIdCache = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    } catch {
      bootIdCache = "";
    }
  }
  return bootIdCache;
}

let selfCache: ProcessIdentity | undefined;
/** The identity of the current process. */
export function selfIdentity(): ProcessIdentity {
  selfCache ??= {
    pid: process.pid,
    startTime: readStartTime(process.pid) ?? "0",
    host: hostname(),
    bootId: bootId(),
  };
  return selfCache;
}

/**
 * Whether the process described by `id` can be judged from this machine:
 * same host name and (when both are known) same boot.
 */
export function isLocal(id: Pick<ProcessIdentity, "host" | "bootId">): boolean {
  return id.host === hostname();
}

/**
 * Whether the process `id` (from this host) is still running: its pid
 * exists, the host has not rebooted since, and the pid's start time is the
 * recorded one (so a reused pid does not count).
 */
export function isProcessAlive(id: ProcessIdentity): boolean {
  if (id.bootId && bootId() && id.bootId !== bootId()) return false;
  try {
    process.kill(id.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  if (id.startTime === "0") return true;
  const now = readStartTime(id.pid);
  return now === undefined ? true : now === id.startTime;
}
