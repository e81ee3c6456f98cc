import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SnapshotError } from "../errors.js";
import type { LoadedSnapshot } from "../load.js";
import { MEMORY_FILE, METADATA_FILE, STATE_FILE } from "../metadata.js";
import {
  buildManifest,
  type Descriptor,
  MACHINE_MEDIA_TYPE,
  METADATA_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
  PAGE_MAP_MEDIA_TYPE,
  PAGES_MEDIA_TYPE,
  STATE_MEDIA_TYPE,
  sha256Digest,
  snapshotTag,
} from "./format.js";
import { packMemory } from "./memory-pages.js";
import type { SnapshotRegistry } from "./registry.js";
import { fileBody } from "./transfer.js";

/** The engine record's file name, the one other file an artifact carries. */
export const MACHINE_FILE = "machine.json";
/** The files of a snapshot directory an artifact carries (besides `metadata.json`). */
export const ARTIFACT_FILES: readonly string[] = [STATE_FILE, MEMORY_FILE, MACHINE_FILE];

/** Progress of a push or pull. */
export interface TransferProgress {
  /** `pack`: compressing guest memory; `upload`/`download`: blob bytes. */
  phase: "pack" | "upload" | "download";
  bytesDone: number;
  bytesTotal: number;
}

/** Options of {@link pushSnapshot}. */
export interface PushSnapshotOptions {
  /** The image manifest the snapshot was baked from (the artifact's `subject`). */
  subject?: Descriptor;
  /** gzip level of the memory pages (1-9). Default 3. */
  compressionLevel?: number;
  /** Where the packed memory is written meanwhile (removed after). Default the OS temp dir. */
  workDir?: string;
  onProgress?: (p: TransferProgress) => void;
}

/** What {@link pushSnapshot} published. */
export interface PushSnapshotResult {
  /** The tag: `supermachine-snapshot-<fingerprint>`. */
  tag: string;
  /** Digest of the artifact's manifest. */
  manifestDigest: string;
  /** Bytes of the artifact: manifest and every blob (what a pull downloads). */
  artifactBytes: number;
  /** Guest pages in the memory file, and how many were non-zero (transferred). */
  totalPages: number;
  presentPages: number;
}

/**
 * Publishes a snapshot as an OCI artifact in `registry`'s repository, tagged
 * `supermachine-snapshot-<fingerprint>`: its `metadata.json` as config, the
 * device state and engine record as they are, the guest memory as a page
 * map and the non-zero pages gzip-compressed (zero pages are not sent), and
 * the image manifest it was baked from as `subject`. Blobs the registry
 * already has are not sent again. Only snapshots holding nothing but
 * `restore.snap`, `memory.bin` and `machine.json` can be pushed.
 */
export async function pushSnapshot(
  snapshot: LoadedSnapshot,
  registry: SnapshotRegistry,
  options: PushSnapshotOptions = {},
): Promise<PushSnapshotResult> {
  const { metadata, dir } = snapshot;
  for (const name of Object.keys(metadata.files)) {
    if (!ARTIFACT_FILES.includes(name)) {
      throw new SnapshotError(
        "SNAPSHOT_ARTIFACT_INVALID",
        `snapshot ${dir} holds ${name}, which a snapshot artifact does not carry`,
        { details: { dir, file: name, problem: "file" } },
      );
    }
  }
  if (!metadata.files[MACHINE_FILE]) {
    throw new SnapshotError("SNAPSHOT_ARTIFACT_INVALID", `snapshot ${dir} has no ${MACHINE_FILE}`, {
      details: { dir, file: MACHINE_FILE, problem: "file" },
    });
  }
  const tag = snapshotTag(metadata.fingerprint);
  const progress = options.onProgress ?? (() => {});
  const work = await mkdtemp(join(options.workDir ?? tmpdir(), "sm-snapshot-push-"));
  try {
    const metadataBytes = await readFile(join(dir, METADATA_FILE));
    const state = await readFile(join(dir, STATE_FILE));
    const machine = await readFile(join(dir, MACHINE_FILE));
    const memBytes = (await stat(snapshot.memoryFile)).size;
    progress({ phase: "pack", bytesDone: 0, bytesTotal: memBytes });
    const packed = await packMemory(
      snapshot.memoryFile,
      join(work, "pages.gz"),
      options.compressionLevel ?? 3,
    );
    progress({ phase: "pack", bytesDone: memBytes, bytesTotal: memBytes });
    const desc = (mediaType: string, bytes: Buffer): Descriptor => ({
      mediaType,
      digest: sha256Digest(bytes),
      size: bytes.length,
    });
    const config = desc(METADATA_MEDIA_TYPE, metadataBytes);
    const stateDesc = desc(STATE_MEDIA_TYPE, state);
    const machineDesc = desc(MACHINE_MEDIA_TYPE, machine);
    const mapDesc = desc(PAGE_MAP_MEDIA_TYPE, packed.pageMap);
    const pagesDesc: Descriptor = {
      mediaType: PAGES_MEDIA_TYPE,
      digest: packed.pagesDigest,
      size: packed.pagesSize,
    };
    const total = config.size + stateDesc.size + machineDesc.size + mapDesc.size + pagesDesc.size;
    let done = 0;
    const sent = (n: number) => {
      done += n;
      progress({ phase: "upload", bytesDone: done, bytesTotal: total });
    };
    for (const [d, bytes] of [
      [config, metadataBytes],
      [stateDesc, state],
      [machineDesc, machine],
      [mapDesc, packed.pageMap],
    ] as const) {
      await registry.pushBlob(d.digest, d.size, bytes);
      sent(d.size);
    }
    await registry.pushBlob(pagesDesc.digest, pagesDesc.size, fileBody(packed.pagesFile));
    sent(pagesDesc.size);
    const manifest = buildManifest(
      {
        config,
        state: stateDesc,
        machine: machineDesc,
        pageMap: mapDesc,
        pages: pagesDesc,
        ...(options.subject ? { subject: options.subject } : {}),
      },
      metadata.fingerprint,
    );
    await registry.putManifest(tag, manifest, OCI_MANIFEST_MEDIA_TYPE);
    return {
      tag,
      manifestDigest: sha256Digest(manifest),
      artifactBytes: total + manifest.length,
      totalPages: packed.totalPages,
      presentPages: packed.presentPages,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
