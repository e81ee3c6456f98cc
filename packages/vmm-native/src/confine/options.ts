import { readFileSync } from "node:fs";
import { VmmError } from "../errors.js";

/** How QEMU processes are confined (see the package README, "Confinement"). */
export interface ConfineOptions {
  /**
   * `false` turns every layer off except the parent-death signal: QEMU then
   * runs as the caller, with the caller's environment, and sees the whole
   * host. For debugging and measurements only. Default: on, on Linux
   * (`SUPERMACHINE_CONFINE=off` also turns it off).
   */
  enabled?: boolean;
  /**
   * User and group QEMU runs as when the engine runs as root. Default:
   * `SUPERMACHINE_QEMU_UID` / `SUPERMACHINE_QEMU_GID`, else the `supermachine`
   * user of /etc/passwd if there is one, else {@link DEFAULT_QEMU_ID}.
   * Never 0. Ignored when not root (QEMU then keeps the caller's uid).
   */
  uid?: number;
  gid?: number;
  /**
   * A cgroup v2 directory delegated to this process, with the `memory`,
   * `pids` and `cpu` controllers enabled for its children; each VM gets a
   * child cgroup there. Default: `SUPERMACHINE_CGROUP_PARENT`, else the
   * process's own cgroup when it qualifies. Without one, rlimits only.
   */
  cgroupParent?: string;
}

/**
 * uid and gid QEMU runs as under root when nothing else is configured: a
 * number outside the ranges distributions hand out (system users, regular
 * users, systemd's dynamic users and container ranges), so that no other
 * process on the host shares it.
 */
export const DEFAULT_QEMU_ID = 2_000_000_000;

/** The unprivileged identity QEMU is switched to. */
export interface QemuIdentity {
  uid: number;
  gid: number;
}

/** The confinement in force for one launch. */
export interface Confinement {
  enabled: boolean;
  /** The engine runs as root: QEMU is switched to {@link identity}. */
  asRoot: boolean;
  /** Set when `asRoot`. */
  identity?: QemuIdentity;
  cgroupParent?: string;
}

function envId(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0 || n >= 0xffffffff) {
    throw new VmmError("CONFINEMENT_FAILED", `${name}=${v} is not a non-zero uid/gid`);
  }
  return n;
}

let passwdCache: { uid: number; gid: number } | null | undefined;
function passwdUser(): { uid: number; gid: number } | undefined {
  if (passwdCache === undefined) {
    passwdCache = null;
    try {
      for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
        const f = line.split(":");
        if (f[0] === "supermachine" && f.length >= 4) {
          passwdCache = { uid: Number(f[2]), gid: Number(f[3]) };
          break;
        }
      }
    } catch {
      // no passwd file: the numeric default applies
    }
  }
  return passwdCache ?? undefined;
}

/** True when `id` is mapped in this process's user namespace (`/proc/self/{u,g}id_map`). */
export function idMapped(kind: "uid" | "gid", id: number): boolean {
  let text: string;
  try {
    text = readFileSync(`/proc/self/${kind}_map`, "utf8");
  } catch {
    return true;
  }
  return text
    .trim()
    .split("\n")
    .some((line) => {
      const [inside, , count] = line.trim().split(/\s+/).map(Number);
      return inside !== undefined && count !== undefined && id >= inside && id < inside + count;
    });
}

function envDisabled(): boolean {
  const v = (process.env.SUPERMACHINE_CONFINE ?? "").toLowerCase();
  return v === "off" || v === "0" || v === "false" || v === "no";
}

/** Resolves options and environment into the confinement one launch uses. */
export function resolveConfinement(opts: ConfineOptions | false | undefined): Confinement {
  const o = opts === false ? { enabled: false } : (opts ?? {});
  const enabled = process.platform === "linux" && o.enabled !== false && !envDisabled();
  if (!enabled) return { enabled: false, asRoot: false };
  const asRoot = process.getuid?.() === 0;
  const cgroupParent = o.cgroupParent ?? (process.env.SUPERMACHINE_CGROUP_PARENT || undefined);
  if (!asRoot) return { enabled, asRoot, cgroupParent };
  const fromPasswd = passwdUser();
  const uid = o.uid ?? envId("SUPERMACHINE_QEMU_UID") ?? fromPasswd?.uid ?? DEFAULT_QEMU_ID;
  const gid = o.gid ?? envId("SUPERMACHINE_QEMU_GID") ?? fromPasswd?.gid ?? uid;
  if (uid === 0 || gid === 0) {
    throw new VmmError("CONFINEMENT_FAILED", "QEMU must not run as uid or gid 0");
  }
  for (const [kind, id] of [
    ["uid", uid],
    ["gid", gid],
  ] as const) {
    if (!idMapped(kind, id)) {
      throw new VmmError(
        "CONFINEMENT_FAILED",
        `${kind} ${id} for QEMU is not mapped in this user namespace; set SUPERMACHINE_QEMU_${kind.toUpperCase()} to one that is`,
      );
    }
  }
  return { enabled, asRoot, identity: { uid, gid }, cgroupParent };
}
