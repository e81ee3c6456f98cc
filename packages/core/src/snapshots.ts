import type { Stats } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { isSupermachineError } from "@supermachine/errors";
import { BlobCache, defaultCacheDir } from "@supermachine/oci";
import {
  defaultRootfsDir,
  defaultSnapshotsDir,
  MEMORY_FILE,
  readSnapshotMetadata,
  resolveSnapshotDir,
  rootfsFileNames,
  type SnapshotMetadata,
  SnapshotStore,
  STATE_FILE,
  validateSnapshotFiles,
} from "@supermachine/snapshot";
import { type GuestArch, resolveGuestAssets } from "@supermachine/vmm-native";
import { CoreError } from "./errors.js";

export { defaultSnapshotsDir };

/** Where the snapshot functions look. */
export interface SnapshotsDirOptions {
  /** The snapshots directory. Default: the one `Image.build` uses (`$SUPERMACHINE_SNAPSHOTS_DIR` or `~/.local/supermachine-snapshots`). */
  snapshotsDir?: string;
}

/** Why a snapshot cannot be restored: its error code and message. */
export interface SnapshotProblem {
  /** The typed error code (`SNAPSHOT_CORRUPT`, `SNAPSHOT_ROOTFS_MISSING`, `SNAPSHOT_VERSION`, ...). */
  code: string;
  message: string;
}

/** One snapshot of a snapshots directory, as {@link listSnapshots} reports it. */
export interface SnapshotSummary {
  /** Directory name (what `inspectSnapshot` and `Image.build({name})` take). */
  name: string;
  /** Absolute path of the snapshot directory (what `Image.fromSnapshot` takes). */
  path: string;
  /** Whether its files are complete and its root fs is present (checked with `stat` only). */
  valid: boolean;
  /** Why it is not valid. */
  problem?: SnapshotProblem;
  /** Its metadata, when `metadata.json` parsed (also for some invalid snapshots). */
  metadata?: SnapshotMetadata;
  /** Bytes allocated on disk by the snapshot directory (the memory file is sparse; the shared root fs is not counted). */
  diskBytes: number;
}

/** The inputs a snapshot's fingerprint was computed from, as recorded in its metadata. */
export interface SnapshotFingerprintInputs {
  manifestDigest: string;
  memoryMib: number;
  vcpus: number;
  guestPort: number;
  listenerRequired: boolean;
  /** Host files baked in (guest path, sha256, mode). */
  extraFiles: SnapshotMetadata["extraFiles"];
  warmupTag?: string;
  kernelHash: string;
  agentHash: string;
  accel: string;
  cpuModel?: string;
  qemuVersion: string;
  /** Guest architecture (`x86_64`, `aarch64`). */
  arch: string;
  /** The workload the `cmd`/`env` overrides resolved to. */
  workload: SnapshotMetadata["workload"];
}

/** Sizes of a snapshot's parts, in bytes. */
export interface SnapshotSizes {
  /** Guest memory file, apparent size (`memoryMib` MiB). */
  memoryBytes: number;
  /** Blocks the memory file actually takes (it is sparse: only pages the guest touched). */
  memoryAllocatedBytes: number;
  /** Device state (`restore.snap`). */
  stateBytes: number;
  /** Everything in the snapshot directory, allocated blocks. */
  diskBytes: number;
  /** The root fs image it uses (shared by every snapshot of the same layers), when present. */
  rootfsBytes?: number;
}

/** Everything {@link inspectSnapshot} knows about one snapshot. */
export interface SnapshotInspection extends SnapshotSummary {
  /** The parsed metadata (inspection fails when `metadata.json` does not parse). */
  metadata: SnapshotMetadata;
  /** Fingerprint (64 hex) and what it was computed from. */
  fingerprint: string;
  fingerprintInputs: SnapshotFingerprintInputs;
  /** Accelerator it was baked under and every restore needs (`tcg`, `kvm`, `hvf`). */
  accel: string;
  /** CPU architecture of the guest (`x86_64` under QEMU `microvm`, `aarch64` under `virt`). */
  arch: string;
  /** The image's platform (`linux/amd64`), read from the image config in the blob cache; absent when its blobs were pruned. */
  platform?: string;
  sizes: SnapshotSizes;
  /** Whether it was baked with the guest kernel and agent installed now (false: `Image.build` bakes it again). Absent when no guest is installed. */
  guestCurrent?: boolean;
}

