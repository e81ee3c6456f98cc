import { SupermachineError, type SupermachineErrorOptions } from "@supermachine/errors";

/**
 * Error codes raised by `@supermachine/snapshot`.
 *
 * - `SNAPSHOT_NOT_FOUND`: no snapshot at that path or under that name.
 * - `SNAPSHOT_CORRUPT`: a snapshot file is missing, truncated, of the wrong
 *   size or checksum, or `metadata.json` is unreadable or malformed
 *   (`details.field` names the bad field, `details.file` the bad file).
 * - `SNAPSHOT_VERSION`: `metadata.json` has a `formatVersion` this code does not read.
 * - `SNAPSHOT_ASSET_MISMATCH`: the snapshot was baked with another guest kernel or agent build.
 * - `SNAPSHOT_ROOTFS_MISSING`: the root fs image the snapshot references is gone.
 * - `SNAPSHOT_ROOTFS_CHANGED`: the referenced root fs image exists but is not the size it was at bake time.
 * - `SNAPSHOT_METADATA_INVALID`: metadata handed to the store (by a build callback) is malformed.
 * - `SNAPSHOT_FINGERPRINT_INPUT_INVALID`: {@link computeFingerprint} got an input of the wrong type.
 * - `SNAPSHOT_NAME_INVALID`: a snapshot name is empty, too long, or not a plain directory name.
 * - `SNAPSHOT_LOCK_TIMEOUT`: the lock for a name was held by a live process for longer than allowed.
 * - `SNAPSHOT_ABORTED`: an operation was aborted through its `AbortSignal`.
 * - `SNAPSHOT_DEST_NOT_EMPTY`: a derived snapshot's destination exists and is not a snapshot.
 * - `SNAPSHOT_UNSAFE_PATH`: a path in `metadata.json` (or the snapshot directory's own path) is
 *   not absolute and normalized, holds NUL/control characters or (where it reaches QEMU) a
 *   comma, or the root fs image lies outside the root fs stores (`details.field`,
 *   `details.problem`).
 * - `SNAPSHOT_ARTIFACT_NOT_FOUND`: no snapshot artifact for that fingerprint in the registry.
 * - `SNAPSHOT_ARTIFACT_INVALID`: a snapshot artifact (manifest, metadata, page map) is
 *   malformed, names another fingerprint, or does not fit what the caller expects
 *   (`details.problem`).
 * - `SNAPSHOT_DIGEST_MISMATCH`: a pulled blob's bytes do not have the digest (or size) its
 *   descriptor names; nothing of the pull is kept.
 * - `SNAPSHOT_LIMIT_EXCEEDED`: an artifact asks for more than the pull's caps allow
 *   (`details.limit`).
 */
export type SnapshotErrorCode =
  | "SNAPSHOT_NOT_FOUND"
  | "SNAPSHOT_CORRUPT"
  | "SNAPSHOT_VERSION"
  | "SNAPSHOT_ASSET_MISMATCH"
  | "SNAPSHOT_ROOTFS_MISSING"
  | "SNAPSHOT_ROOTFS_CHANGED"
  | "SNAPSHOT_METADATA_INVALID"
  | "SNAPSHOT_FINGERPRINT_INPUT_INVALID"
  | "SNAPSHOT_NAME_INVALID"
  | "SNAPSHOT_LOCK_TIMEOUT"
  | "SNAPSHOT_ABORTED"
  | "SNAPSHOT_DEST_NOT_EMPTY"
  | "SNAPSHOT_UNSAFE_PATH"
  | "SNAPSHOT_ARTIFACT_NOT_FOUND"
  | "SNAPSHOT_ARTIFACT_INVALID"
  | "SNAPSHOT_DIGEST_MISMATCH"
  | "SNAPSHOT_LIMIT_EXCEEDED";

/** Every error thrown by `@supermachine/snapshot`; switch on {@link SnapshotError.code}. */
export class SnapshotError extends SupermachineError {
  declare readonly code: SnapshotErrorCode;
  constructor(code: SnapshotErrorCode, message: string, options: SupermachineErrorOptions = {}) {
    super(code, message, options);
  }
}
