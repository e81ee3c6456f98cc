import { existsSync } from "node:fs";
import type { Accelerator } from "./accelerator.js";
import { VmmError } from "./errors.js";
import { type GuestArch, machineModel } from "./machine-model.js";
import { missingCapabilities, type QemuRequirements, readCapabilities } from "./qemu-capabilities.js";

/** The package that brings each architecture's QEMU (Debian; Homebrew's `qemu` has both). */
const QEMU_PACKAGE: Record<GuestArch, string> = {
  x86_64: "Debian's qemu-system-x86 (10.x from bookworm-backports; Homebrew: qemu)",
  aarch64: "Debian's qemu-system-arm (10.x from bookworm-backports; Homebrew: qemu)",
};

/** A QEMU system emulator found on this host. */
export interface QemuBinary {
  /** Absolute path of the executable. */
  path: string;
  /** Version string, e.g. `10.0.2`. */
  version: string;
}

/**
 * Where QEMU is looked for: Debian's and other distributions' `/usr/bin`,
 * `/usr/local/bin` (also Homebrew on Intel Macs) and Homebrew on Apple
 * Silicon (`/opt/homebrew/bin`).
 */
export const QEMU_SEARCH_DIRS: readonly string[] = ["/usr/bin", "/usr/local/bin", "/opt/homebrew/bin"];

/**
 * Candidate binaries for an accelerator and guest architecture, best first:
 * `SUPERMACHINE_QEMU` alone when set (x86_64 guests) or
 * `SUPERMACHINE_QEMU_AARCH64` (aarch64 guests); else the architecture's
 * system emulator in {@link QEMU_SEARCH_DIRS}. For x86_64 under KVM the
 * minimal `qemu-system-x86_64-microvm` build comes before the full one (it
 * starts faster, but lacks e.g. the `user` network backend, which the
 * capability check then catches).
 */
export function qemuCandidates(accel: Accelerator, arch: GuestArch = "x86_64"): string[] {
  const env = arch === "x86_64" ? process.env.SUPERMACHINE_QEMU : process.env.SUPERMACHINE_QEMU_AARCH64;
  if (env) return [env];
  return machineModel(arch)
    .qemuNames(accel)
    .flatMap((n) => QEMU_SEARCH_DIRS.map((d) => `${d}/${n}`));
}

/**
 * Finds the first QEMU binary that has everything `req` needs (accelerator,
 * machine type, network backends, devices), asking each candidate what it
 * supports. Throws `QEMU_NOT_FOUND` listing what each candidate lacked.
 */
export function findQemu(req: QemuRequirements): QemuBinary {
  const rejected: string[] = [];
  const arch = req.arch ?? "x86_64";
  for (const path of qemuCandidates(req.accel as Accelerator, arch)) {
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
    `no QEMU binary can run the ${arch} ${req.machine} guest under ${req.accel}${why}. ` +
      `Install ${QEMU_PACKAGE[arch]} and run \`npx supermachine doctor\``,
    { details: { requirements: req, rejected } },
  );
}
