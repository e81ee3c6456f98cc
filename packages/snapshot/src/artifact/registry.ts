import type { Readable } from "node:stream";

/**
 * What pushing and pulling a snapshot artifact needs from a registry
 * client for one repository. `@supermachine/oci`'s `RegistryClient`
 * (created with `push: true` to publish) has exactly these methods, with the
 * same credentials, TLS and redirect rules as image pulls; this package does
 * not import it.
 */
export interface SnapshotRegistry {
  /** Fetches a manifest by tag or digest (the client caps its size). */
  getManifest(reference: string): Promise<{ bytes: Buffer; contentType: string; headerDigest?: string }>;
  /** Opens a blob download. */
  openBlob(digest: string): Promise<{ body: Readable; size?: number }>;
  /** Uploads a blob (skipped when present). */
  pushBlob(digest: string, size: number, body: Buffer | (() => Readable)): Promise<void>;
  /** Stores a manifest under a tag; returns the registry's digest for it, when reported. */
  putManifest(reference: string, bytes: Buffer, mediaType: string): Promise<string | undefined>;
  /** The referrers index of a manifest, or undefined when the registry has no referrers API. */
  getReferrers?(digest: string, artifactType?: string): Promise<Buffer | undefined>;
}