/** What {@link pruneSnapshots} removes. */
export interface PruneSnapshotsOptions extends SnapshotsDirOptions {
  /** Keep this many newest valid snapshots; older ones go. */
  keep?: number;
  /** Remove valid snapshots created before this date, or more than this many milliseconds ago. */
  olderThan?: Date | number;
  /** Remove snapshots that fail validation. Default true. */
  removeInvalid?: boolean;
  /**
   * Also remove root fs images (in the blob cache) that no snapshot left in
   * THIS snapshots directory uses. They are shared by every snapshots
   * directory on the host, so only ask for it when this is the only one.
   * Default false.
   */
  rootfs?: boolean;
}

/** What {@link pruneSnapshots} removed. */
export interface PruneSnapshotsResult {
  /** Names of removed snapshots. */
  removedSnapshots: string[];
  /** Paths of removed root fs images. */
  removedRootfs: string[];
  /** Snapshots that qualified but were in use by a running bake. */
  skippedBusy: string[];
  /** Bytes of disk freed (allocated blocks). */
  freedBytes: number;
}

function problemOf(err: unknown): SnapshotProblem {
  return isSupermachineError(err)
    ? { code: err.code, message: err.message }
    : { code: "UNKNOWN", message: String((err as Error)?.message ?? err) };
}

function storeOf(options: SnapshotsDirOptions): SnapshotStore {
  return new SnapshotStore({ dir: options.snapshotsDir ?? defaultSnapshotsDir() });
}

/**
 * Lists the snapshots of a snapshots directory (valid or not), sorted by
 * name, with their metadata and disk use. Reads metadata and `stat`s files;
 * never reads guest memory. A missing directory lists as empty.
 */
export async function listSnapshots(options: SnapshotsDirOptions = {}): Promise<SnapshotSummary[]> {
  const entries = await storeOf(options).list();
  return entries.map((e) => ({
    name: e.name,
    path: e.dir,
    valid: e.valid,
    ...(e.error ? { problem: problemOf(e.error) } : {}),
    ...(e.metadata ? { metadata: e.metadata } : {}),
    diskBytes: e.diskUsage.allocatedBytes,
  }));
}

async function imagePlatform(manifestDigest: string): Promise<string | undefined> {
  try {
    const cache = new BlobCache(defaultCacheDir());
    const manifest = await cache.readVerified(manifestDigest);
    if (!manifest) return undefined;
    const configDigest = (JSON.parse(manifest.toString("utf8")) as { config?: { digest?: string } }).config
      ?.digest;
    if (!configDigest) return undefined;
    const config = await cache.readVerified(configDigest);
    if (!config) return undefined;
    const c = JSON.parse(config.toString("utf8")) as { os?: string; architecture?: string; variant?: string };
    if (!c.os || !c.architecture) return undefined;
    return [c.os, c.architecture, c.variant].filter(Boolean).join("/");
  } catch {
    return undefined;
  }
}

async function dirSizes(dir: string, metadata: SnapshotMetadata): Promise<SnapshotSizes> {
  let diskBytes = 0;
  let memoryAllocatedBytes = 0;
  for (const name of await readdir(dir)) {
    const st = await stat(join(dir, name)).catch(() => undefined);
    if (!st) continue;
    diskBytes += st.blocks * 512;
    if (name === MEMORY_FILE) memoryAllocatedBytes = st.blocks * 512;
  }
  let rootfs: Stats | undefined;
  for (const name of rootfsFileNames(metadata.rootfs.digest)) {
    rootfs ??= await stat(join(defaultRootfsDir(), name)).catch(() => undefined);
  }
  return {
    memoryBytes: metadata.memoryMib * 1024 * 1024,
    memoryAllocatedBytes,
    stateBytes: metadata.files[STATE_FILE]?.size ?? 0,
    diskBytes,
    ...(rootfs ? { rootfsBytes: rootfs.size } : {}),
  };
}

