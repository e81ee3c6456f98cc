export type { Descriptor, SnapshotManifest } from "./artifact/format.js";
export {
  buildManifest,
  FINGERPRINT_ANNOTATION,
  MACHINE_MEDIA_TYPE,
  METADATA_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
  PAGE_MAP_MEDIA_TYPE,
  PAGE_SIZE,
  PAGES_MEDIA_TYPE,
  parseManifest as parseSnapshotManifest,
  SNAPSHOT_ARTIFACT_TYPE,
  STATE_MEDIA_TYPE,
  sha256Digest,
  snapshotTag,
} from "./artifact/format.js";
export type { PackedMemory } from "./artifact/memory-pages.js";
export { countPresentPages, packMemory, unpackMemory } from "./artifact/memory-pages.js";
export type { ArtifactLimits, FindArtifactOptions, SnapshotArtifact } from "./artifact/pull.js";
export {
  DEFAULT_ARTIFACT_LIMITS,
  downloadSnapshotArtifact,
  findSnapshotArtifact,
} from "./artifact/pull.js";
export type { PushSnapshotOptions, PushSnapshotResult, TransferProgress } from "./artifact/push.js";
export { ARTIFACT_FILES, pushSnapshot } from "./artifact/push.js";
export type { SnapshotRegistry } from "./artifact/registry.js";
export type { SnapshotErrorCode } from "./errors.js";
export { SnapshotError } from "./errors.js";
export type { DiskUsage } from "./files.js";
export { diskUsage } from "./files.js";
export type { FingerprintExtraFile, FingerprintInputs } from "./fingerprint.js";
export { computeFingerprint } from "./fingerprint.js";
export type { LoadedSnapshot, LoadOptions } from "./load.js";
export {
  loadSnapshot,
  readSnapshotMetadata,
  resolveRootfs,
  resolveSnapshotDir,
  rootfsFileName,
  rootfsFileNames,
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
