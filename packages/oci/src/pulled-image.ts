import type { ImageConfig } from "./image-config.js";
import type { Platform } from "./platform.js";

/** One layer of a pulled image. */
export interface LayerInfo {
  /** Digest of the blob as stored (compressed or not). */
  digest: string;
  /** Digest of the uncompressed tar (`rootfs.diff_ids[i]`). */
  diffId: string;
  /** Blob size in bytes. */
  size: number;
  /** Media type from the manifest. */
  mediaType: string;
}

/** A pulled image: every blob is in the cache and verified. */
export interface PulledImage {
  /** Normalized reference, e.g. `docker.io/library/alpine:latest` or `oci:/abs/path:tag`. */
  reference: string;
  /** Digest of the platform-specific image manifest. */
  manifestDigest: string;
  /** Digest of the index / manifest list it was selected from, if any. */
  indexDigest?: string;
  /** Digest of the config blob (the image ID). */
  configDigest: string;
  /** Runtime settings from the config blob. */
  config: ImageConfig;
  /** Layers, bottom first. */
  layers: LayerInfo[];
  /** The image's platform. */
  platform: Platform;
  /** Cache directory holding the blobs (used by `buildRootfs`). */
  cacheDir: string;
}

/** Progress of one layer during {@link pullImage}. */
export interface PullProgress {
  /** Layer blob digest. */
  digest: string;
  /** Bytes downloaded (or copied) so far. */
  bytesDone: number;
  /** Blob size. */
  bytesTotal: number;
  /** `cached`: already present; `downloading`: in flight; `done`: verified and stored; `retrying`: restarted after an error. */
  status: "cached" | "downloading" | "done" | "retrying";
}