function currentGuest(metadata: SnapshotMetadata): boolean | undefined {
  try {
    const a = resolveGuestAssets((metadata.engine.arch ?? "x86_64") as GuestArch);
    return a.kernelHash === metadata.assets.kernelHash && a.agentHash === metadata.assets.agentHash;
  } catch {
    return undefined;
  }
}

/**
 * Describes one snapshot: its metadata, the fingerprint and the inputs it
 * was computed from, the accelerator, the image platform, sizes, whether it
 * validates and whether the installed guest matches it. `nameOrPath` is a
 * snapshot name in the snapshots directory, or a path (anything with a `/`)
 * to a snapshot directory or its `restore.snap`. Throws `SNAPSHOT_NOT_FOUND`
 * when there is none, `SNAPSHOT_CORRUPT` when its metadata does not parse.
 */
export async function inspectSnapshot(
  nameOrPath: string,
  options: SnapshotsDirOptions = {},
): Promise<SnapshotInspection> {
  if (typeof nameOrPath !== "string" || !nameOrPath) {
    throw new CoreError("INVALID_OPTIONS", "inspectSnapshot needs a snapshot name or path");
  }
  const isName = !nameOrPath.includes("/") && nameOrPath !== "." && nameOrPath !== "..";
  const dir = await resolveSnapshotDir(isName ? join(storeOf(options).dir, nameOrPath) : nameOrPath);
  const metadata = await readSnapshotMetadata(dir);
  let problem: SnapshotProblem | undefined;
  try {
    await validateSnapshotFiles(dir, metadata, { verifyChecksums: true });
  } catch (err) {
    problem = problemOf(err);
  }
  const sizes = await dirSizes(dir, metadata);
  const platform = await imagePlatform(metadata.image.manifestDigest);
  const guestCurrent = currentGuest(metadata);
  return {
    name: dir.split("/").at(-1) as string,
    path: dir,
    valid: !problem,
    ...(problem ? { problem } : {}),
    metadata,
    diskBytes: sizes.diskBytes,
    fingerprint: metadata.fingerprint,
    fingerprintInputs: {
      manifestDigest: metadata.image.manifestDigest,
      memoryMib: metadata.memoryMib,
      vcpus: metadata.vcpus,
      guestPort: metadata.guestPort,
      listenerRequired: metadata.listenerRequired,
      extraFiles: metadata.extraFiles,
      ...(metadata.warmupTag !== undefined ? { warmupTag: metadata.warmupTag } : {}),
      kernelHash: metadata.assets.kernelHash,
      agentHash: metadata.assets.agentHash,
      accel: metadata.engine.accel,
      ...(metadata.engine.cpuModel ? { cpuModel: metadata.engine.cpuModel } : {}),
      qemuVersion: metadata.engine.qemuVersion,
      arch: metadata.engine.arch ?? "x86_64",
      workload: metadata.workload,
    },
    accel: metadata.engine.accel,
    arch: metadata.engine.arch ?? "x86_64",
    ...(platform ? { platform } : {}),
    sizes,
    ...(guestCurrent !== undefined ? { guestCurrent } : {}),
  };
}

/**
 * Removes snapshots from a snapshots directory: invalid ones (unless
 * `removeInvalid: false`), those beyond the `keep` newest and/or older than
 * `olderThan`, leftovers of crashed bakes, and with `rootfs: true` the root
 * fs images no remaining snapshot uses. A snapshot a running bake holds is
 * skipped. VMs already restored from a removed snapshot keep running.
 */
export async function pruneSnapshots(options: PruneSnapshotsOptions = {}): Promise<PruneSnapshotsResult> {
  if (options.keep !== undefined && (!Number.isInteger(options.keep) || options.keep < 0)) {
    throw new CoreError("INVALID_OPTIONS", `keep must be a non-negative integer, got ${options.keep}`);
  }
  const r = await storeOf(options).prune({
    keep: options.keep,
    olderThan: options.olderThan,
    removeInvalid: options.removeInvalid,
    rootfsDir: options.rootfs ? join(defaultCacheDir(), "rootfs") : undefined,
  });
  return {
    removedSnapshots: r.removedSnapshots,
    removedRootfs: r.removedRootfs,
    skippedBusy: r.skippedBusy,
    freedBytes: r.freedBytes,
  };
}
