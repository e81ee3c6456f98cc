import { createHash } from "node:crypto";
import type { FingerprintExtraFile, FingerprintInputs } from "@supermachine/snapshot";
import { GUEST_ARCHES, type GuestArch, hostGuestArch } from "@supermachine/vmm-native";
import { CoreError } from "./errors.js";
import type { BuildOptions, ExtraFileSpec } from "./options.js";
import { enumOption, intOption } from "./validate.js";

/** How the bake decides when to take the snapshot. */
export type BakeTrigger = "pre-exec" | "listener" | "warmup";

/** `Image.build` options after defaults and validation: what one bake uses. */
export interface ResolvedBuildOptions {
  memoryMib: number;
  vcpus: number;
  guestPort: number;
  pullPolicy: "always" | "missing" | "never";
  /** Accelerator asked for (`auto`: probed). */
  accel: "auto" | "kvm" | "hvf" | "tcg";
  /** Guest architecture (default: the host's). */
  arch: GuestArch;
  listenerRequired: boolean;
  trigger: BakeTrigger;
  /** The warmup tag, only when a warmup callback is given (it is part of the cache key then). */
  warmupTag: string | undefined;
  listenerTimeoutMs: number;
}

/** A host file read for the bake: its bytes and permission bits. */
export interface ExtraFile extends ExtraFileSpec {
  bytes: Buffer;
  mode: number;
}

/**
 * When the snapshot is taken: after the `warmup` callback when there is one,
 * else once the workload listens (`listenerRequired`), else just before init
 * starts the workload.
 */
export function chooseTrigger(options: Pick<BuildOptions, "warmup" | "listenerRequired">): BakeTrigger {
  if (options.warmup) return "warmup";
  return options.listenerRequired === true ? "listener" : "pre-exec";
}

function invalid(message: string): CoreError {
  return new CoreError("INVALID_OPTIONS", message);
}

/**
 * Applies the defaults of `Image.build` and validates every option a bake
 * uses; throws `INVALID_OPTIONS` naming the first bad one. Pure: no I/O.
 */
export function resolveBuildOptions(options: BuildOptions): ResolvedBuildOptions {
  if (!options || typeof options.ref !== "string" || !options.ref) {
    throw invalid("Image.build needs a non-empty `ref`");
  }
  if (
    options.cmd !== undefined &&
    (!Array.isArray(options.cmd) || options.cmd.some((a) => typeof a !== "string"))
  )
    throw invalid("cmd must be an array of strings");
  if (
    options.env !== undefined &&
    (typeof options.env !== "object" ||
      options.env === null ||
      Array.isArray(options.env) ||
      Object.values(options.env).some((v) => typeof v !== "string"))
  )
    throw invalid("env must be a record of strings");
  if (options.warmup !== undefined && typeof options.warmup !== "function")
    throw invalid("warmup must be a function");
  if (options.warmupTag !== undefined && (typeof options.warmupTag !== "string" || !options.warmupTag))
    throw invalid("warmupTag must be a non-empty string");
  if (options.listenerRequired !== undefined && typeof options.listenerRequired !== "boolean")
    throw invalid("listenerRequired must be a boolean");
  if (options.extraFiles !== undefined && !Array.isArray(options.extraFiles))
    throw invalid("extraFiles must be an array of {hostPath, guestPath}");
  for (const f of options.extraFiles ?? []) {
    if (typeof f?.hostPath !== "string" || !f.hostPath) throw invalid("extraFiles hostPath must be a path");
    if (typeof f.guestPath !== "string" || !f.guestPath.startsWith("/"))
      throw invalid(`extraFiles guestPath must be absolute, got ${JSON.stringify(f.guestPath)}`);
  }
  return {
    memoryMib: intOption("memoryMib", options.memoryMib, 256, 64, 65536),
    vcpus: intOption("vcpus", options.vcpus, 1, 1, 8),
    guestPort: intOption("guestPort", options.guestPort, 80, 1, 65535),
    pullPolicy: enumOption("pullPolicy", options.pullPolicy, "missing", [
      "always",
      "missing",
      "never",
    ] as const),
    accel: enumOption("accel", options.accel, "auto", ["auto", "kvm", "hvf", "tcg"] as const),
    arch: enumOption("arch", options.arch, hostGuestArch(), GUEST_ARCHES),
    listenerRequired: options.listenerRequired === true,
    trigger: chooseTrigger(options),
    warmupTag: options.warmup ? (options.warmupTag ?? "default") : undefined,
    listenerTimeoutMs: intOption("listenerTimeoutMs", options.listenerTimeoutMs, 60_000, 1, 2 ** 31 - 1),
  };
}

/** What the fingerprint records of an extra file: guest path, content hash, mode. */
export function fingerprintFile(f: ExtraFile): FingerprintExtraFile {
  return { guestPath: f.guestPath, sha256: createHash("sha256").update(f.bytes).digest("hex"), mode: f.mode };
}

/**
 * The inputs of the bake's cache key: everything that changes what the
 * snapshot holds (image manifest, workload cmd/env, RAM, vCPUs, guest port,
 * listener trigger, extra files' bytes and modes, the warmup tag when there
 * is a warmup, the guest architecture, kernel and agent builds, the engine
 * that runs it: accelerator, CPU model, QEMU version), and nothing that does not
 * (`listenerTimeoutMs`, `pullPolicy`, `name`, progress callbacks).
 */
export function fingerprintInputs(
  resolved: ResolvedBuildOptions,
  options: Pick<BuildOptions, "cmd" | "env">,
  manifestDigest: string,
  extraFiles: readonly ExtraFile[],
  assets: { kernelHash: string; agentHash: string },
  engine: { accel: string; cpuModel: string; qemuVersion: string },
): FingerprintInputs {
  return {
    manifestDigest,
    cmd: options.cmd,
    env: options.env,
    memoryMib: resolved.memoryMib,
    vcpus: resolved.vcpus,
    guestPort: resolved.guestPort,
    listenerRequired: resolved.listenerRequired,
    extraFiles: extraFiles.map(fingerprintFile),
    warmupTag: resolved.warmupTag,
    kernelHash: assets.kernelHash,
    agentHash: assets.agentHash,
    accel: engine.accel,
    cpuModel: engine.cpuModel,
    qemuVersion: engine.qemuVersion,
    arch: resolved.arch,
  };
}
