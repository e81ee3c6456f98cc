import { createHash } from "node:crypto";
import { SnapshotError } from "./errors.js";
import { SNAPSHOT_FORMAT_VERSION } from "./metadata.js";

/** A host file baked into the guest, as the fingerprint sees it. */
export interface FingerprintExtraFile {
  /** Absolute path in the guest. */
  guestPath: string;
  /** sha256 (hex) of the file contents. */
  sha256: string;
  /** Permission bits. */
  mode: number;
}

/** Everything that changes the result of a bake. */
export interface FingerprintInputs {
  /** Digest of the pulled manifest. */
  manifestDigest: string;
  /** Workload command override; `undefined` (use the image's) differs from `[]`. */
  cmd?: readonly string[];
  /** Environment overrides; order does not matter, `undefined` equals `{}`. */
  env?: Readonly<Record<string, string>>;
  /** Guest RAM in MiB. */
  memoryMib: number;
  /** vCPU count. */
  vcpus: number;
  /** Guest port of the workload. */
  guestPort: number;
  /** Whether the bake waits for a listener on `guestPort`. */
  listenerRequired: boolean;
  /** Host files baked in; order of distinct guest paths does not matter. */
  extraFiles?: readonly FingerprintExtraFile[];
  /** Warmup tag; pass it only when a warmup callback is used. */
  warmupTag?: string;
  /** Guest kernel build hash. */
  kernelHash: string;
  /** Guest init/agent build hash. */
  agentHash: string;
  /** Accelerator the bake runs under (`tcg`, `kvm`, `hvf`): device state does not move between them. */
  accel: string;
  /** QEMU `-cpu` model of the bake. */
  cpuModel: string;
  /** QEMU version of the bake (device-state streams are only promised to load in the same version). */
  qemuVersion: string;
  /** Whether the VMs have a network card (part of the device model). Default true. */
  networkCard?: boolean;
  /** Guest architecture (`x86_64`, `aarch64`). Default `x86_64`. */
  arch?: string;
}

function invalid(field: string, expected: string): SnapshotError {
  return new SnapshotError(
    "SNAPSHOT_FINGERPRINT_INPUT_INVALID",
    `fingerprint input \`${field}\` must be ${expected}`,
    {
      details: { field },
    },
  );
}

function needString(v: unknown, field: string): string {
  if (typeof v !== "string") throw invalid(field, "a string");
  return v;
}

function needInt(v: unknown, field: string): number {
  if (typeof v !== "number" || !Number.isInteger(v)) throw invalid(field, "an integer");
  return v;
}

/**
 * The input fingerprint of a bake: sha256 (hex) over a canonical JSON
 * encoding of the {@link FingerprintInputs} and the snapshot format
 * version. Environment keys are sorted and extra files are sorted by guest
 * path (stably, so duplicates keep their order), so the same inputs always
 * give the same fingerprint and any change gives another.
 */
export function computeFingerprint(inputs: FingerprintInputs): string {
  if (typeof inputs !== "object" || inputs === null) throw invalid("(inputs)", "an object");
  const cmd = inputs.cmd === undefined ? null : inputs.cmd;
  if (cmd !== null && (!Array.isArray(cmd) || cmd.some((a) => typeof a !== "string"))) {
    throw invalid("cmd", "an array of strings");
  }
  const envObj = inputs.env ?? {};
  if (typeof envObj !== "object" || envObj === null || Array.isArray(envObj)) {
    throw invalid("env", "a record of strings");
  }
  const env = Object.keys(envObj)
    .sort()
    .map((k) => [k, needString(envObj[k], `env.${k}`)]);
  const extra = inputs.extraFiles ?? [];
  if (!Array.isArray(extra)) throw invalid("extraFiles", "an array");
  const extraFiles = extra
    .map((f, i) => [
      needString(f?.guestPath, `extraFiles[${i}].guestPath`),
      needString(f?.sha256, `extraFiles[${i}].sha256`),
      needInt(f?.mode, `extraFiles[${i}].mode`),
    ])
    .sort((a, b) => (a[0]! < b[0]! ? -1 : a[0]! > b[0]! ? 1 : 0));
  if (typeof inputs.listenerRequired !== "boolean") throw invalid("listenerRequired", "a boolean");
  if (inputs.networkCard !== undefined && typeof inputs.networkCard !== "boolean") {
    throw invalid("networkCard", "a boolean");
  }
  const arch = inputs.arch === undefined ? "x86_64" : needString(inputs.arch, "arch");
  const canonical = [
    "supermachine-snapshot-fingerprint",
    SNAPSHOT_FORMAT_VERSION,
    needString(inputs.manifestDigest, "manifestDigest"),
    cmd,
    env,
    needInt(inputs.memoryMib, "memoryMib"),
    needInt(inputs.vcpus, "vcpus"),
    needInt(inputs.guestPort, "guestPort"),
    inputs.listenerRequired,
    extraFiles,
    inputs.warmupTag === undefined ? null : needString(inputs.warmupTag, "warmupTag"),
    needString(inputs.kernelHash, "kernelHash"),
    needString(inputs.agentHash, "agentHash"),
    needString(inputs.accel, "accel"),
    needString(inputs.cpuModel, "cpuModel"),
    needString(inputs.qemuVersion, "qemuVersion"),
    // only a VM without a network card adds this (fingerprints of existing bakes stay the same)
    ...(inputs.networkCard === false ? ["network:none"] : []),
    // likewise only a guest of another architecture than x86_64 adds its name
    ...(arch !== "x86_64" ? [`arch:${arch}`] : []),
  ];
  return createHash("sha256").update(JSON.stringify(canonical)).digest("hex");
}
