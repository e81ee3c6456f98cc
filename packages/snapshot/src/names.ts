import { SnapshotError } from "./errors.js";

/** Longest snapshot name accepted (a directory name, well under NAME_MAX). */
export const MAX_NAME_LENGTH = 160;

const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9._@+=-]*$/;

/**
 * Throws `SNAPSHOT_NAME_INVALID` unless `name` can be a snapshot directory
 * name: 1-160 characters from `A-Z a-z 0-9 . _ - @ + =`, not starting with
 * `.` or `-` (entries starting with `.` are the store's temp and lock files).
 */
export function assertSnapshotName(name: string): void {
  if (typeof name !== "string" || name.length === 0 || name.length > MAX_NAME_LENGTH || !NAME_RE.test(name)) {
    throw new SnapshotError(
      "SNAPSHOT_NAME_INVALID",
      `invalid snapshot name ${JSON.stringify(name)}: use 1-${MAX_NAME_LENGTH} characters from A-Z a-z 0-9 . _ - @ + =, not starting with "." or "-"`,
      { details: { name } },
    );
  }
}

/**
 * The readable part of a local image source: `oci:/a/b/default:latest`
 * becomes `oci-default:latest`, `docker-archive:/x/app.tar` becomes
 * `archive-app`. Host paths say nothing about the image and would leak into
 * names. Registry references are returned as they are.
 */
function readableRef(ref: string): string {
  const local = /^(oci|docker-archive):(.*)$/.exec(ref);
  if (!local) return ref;
  const [, kind, rest = ""] = local;
  // the tag (or digest) follows the last ":" after the last "/"
  const slash = rest.lastIndexOf("/");
  const colon = rest.indexOf(":", slash + 1);
  const path = colon >= 0 ? rest.slice(0, colon) : rest;
  const tag = colon >= 0 ? rest.slice(colon) : "";
  const base = (path.replace(/\/+$/, "").split("/").pop() ?? "").replace(/\.tar$/, "");
  return `${kind === "oci" ? "oci" : "archive"}-${base || "image"}${tag}`;
}

/**
 * Turns an image reference into a directory-name-safe string: local sources
 * (`oci:`, `docker-archive:`) are named by their last path component and tag
 * rather than their host path, every run of characters outside
 * `A-Z a-z 0-9 . _ -` becomes `_`, leading dots and dashes are dropped, and
 * the result is cut to 100 characters.
 */
export function sanitizeRef(ref: string): string {
  const s = readableRef(ref)
    .replace(/[^A-Za-z0-9._-]+/g, "_")
    .replace(/^[.-]+/, "")
    .slice(0, 100);
  return s.length > 0 ? s : "image";
}

/**
 * The default snapshot name of an image: the sanitized reference plus the
 * first 16 hex characters of the fingerprint, e.g.
 * `127.0.0.1_5000_library_busybox_latest-3f2a9c0d1e5b7a64`.
 */
export function defaultSnapshotName(ref: string, fingerprint: string): string {
  return `${sanitizeRef(ref)}-${fingerprint.slice(0, 16)}`;
}
