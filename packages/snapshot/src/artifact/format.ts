import { createHash } from "node:crypto";
import { SnapshotError } from "../errors.js";

/** `artifactType` of a snapshot artifact's manifest. */
export const SNAPSHOT_ARTIFACT_TYPE = "application/vnd.supermachine.snapshot.v1";
/** Media type of the config blob: the snapshot's `metadata.json`. */
export const METADATA_MEDIA_TYPE = "application/vnd.supermachine.snapshot.metadata.v2+json";
/** Media type of the device-state blob (`restore.snap`, as is). */
export const STATE_MEDIA_TYPE = "application/vnd.supermachine.snapshot.state.v1";
/** Media type of the engine record blob (`machine.json`, as is). */
export const MACHINE_MEDIA_TYPE = "application/vnd.supermachine.snapshot.machine.v2+json";
/** Media type of the page map: one bit per 4 KiB guest page, LSB first, 1 = the page is in the pages blob. */
export const PAGE_MAP_MEDIA_TYPE = "application/vnd.supermachine.snapshot.memory.pagemap.v1";
/** Media type of the pages blob: the non-zero pages, in address order, gzip-compressed as one stream. */
export const PAGES_MEDIA_TYPE = "application/vnd.supermachine.snapshot.memory.pages.v1+gzip";
/** Media type of the artifact's manifest. */
export const OCI_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json";
/** Annotation holding the snapshot's fingerprint (64 hex). */
export const FINGERPRINT_ANNOTATION = "dev.supermachine.snapshot.fingerprint";
/** Guest page size of the page map. */
export const PAGE_SIZE = 4096;

/** The tag a snapshot with `fingerprint` is published under: `supermachine-snapshot-<fingerprint>`. */
export function snapshotTag(fingerprint: string): string {
  if (!/^[0-9a-f]{64}$/.test(fingerprint)) {
    throw new SnapshotError(
      "SNAPSHOT_ARTIFACT_INVALID",
      `fingerprint ${JSON.stringify(fingerprint)} is not 64 hex`,
      {
        details: { problem: "fingerprint" },
      },
    );
  }
  return `supermachine-snapshot-${fingerprint}`;
}

/** An OCI descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** A snapshot artifact's manifest, as parsed (only the fields this format uses). */
export interface SnapshotManifest {
  config: Descriptor;
  state: Descriptor;
  machine: Descriptor;
  pageMap: Descriptor;
  pages: Descriptor;
  subject?: Descriptor;
  fingerprint: string;
}

/** `sha256:` + hex of `bytes`. */
export function sha256Digest(bytes: Buffer): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

function bad(problem: string, message: string): SnapshotError {
  return new SnapshotError("SNAPSHOT_ARTIFACT_INVALID", `snapshot artifact: ${message}`, {
    details: { problem },
  });
}

function descriptor(v: unknown, where: string): Descriptor {
  if (typeof v !== "object" || v === null) throw bad("manifest", `${where} is not a descriptor`);
  const d = v as Record<string, unknown>;
  if (typeof d.mediaType !== "string") throw bad("manifest", `${where}.mediaType is not a string`);
  // only sha256: every digest is recomputed on the way in
  if (typeof d.digest !== "string" || !DIGEST.test(d.digest))
    throw bad("manifest", `${where}.digest is not sha256:<64 hex>`);
  if (typeof d.size !== "number" || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw bad("manifest", `${where}.size is not a non-negative integer`);
  }
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

/**
 * Builds the manifest of a snapshot artifact: an OCI image manifest with
 * `artifactType` {@link SNAPSHOT_ARTIFACT_TYPE}, the metadata as config,
 * four layers (device state, engine record, page map, pages) and, when
 * given, the image manifest it was baked from as `subject`.
 */
export function buildManifest(parts: Omit<SnapshotManifest, "fingerprint">, fingerprint: string): Buffer {
  const title = (d: Descriptor, name: string) => ({
    ...d,
    annotations: { "org.opencontainers.image.title": name },
  });
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    artifactType: SNAPSHOT_ARTIFACT_TYPE,
    config: parts.config,
    layers: [
      title(parts.state, "restore.snap"),
      title(parts.machine, "machine.json"),
      title(parts.pageMap, "memory.pagemap"),
      title(parts.pages, "memory.pages.gz"),
    ],
    ...(parts.subject ? { subject: parts.subject } : {}),
    annotations: { [FINGERPRINT_ANNOTATION]: fingerprint },
  };
  return Buffer.from(JSON.stringify(manifest));
}

/**
 * Parses a snapshot artifact's manifest strictly: an OCI manifest of this
 * artifact type, the metadata config, exactly one layer of each media type
 * (layers are found by media type; their titles are never used as file
 * names) and a fingerprint annotation.
 */
export function parseManifest(bytes: Buffer): SnapshotManifest {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(bytes.toString("utf8")) as Record<string, unknown>;
  } catch {
    throw bad("manifest", "the manifest is not JSON");
  }
  if (typeof json !== "object" || json === null) throw bad("manifest", "the manifest is not an object");
  if (json.schemaVersion !== 2) throw bad("manifest", "schemaVersion is not 2");
  if (json.artifactType !== SNAPSHOT_ARTIFACT_TYPE) {
    throw bad(
      "manifest",
      `artifactType ${JSON.stringify(json.artifactType)} is not ${SNAPSHOT_ARTIFACT_TYPE}`,
    );
  }
  const config = descriptor(json.config, "config");
  if (config.mediaType !== METADATA_MEDIA_TYPE)
    throw bad("manifest", `config.mediaType is not ${METADATA_MEDIA_TYPE}`);
  if (!Array.isArray(json.layers) || json.layers.length !== 4)
    throw bad("manifest", "it does not have exactly 4 layers");
  const layers = json.layers.map((l, i) => descriptor(l, `layers[${i}]`));
  const one = (mediaType: string) => {
    const found = layers.filter((l) => l.mediaType === mediaType);
    if (found.length !== 1) throw bad("manifest", `it does not have exactly one ${mediaType} layer`);
    return found[0]!;
  };
  const ann = json.annotations as Record<string, unknown> | undefined;
  const fingerprint = ann?.[FINGERPRINT_ANNOTATION];
  if (typeof fingerprint !== "string" || !/^[0-9a-f]{64}$/.test(fingerprint)) {
    throw bad("manifest", `annotation ${FINGERPRINT_ANNOTATION} is missing or not 64 hex`);
  }
  return {
    config,
    state: one(STATE_MEDIA_TYPE),
    machine: one(MACHINE_MEDIA_TYPE),
    pageMap: one(PAGE_MAP_MEDIA_TYPE),
    pages: one(PAGES_MEDIA_TYPE),
    ...(json.subject !== undefined ? { subject: descriptor(json.subject, "subject") } : {}),
    fingerprint,
  };
}
