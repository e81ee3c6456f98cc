import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { version as osVersion, release } from "node:os";
import { join } from "node:path";
import { probeAccelerator } from "./accel-probe.js";
import {
  type Accelerator,
  type AcceleratorRequest,
  acceleratorArchProblem,
  cpuModelFor,
  hardwareAccelerator,
  kvmAccessProblem,
  requestedAccelerator,
} from "./accelerator.js";
import type { ConfineOptions } from "./confine/options.js";
import { VmmError } from "./errors.js";
import { cacheRoot } from "./guest-assets.js";
import { type GuestArch, hostGuestArch } from "./machine-model.js";
import { qemuRequirements } from "./qemu-args.js";
import { findQemu, type QemuBinary } from "./qemu-binary.js";

/** The accelerator, CPU model and QEMU binary a VM runs with. */
export interface Engine {
  accel: Accelerator;
  /** `-cpu` model. Recorded in snapshots: a restore must use the same. */
  cpuModel: string;
  qemu: QemuBinary;
  /** Set when auto mode tried a hardware accelerator, it failed, and TCG was chosen instead. */
  fallbackReason?: string;
}

/** What {@link chooseEngine} needs to know. */
export interface EngineRequest {
  /** Requested accelerator; default `auto` (or `SUPERMACHINE_ACCEL`). */
  accel?: AcceleratorRequest;
  /**
   * Guest architecture (default: the host's). A guest of another architecture
   * than the host's runs under TCG: auto mode does not probe for it, and an
   * explicit `kvm`/`hvf` fails with `ACCEL_UNAVAILABLE`.
   */
  arch?: GuestArch;
  /** Guest kernel the probe boots (and whose hash keys the cached verdict). */
  kernel: string;
  /** Guest initramfs holding the agent. */
  initrd: string;
  /** Whether the VMs will have a network card (the QEMU binary must then have its backend). */
  network?: boolean;
  /** Probe deadline (ms). Default 10 000 (a real KVM boots this guest in well under a second). */
  probeTimeoutMs?: number;
  /** How the probe's QEMU is confined (default: like every VM's). */
  confine?: ConfineOptions | false;
}

/** A verdict on one accelerator for one (host kernel, QEMU binary, guest kernel). */
export interface AcceleratorVerdict {
  accel: Accelerator;
  cpuModel: string;
  ok: boolean;
  reason: string;
  qemuPath: string;
  qemuVersion: string;
  hostKernel: string;
  guestKernelSha256: string;
  durationMs: number;
  probedAt: string;
}

/** A failed verdict is probed again after this long (a busy host can miss a deadline). */
const NEGATIVE_TTL_MS = 24 * 3600_000;
const VERDICT_FORMAT = 1;

const memo = new Map<string, Promise<AcceleratorVerdict>>();
const warned = new Set<string>();
const kernelHashes = new Map<string, string>();

/** Directory of cached accelerator verdicts. */
export function verdictDir(): string {
  return join(cacheRoot(), "accel-probe");
}

function sha256File(path: string): string {
  const st = statSync(path);
  const key = `${path}\0${st.size}\0${st.mtimeMs}`;
  let h = kernelHashes.get(key);
  if (!h) {
    h = createHash("sha256").update(readFileSync(path)).digest("hex");
    kernelHashes.set(key, h);
  }
  return h;
}

function hostKernel(): string {
  return `${release()} ${osVersion()}`;
}

function readVerdict(file: string): AcceleratorVerdict | undefined {
  try {
    const v = JSON.parse(readFileSync(file, "utf8")) as AcceleratorVerdict & { format?: number };
    if (v.format !== VERDICT_FORMAT || typeof v.ok !== "boolean") return undefined;
    if (!v.ok && Date.now() - Date.parse(v.probedAt) > NEGATIVE_TTL_MS) return undefined;
    return v;
  } catch {
    return undefined;
  }
}

