/**
 * The snapshot format version this package writes and reads. Version 2
 * names the root fs by content (digest, size, sha256) instead of by a host
 * path, so a snapshot directory can move; version 1 is refused with
 * `SNAPSHOT_VERSION` (bake it again).
 */
export const SNAPSHOT_FORMAT_VERSION = 2;

/** Name of the metadata file inside a snapshot directory. */
export const METADATA_FILE = "metadata.json";
/** Name of the QEMU device-state file inside a snapshot directory. */
export const STATE_FILE = "restore.snap";
/** Name of the guest memory file inside a snapshot directory. */
export const MEMORY_FILE = "memory.bin";

/**
 * When the bake took the snapshot:
 * - `pre-exec`: just before init execs the workload (every restore starts it fresh);
 * - `listener`: once the workload listened on `guestPort`;
 * - `warmup`: after the user's warmup callback returned;
 * - `vm-snapshot`: captured from a running VM (`Vm.snapshot`), derived from another snapshot.
 */
export type BakeTrigger = "pre-exec" | "listener" | "warmup" | "vm-snapshot";

/** The bake triggers, in documentation order. */
export const BAKE_TRIGGERS: readonly BakeTrigger[] = ["pre-exec", "listener", "warmup", "vm-snapshot"];

/** The parts of the OCI image config a snapshot records. */
export interface SnapshotImageConfig {
  /** ENTRYPOINT, if the image sets one. */
  entrypoint?: string[];
  /** CMD, if the image sets one. */
  cmd?: string[];
  /** Environment as `KEY=value` strings. */
  env: string[];
  /** Working directory ("" when unset). */
  workingDir: string;
  /** User (`name`, `uid`, `uid:gid`; "" when unset). */
  user: string;
  /** Exposed ports as `port/proto`. */
  exposedPorts: string[];
  /** Signal that stops the workload, if the image sets one. */
  stopSignal?: string;
}

/** The image a snapshot was baked from. */
export interface SnapshotImage {
  /** The normalized image reference that was pulled. */
  ref: string;
  /** Digest of the (platform) manifest that was pulled, `algo:hex`. */
  manifestDigest: string;
  /** The image config at bake time. */
  config: SnapshotImageConfig;
}

/** The engine that baked a snapshot. */
export interface SnapshotEngine {
  /** QEMU version string, e.g. `10.0.2`. */
  qemuVersion: string;
  /** QEMU machine type, e.g. `microvm`. */
  machine: string;
  /** Accelerator used at bake time, e.g. `tcg` or `kvm`. */
  accel: string;
  /** QEMU `-cpu` model at bake time (`max` under TCG, `host` under KVM/HVF); absent in older snapshots. */
  cpuModel?: string;
  /** Guest architecture (`x86_64`, `aarch64`); absent in snapshots baked before aarch64 guests (x86_64). */
  arch?: string;
}

/** Build hashes of the guest kernel and init/agent a snapshot was baked with. */
export interface SnapshotAssets {
  /** Content hash of the guest kernel build. */
  kernelHash: string;
  /** Content hash of the guest init/agent build. */
  agentHash: string;
}

/**
 * The content-addressed root fs image a snapshot uses (not copied into the
 * snapshot, and named by content, never by a host path): it is found as
 * `<hex>.img` (or, as older versions named it, `<hex>.ext4`) in one of the
 * root fs stores (`rootfsDirs`).
 */
export interface SnapshotRootfs {
  /** Content address of the root fs image as `@supermachine/oci` names it: `sha256:` + 64 hex. */
  digest: string;
  /** Size in bytes (checked on load). */
  size: number;
  /** sha256 (hex) of the image file's bytes, checked when a missing root fs is rebuilt or pulled. */
  sha256: string;
}

