import type { Descriptor } from "./manifest.js";

/** The top-level manifest (or index) of a source. */
export interface ResolvedManifest {
  bytes: Buffer;
  contentType: string;
  /** Digest of `bytes` (already verified against the reference's digest, if it had one). */
  digest: string;
}

/** Where an image's manifests and blobs come from: a registry, an OCI layout or a `docker save` archive. */
export interface ImageSource {
  /** Fetches the manifest or index the reference names. */
  resolve(): Promise<ResolvedManifest>;
  /** Fetches a manifest by descriptor (the caller verifies the digest). */
  manifest(desc: Descriptor): Promise<Buffer>;
  /** Opens a blob stream (the caller verifies the digest). */
  blob(desc: Descriptor): Promise<AsyncIterable<Uint8Array>>;
  /** Releases connections / files. Idempotent. */
  close(): Promise<void>;
}
