import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import type { Accelerator } from "./accelerator.js";
import { VmmError } from "./errors.js";

/** A QEMU system emulator found on this host. */
export interface QemuBinary {
  /** Absolute path of the executable. */
  path: string;
  /** Version string, e.g. `10.0.2`. */
  version: string;
}

const SEARCH_DIRS = ["/usr/bin", "/usr/local/bin", "/opt/homebrew/bin"];
const cache = new Map<string, QemuBinary>();

function candidates(accel: Accelerator): string[] {
  const env = process.env.SUPERMACHINE_QEMU;
  if (env) return [env];
  const names =
    accel === "kvm" ? ["qemu-system-x86_64-microvm", "qemu-system-x86_64"] : ["qemu-system-x86_64"];
  return names.flatMap((n) => SEARCH_DIRS.map((d) => `${d}/${n}`));
}

/**
 * Finds the QEMU binary for an accelerator (the KVM-only minimal
 * `qemu-system-x86_64-microvm` build when KVM is usable, the full build
 * otherwise) and reads its version. Cached per process.
 */
export function findQemu(accel: Accelerator): QemuBinary {
  const hit = cache.get(accel);
  if (hit) return hit;
  for (const path of candidates(accel)) {
    if (!existsSync(path)) continue;
    const out = execFileSync(path, ["--version"], { encoding: "utf8" });
    const version = /version (\d+\.\d+(?:\.\d+)?)/.exec(out)?.[1] ?? "unknown";
    const bin = { path, version };
    cache.set(accel, bin);
    return bin;
  }
  throw new VmmError(
    "QEMU_NOT_FOUND",
    `no QEMU binary for accelerator ${accel}; install qemu-system-x86 (run: npm run setup)`,
  );
}