/** What the guest init ran as the workload. */
export interface SnapshotWorkload {
  /** argv of the workload. */
  argv: string[];
  /** Environment as `KEY=value` strings. */
  env: string[];
  /** Working directory. */
  cwd: string;
  /** User it runs as ("" = root). */
  user: string;
}

/** A host file baked into the guest at a path. */
export interface SnapshotExtraFile {
  /** Absolute path in the guest. */
  guestPath: string;
  /** sha256 (hex) of the file contents. */
  sha256: string;
  /** Permission bits (`mode & 0o7777`). */
  mode: number;
}

/** A snapshot's network card and the egress policy it was built with. */
export interface SnapshotNetwork {
  /** Whether the VMs have a network card (part of the device model; false: `network: "none"`). */
  card: boolean;
  /**
   * The egress policy given at build time, as the engine's `NetworkPolicy`
   * (`{allowInternetAccess?, allowOut?, denyOut?, dns?}`), the default of
   * pools made from this snapshot. Absent: the engine's default.
   */
  policy?: Record<string, unknown>;
}

/** Size (and for small files the checksum) of one file in the snapshot directory. */
export interface SnapshotFileRecord {
  /** Size in bytes (apparent size; the memory file is sparse). */
  size: number;
  /** sha256 (hex) of the contents; absent for the memory file, which is never read. */
  sha256?: string;
}

/** The contents of `metadata.json` (format version 2). See the package README. */
export interface SnapshotMetadata {
  /** Always 2 for this format. */
  formatVersion: 2;
  /** {@link computeFingerprint} of the bake inputs (64 hex chars). */
  fingerprint: string;
  /** For `vm-snapshot` snapshots: the fingerprint of the snapshot the VM was restored from. */
  parentFingerprint?: string;
  /** When the snapshot was published (ISO 8601). */
  createdAt: string;
  /** The image it was baked from. */
  image: SnapshotImage;
  /** Guest RAM in MiB; `memory.bin` is exactly this many MiB. */
  memoryMib: number;
  /** vCPU count. */
  vcpus: number;
  /** Guest TCP port the workload serves on. */
  guestPort: number;
  /** Whether the bake waited for a listener on `guestPort`. */
  listenerRequired: boolean;
  /** When the snapshot was taken. */
  trigger: BakeTrigger;
  /** The warmup tag, when a warmup callback ran. */
  warmupTag?: string;
  /** Host files baked into the guest. */
  extraFiles: SnapshotExtraFile[];
  /** The workload the guest was given. */
  workload: SnapshotWorkload;
  /** The engine that baked it. */
  engine: SnapshotEngine;
  /** Guest asset build hashes. */
  assets: SnapshotAssets;
  /** The root fs image it uses. */
  rootfs: SnapshotRootfs;
  /** Every file of the snapshot directory except `metadata.json`, by name. */
  files: Record<string, SnapshotFileRecord>;
  /** Network card and egress policy. Absent (older snapshots): a card, the engine's default policy. */
  network?: SnapshotNetwork;
}

/**
 * What a publish build callback returns: the metadata minus what the store
 * fills in itself (`formatVersion`, `fingerprint` and `createdAt` default to
 * the publish key and now; `files` are measured from disk; `extraFiles`
 * defaults to none). The root fs is given by `digest` and either `path`
 * (where it is now: its size and sha256 are measured from it, and it must
 * be the store's `<hex>.img` or `<hex>.ext4`) or `size` and `sha256` (a derived snapshot
 * reusing its parent's). A full {@link SnapshotMetadata} is accepted.
 */
export type SnapshotMetadataDraft = Omit<
  SnapshotMetadata,
  "formatVersion" | "fingerprint" | "createdAt" | "files" | "rootfs" | "extraFiles"
> & {
  formatVersion?: 2;
  fingerprint?: string;
  createdAt?: string;
  files?: Record<string, SnapshotFileRecord>;
  rootfs: { digest: string; path?: string; size?: number; sha256?: string };
  extraFiles?: SnapshotExtraFile[];
};
