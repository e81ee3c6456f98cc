import { createHash } from "node:crypto";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { SnapshotError } from "../errors.js";
import { MEMORY_FILE, type SnapshotMetadata, STATE_FILE } from "../metadata.js";
import { parseSnapshotMetadata } from "../parse-metadata.js";
import {
  FINGERPRINT_ANNOTATION,
  PAGE_SIZE,
  parseManifest,
  SNAPSHOT_ARTIFACT_TYPE,
  type SnapshotManifest,
  sha256Digest,
  snapshotTag,
} from "./format.js";
import { unpackMemory } from "./memory-pages.js";
import { ARTIFACT_FILES, MACHINE_FILE, type TransferProgress } from "./push.js";
import type { SnapshotRegistry } from "./registry.js";
import { downloadBlob, downloadBytes } from "./transfer.js";

/** Caps on what pulling a snapshot artifact may read or write. */
export interface ArtifactLimits {
  /** Largest `metadata.json` (config blob). Default 1 MiB. */
  maxMetadataBytes: number;
  /** Largest device state. Default 256 MiB. */
  maxStateBytes: number;
  /** Largest engine record. Default 1 MiB. */
  maxMachineBytes: number;
  /** Largest guest memory (`memoryMib` in the metadata). Default 64 GiB. */
  maxMemoryBytes: number;
}

/** The defaults of {@link ArtifactLimits}. */
export const DEFAULT_ARTIFACT_LIMITS: Readonly<ArtifactLimits> = Object.freeze({
  maxMetadataBytes: 1024 * 1024,
  maxStateBytes: 256 * 1024 * 1024,
  maxMachineBytes: 1024 * 1024,
  maxMemoryBytes: 64 * 1024 * 1024 * 1024,
});

/** A snapshot artifact found in a registry: its manifest and verified metadata (no large blob read yet). */
export interface SnapshotArtifact {
  /** The parsed manifest. */
  manifest: SnapshotManifest;
  /** Digest of the manifest's bytes. */
  manifestDigest: string;
  /** The snapshot's metadata (the config blob, digest-verified and strictly parsed). */
  metadata: SnapshotMetadata;
  /** Bytes a download moves: every blob. */
  blobBytes: number;
}

/** Options of {@link findSnapshotArtifact}. */
export interface FindArtifactOptions {
  /** The image manifest digest the snapshot was baked from: asked of the referrers API when the tag is absent. */
  subject?: string;
  limits?: Partial<ArtifactLimits>;
}

function limitsOf(l: Partial<ArtifactLimits> | undefined): ArtifactLimits {
  return { ...DEFAULT_ARTIFACT_LIMITS, ...l };
}

function invalid(problem: string, message: string): SnapshotError {
  return new SnapshotError("SNAPSHOT_ARTIFACT_INVALID", `snapshot artifact: ${message}`, {
    details: { problem },
  });
}

function isNotFound(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return code === "OCI_MANIFEST_UNKNOWN" || code === "OCI_NOT_FOUND";
}

