export type { SnapshotErrorCode } from "./errors.js";
export { SnapshotError } from "./errors.js";
export type { DiskUsage } from "./files.js";
export type { FingerprintExtraFile, FingerprintInputs } from "./fingerprint.js";
export { computeFingerprint } from "./fingerprint.js";
export type { LoadedSnapshot, LoadOptions } from "./load.js";
export {
  loadSnapshot,
  readSnapshotMetadata,
  resolveRootfs,
  resolveSnapshotDir,
  rootfsFileName,
  validateSnapshotFiles,
} from "./load.js";
export type { LockOptions, LockOwner } from "./lock.js";
export { acquireLock, SnapshotLock, tryAcquireLock } from "./lock.js";
export type {
  BakeTrigger,
  SnapshotAssets,
  SnapshotEngine,
  SnapshotExtraFile,
  SnapshotFileRecord,
  SnapshotImage,
  SnapshotImageConfig,
  SnapshotMetadata,
  SnapshotMetadataDraft,
  SnapshotNetwork,
  SnapshotRootfs,
  SnapshotWorkload,
} from "./metadata.js";
export {
  BAKE_TRIGGERS,
  MEMORY_FILE,
  METADATA_FILE,
  SNAPSHOT_FORMAT_VERSION,
  STATE_FILE,
} from "./metadata.js";
export { assertSnapshotName, defaultSnapshotName, sanitizeRef } from "./names.js";
export { parseSnapshotMetadata } from "./parse-metadata.js";
export { defaultRootfsDir, unsafePathProblem } from "./paths.js";
export type { PruneOptions, PruneResult } from "./prune.js";
export type { PublishOptions, PublishResult } from "./publish.js";
export type {
  LookupOptions,
  SnapshotKey,
  SnapshotListEntry,
  SnapshotStoreOptions,
} from "./store.js";
export { defaultSnapshotsDir, SnapshotStore } from "./store.js";