function writeVerdict(file: string, v: AcceleratorVerdict): void {
  try {
    mkdirSync(verdictDir(), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify({ format: VERDICT_FORMAT, ...v }, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, file);
  } catch {
    // an unwritable cache only costs a probe next time
  }
}

/**
 * The verdict on a hardware accelerator, probing at most once per (host
 * kernel, QEMU binary and version, guest kernel content, CPU model): memoized
 * in the process and cached on disk under {@link verdictDir}. Never throws:
 * every failure (no device, no QEMU that can, a guest that does not boot) is a
 * negative verdict with its reason.
 */
export function acceleratorVerdict(
  accel: Exclude<Accelerator, "tcg">,
  req: EngineRequest,
): Promise<AcceleratorVerdict> {
  const cpuModel = cpuModelFor(accel);
  const base = {
    accel,
    cpuModel,
    qemuPath: "",
    qemuVersion: "",
    hostKernel: hostKernel(),
    guestKernelSha256: "",
    durationMs: 0,
    probedAt: new Date().toISOString(),
  };
  const arch = req.arch ?? hostGuestArch();
  const problem = acceleratorArchProblem(accel, arch) ?? (accel === "kvm" ? kvmAccessProblem() : undefined);
  if (problem) return Promise.resolve({ ...base, ok: false, reason: problem });
  let qemu: QemuBinary;
  try {
    qemu = findQemu(qemuRequirements({ network: req.network, arch }, accel));
    base.guestKernelSha256 = sha256File(req.kernel);
  } catch (err) {
    return Promise.resolve({ ...base, ok: false, reason: (err as Error).message });
  }
  base.qemuPath = qemu.path;
  base.qemuVersion = qemu.version;
  const key = createHash("sha256")
    .update(
      JSON.stringify([
        VERDICT_FORMAT,
        accel,
        cpuModel,
        base.hostKernel,
        qemu.path,
        qemu.version,
        base.guestKernelSha256,
      ]),
    )
    .digest("hex")
    .slice(0, 24);
  const hit = memo.get(key);
  if (hit) return hit;
  const file = join(verdictDir(), `${accel}-${key}.json`);
  const pending = (async () => {
    const cached = readVerdict(file);
    if (cached) return cached;
    const r = await probeAccelerator({
      arch,
      accel,
      cpuModel,
      qemu,
      kernel: req.kernel,
      initrd: req.initrd,
      timeoutMs: req.probeTimeoutMs ?? 10_000,
      confine: req.confine,
    });
    const verdict = { ...base, ok: r.ok, reason: r.reason, durationMs: r.durationMs };
    writeVerdict(file, verdict);
    return verdict;
  })();
  memo.set(key, pending);
  return pending;
}

function tcgEngine(req: EngineRequest, fallbackReason?: string): Engine {
  return {
    accel: "tcg",
    cpuModel: cpuModelFor("tcg", req.arch ?? hostGuestArch()),
    qemu: findQemu(qemuRequirements({ network: req.network, arch: req.arch ?? hostGuestArch() }, "tcg")),
    ...(fallbackReason ? { fallbackReason } : {}),
  };
}

function warnFallback(accel: Accelerator, reason: string): void {
  const key = `${accel}\0${reason}`;
  if (warned.has(key)) return;
  warned.add(key);
  process.emitWarning(
    `${accel.toUpperCase()} cannot run the guest on this host, using TCG software emulation (slower). ` +
      `Reason: ${reason}. Run \`npx supermachine doctor\` for details.`,
    { code: "SUPERMACHINE_ACCEL_FALLBACK" },
  );
}

/**
 * Chooses how VMs run: the accelerator, its CPU model and a QEMU binary that
 * has every backend and device the machine needs.
 *
 * - `tcg`: software emulation, no probe. A guest of another architecture than
 *   the host's always gets it in auto mode.
 * - `kvm` / `hvf`: proven by booting the real guest to its agent handshake
 *   (once, then cached); a failure throws `ACCEL_UNAVAILABLE` with the reason.
 * - `auto` (default): the host's hardware accelerator if its probe passes,
 *   else TCG, with a one-time process warning that says why.
 */
export async function chooseEngine(req: EngineRequest): Promise<Engine> {
  const requested = requestedAccelerator(req.accel);
  if (!["auto", "kvm", "hvf", "tcg"].includes(requested)) {
    throw new VmmError("ACCEL_UNAVAILABLE", `unknown accelerator ${JSON.stringify(requested)}`);
  }
  if (requested === "tcg") return tcgEngine(req);
  const hw = requested === "auto" ? hardwareAccelerator(req.arch ?? hostGuestArch()) : requested;
  if (!hw || hw === "tcg") return tcgEngine(req);
  const verdict = await acceleratorVerdict(hw, req);
  if (verdict.ok) {
    return {
      accel: hw,
      cpuModel: verdict.cpuModel,
      qemu: { path: verdict.qemuPath, version: verdict.qemuVersion },
    };
  }
  if (requested !== "auto") {
    throw new VmmError(
      "ACCEL_UNAVAILABLE",
      `${hw.toUpperCase()} was requested but cannot run the guest here: ${verdict.reason}. ` +
        "Use accel 'auto' or 'tcg', or see `npx supermachine doctor`",
      { details: { verdict } },
    );
  }
  warnFallback(hw, verdict.reason);
  return tcgEngine(req, verdict.reason);
}

/** Forgets in-process verdicts (the disk cache stays). For tests. */
export function resetEngineMemo(): void {
  memo.clear();
  warned.clear();
}