/** The manifest for `fingerprint`: by its tag, else (when the registry has the API) among the subject's referrers. */
async function fetchManifest(
  registry: SnapshotRegistry,
  fingerprint: string,
  subject: string | undefined,
): Promise<{ bytes: Buffer; digest: string } | undefined> {
  try {
    const m = await registry.getManifest(snapshotTag(fingerprint));
    const digest = sha256Digest(m.bytes);
    // a registry naming another digest for the bytes it sent is not believed
    if (m.headerDigest?.startsWith("sha256:") && m.headerDigest !== digest) {
      throw new SnapshotError(
        "SNAPSHOT_DIGEST_MISMATCH",
        `snapshot artifact: the registry names manifest digest ${m.headerDigest} for bytes of digest ${digest}`,
        { details: { what: "manifest", digest: m.headerDigest, actual: digest } },
      );
    }
    return { bytes: m.bytes, digest };
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  if (!subject || !registry.getReferrers) return undefined;
  const index = await registry.getReferrers(subject, SNAPSHOT_ARTIFACT_TYPE);
  if (!index) return undefined;
  let manifests: unknown;
  try {
    manifests = (JSON.parse(index.toString("utf8")) as { manifests?: unknown }).manifests;
  } catch {
    throw invalid("referrers", "the referrers index is not JSON");
  }
  if (!Array.isArray(manifests)) return undefined;
  const hit = manifests.find(
    (d) =>
      typeof d === "object" &&
      d !== null &&
      (d as { annotations?: Record<string, unknown> }).annotations?.[FINGERPRINT_ANNOTATION] ===
        fingerprint &&
      /^sha256:[0-9a-f]{64}$/.test(String((d as { digest?: unknown }).digest)),
  ) as { digest: string } | undefined;
  if (!hit) return undefined;
  const m = await registry.getManifest(hit.digest);
  const digest = sha256Digest(m.bytes);
  if (digest !== hit.digest) {
    throw new SnapshotError(
      "SNAPSHOT_DIGEST_MISMATCH",
      `snapshot artifact: manifest ${hit.digest} has digest ${digest}`,
      { details: { what: "manifest", digest: hit.digest, actual: digest } },
    );
  }
  return { bytes: m.bytes, digest };
}

/**
 * Looks for the snapshot artifact of `fingerprint` in `registry` (by the
 * tag derived from it; else, given `subject` and a registry with the OCI
 * referrers API, among the image manifest's referrers) and reads its
 * manifest and metadata: the metadata blob is digest-verified, strictly
 * parsed and must carry `fingerprint`; its memory size must be within the
 * caps. Returns undefined when there is none. Nothing is written.
 */
export async function findSnapshotArtifact(
  registry: SnapshotRegistry,
  fingerprint: string,
  options: FindArtifactOptions = {},
): Promise<SnapshotArtifact | undefined> {
  const limits = limitsOf(options.limits);
  const found = await fetchManifest(registry, fingerprint, options.subject);
  if (!found) return undefined;
  const manifest = parseManifest(found.bytes);
  if (manifest.fingerprint !== fingerprint) {
    throw invalid(
      "fingerprint",
      `the manifest is annotated with fingerprint ${manifest.fingerprint}, not ${fingerprint}`,
    );
  }
  const bytes = await downloadBytes(registry, manifest.config, limits.maxMetadataBytes, "metadata");
  let metadata: SnapshotMetadata;
  try {
    metadata = parseSnapshotMetadata(JSON.parse(bytes.toString("utf8")));
  } catch (err) {
    if (err instanceof SnapshotError && err.code === "SNAPSHOT_VERSION") throw err;
    throw new SnapshotError(
      "SNAPSHOT_ARTIFACT_INVALID",
      `snapshot artifact: metadata: ${(err as Error).message}`,
      {
        cause: err,
        details: { problem: "metadata", field: (err as SnapshotError).details?.field },
      },
    );
  }
  if (metadata.fingerprint !== fingerprint) {
    throw invalid(
      "fingerprint",
      `the metadata carries fingerprint ${metadata.fingerprint}, not ${fingerprint}`,
    );
  }
  for (const name of Object.keys(metadata.files)) {
    if (!ARTIFACT_FILES.includes(name))
      throw invalid("metadata", `the metadata records a file ${JSON.stringify(name)}`);
  }
  const memoryBytes = metadata.memoryMib * 1024 * 1024;
  if (memoryBytes > limits.maxMemoryBytes) {
    throw new SnapshotError(
      "SNAPSHOT_LIMIT_EXCEEDED",
      `snapshot artifact: ${metadata.memoryMib} MiB of guest memory is more than the ${limits.maxMemoryBytes} bytes allowed`,
      { details: { limit: "maxMemoryBytes", size: memoryBytes, max: limits.maxMemoryBytes } },
    );
  }
  for (const [d, name] of [
    [manifest.state, STATE_FILE],
    [manifest.machine, MACHINE_FILE],
  ] as const) {
    const rec = metadata.files[name];
    if (!rec || rec.size !== d.size || (rec.sha256 && `sha256:${rec.sha256}` !== d.digest)) {
      throw invalid("metadata", `the ${name} layer does not match the metadata's record of it`);
    }
  }
  const { config, state, machine, pageMap, pages } = manifest;
  return {
    manifest,
    manifestDigest: found.digest,
    metadata,
    blobBytes: config.size + state.size + machine.size + pageMap.size + pages.size,
  };
}

/**
 * Downloads an artifact's files into `destDir` (an empty build directory:
 * the store's publish removes it when this throws): `restore.snap` and
 * `machine.json` (digest-verified, and matching the metadata's records),
 * the page map (exactly one bit per page of `memoryMib`), and the pages
 * (digest-verified before they are decompressed), written into a sparse
 * `memory.bin`. File names are this format's own: nothing named by the
 * artifact reaches the file system.
 */
export async function downloadSnapshotArtifact(
  registry: SnapshotRegistry,
  artifact: SnapshotArtifact,
  destDir: string,
  options: { limits?: Partial<ArtifactLimits>; onProgress?: (p: TransferProgress) => void } = {},
): Promise<void> {
  const limits = limitsOf(options.limits);
  const { manifest, metadata } = artifact;
  const total = artifact.blobBytes;
  let done = manifest.config.size;
  const progress = (n: number) => {
    done += n;
    options.onProgress?.({ phase: "download", bytesDone: done, bytesTotal: total });
  };
  const totalPages = (metadata.memoryMib * 1024 * 1024) / PAGE_SIZE;
  await downloadBlob(
    registry,
    manifest.state,
    join(destDir, STATE_FILE),
    limits.maxStateBytes,
    "device state",
    progress,
  );
  await downloadBlob(
    registry,
    manifest.machine,
    join(destDir, MACHINE_FILE),
    limits.maxMachineBytes,
    "engine record",
    progress,
  );
  const mapBytes = Math.ceil(totalPages / 8);
  if (manifest.pageMap.size !== mapBytes) {
    throw invalid(
      "pagemap",
      `the page map is ${manifest.pageMap.size} bytes, ${mapBytes} expected for ${metadata.memoryMib} MiB`,
    );
  }
  const map = await downloadBytes(registry, manifest.pageMap, mapBytes, "page map");
  progress(map.length);
  // compressed pages can be a little larger than the memory they hold, never much
  const pagesCap = metadata.memoryMib * 1024 * 1024 + 64 * 1024 * 1024;
  const pagesFile = join(destDir, ".pages.gz");
  await downloadBlob(registry, manifest.pages, pagesFile, pagesCap, "memory pages", progress);
  try {
    await unpackMemory(pagesFile, map, totalPages, join(destDir, MEMORY_FILE));
  } finally {
    await rm(pagesFile, { force: true });
  }
  for (const name of [STATE_FILE, MACHINE_FILE]) {
    const rec = metadata.files[name];
    const got = createHash("sha256")
      .update(await readFile(join(destDir, name)))
      .digest("hex");
    if (rec?.sha256 && rec.sha256 !== got)
      throw invalid("metadata", `${name} does not match the metadata's checksum`);
  }
}
