import { existsSync } from "node:fs";
import type { Accelerator } from "./accelerator.js";
import { VmmError } from "./errors.js";
import { missingCapabilities, type QemuRequirements, readCapabilities } from "./qemu-capabilities.js";

/** A QEMU system emulator found on this host. */
export interface QemuBinary {
  /** Absolute path of the executable. */
  path: string;
  /** Version string, e.g. `10.0.2`. */
  version: string;
}

const SEARCH_DIRS = ["/usr/bin", "/usr/local/bin", "/opt/homebrew/bin"];

/**
 * Candidate binaries for an accelerator, best first: `SUPERMACHINE_QEMU` alone
 * when set; under KVM the minimal `qemu-system-x86_64-microvm` build before
 * the full one (it starts faster, but lacks e.g. the `user` network backend,
 * which the capability check then catches).
 */
export function qemuCandidates(accel: Accelerator): string[] {
  const env = process.env.SUPERMACHINE_QEMU;
  if (env) return [env];
  const names =
    accel === "kvm" ? ["qemu-system-x86_64-microvm", "qemu-system-x86_64"] : ["qemu-system-x86_64"];
  return names.flatMap((n) => SEARCH_DIRS.map((d) => `${d}/${n}`));
}

/**
 * Finds the first QEMU binary that has everything `req` needs (accelerator,
 * machine type, network backends, devices), asking each candidate what it
 * supports. Throws `QEMU_NOT_FOUND` listing what each candidate lacked.
 */
export function findQemu(req: QemuRequirements): QemuBinary {
  const rejected: string[] = [];
  for (const path of qemuCandidates(req.accel as Accelerator)) {
    if (!existsSync(path)) continue;
    let missing: string[];
    let version = "unknown";
    try {
      const caps = readCapabilities(path);
      version = caps.version;
      missing = missingCapabilities(caps, req);
    } catch (err) {
      missing = [`it does not run (${(err as Error).message.split("\n")[0]})`];
    }
    if (missing.length === 0) return { path, version };
    rejected.push(`${path}: lacks ${missing.join(", ")}`);
  }
  const why = rejected.length ? `; rejected ${rejected.join("; ")}` : " (none installed)";
  throw new VmmError(
    "QEMU_NOT_FOUND",
    `no QEMU binary can run the ${req.machine} guest under ${req.accel}${why}. ` +
      "Install Debian's qemu-system-x86 (10.x from bookworm-backports) and run `npx supermachine doctor`",
    { details: { requirements: req, rejected } },
  );
}
