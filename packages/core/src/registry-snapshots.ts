import { isDeepStrictEqual } from "node:util";
import {
  BlobCache,
  buildRootfs,
  defaultCacheDir,
  type PulledImage,
  parseReference,
  RegistryClient,
} from "@supermachine/oci";
import {
  type Descriptor,
  diskUsage,
  findSnapshotArtifact,
  type LoadedSnapshot,
  type PublishResult,
  pushSnapshot,
  type SnapshotKey,
  type SnapshotMetadata,
  type SnapshotStore,
  snapshotTag,
} from "@supermachine/snapshot";
import { openSnapshotFiles } from "@supermachine/vmm-native";
import { CoreError } from "./errors.js";
import type { BuildProgress, PushOptions, PushResult } from "./options.js";

/** A registry repository snapshots are published in. */
export interface SnapshotRepository {
  registry: string;
  repository: string;
}

/** The repository for an image's snapshots: `override` (`HOST[:PORT]/PATH`), else the image's own. */
export function snapshotRepositoryFor(imageRef: string, override?: string): SnapshotRepository {
  if (override !== undefined) {
    const parsed = parseReference(override);
    if (parsed.transport !== "docker" || parsed.digest) {
      throw new CoreError(
        "INVALID_OPTIONS",
        `snapshot repository ${JSON.stringify(override)} is not HOST[:PORT]/PATH`,
      );
    }
    return { registry: parsed.registry, repository: parsed.repository };
  }
  const ref = parseReference(imageRef);
  if (ref.transport !== "docker") {
    throw new CoreError(
      "SNAPSHOT_PUSH_UNSUPPORTED",
      `image ${imageRef} is not in a registry: give a snapshot repository (HOST[:PORT]/PATH) to publish or find its snapshots`,
      { details: { ref: imageRef } },
    );
  }
  return { registry: ref.registry, repository: ref.repository };
}

function client(
  repo: SnapshotRepository,
  insecureRegistries: string[] | undefined,
  push: boolean,
): RegistryClient {
  return new RegistryClient({
    registry: repo.registry,
    repository: repo.repository,
    insecureRegistries,
    push,
  });
}

/** `HOST/REPO:TAG` of a snapshot. */
export function artifactRef(repo: SnapshotRepository, fingerprint: string): string {
  return `${repo.registry}/${repo.repository}:${snapshotTag(fingerprint)}`;
}

/** The image manifest a snapshot was baked from, as an OCI descriptor (from the blob cache), if cached. */
export async function subjectOf(manifestDigest: string): Promise<Descriptor | undefined> {
  const bytes = await new BlobCache(defaultCacheDir()).readVerified(manifestDigest).catch(() => undefined);
  if (!bytes) return undefined;
  let mediaType = "application/vnd.oci.image.manifest.v1+json";
  try {
    const m = JSON.parse(bytes.toString("utf8")) as { mediaType?: unknown };
    if (typeof m.mediaType === "string") mediaType = m.mediaType;
  } catch {
    return undefined;
  }
  return { mediaType, digest: manifestDigest, size: bytes.length };
}

/** The fields of a bake's metadata that the fingerprint stands for (what a pulled artifact must match). */
export type ExpectedMetadata = Pick<
  SnapshotMetadata,
  "memoryMib" | "vcpus" | "guestPort" | "listenerRequired" | "trigger" | "extraFiles" | "workload" | "assets"
> & {
  manifestDigest: string;
  warmupTag?: string;
  engine: { accel: string; cpuModel: string; qemuVersion: string };
  networkCard: boolean;
};

/** The first field of a pulled snapshot's metadata that differs from what this build would bake, if any. */
function mismatch(m: SnapshotMetadata, want: ExpectedMetadata): string | undefined {
  const checks: Array<[string, unknown, unknown]> = [
    ["image.manifestDigest", m.image.manifestDigest, want.manifestDigest],
    ["memoryMib", m.memoryMib, want.memoryMib],
    ["vcpus", m.vcpus, want.vcpus],
    ["guestPort", m.guestPort, want.guestPort],
    ["listenerRequired", m.listenerRequired, want.listenerRequired],
    ["trigger", m.trigger, want.trigger],
    ["warmupTag", m.warmupTag, want.warmupTag],
    ["extraFiles", m.extraFiles, want.extraFiles],
    ["workload", m.workload, want.workload],
    ["assets", m.assets, want.assets],
    ["engine.accel", m.engine.accel, want.engine.accel],
    ["engine.cpuModel", m.engine.cpuModel, want.engine.cpuModel],
    ["engine.qemuVersion", m.engine.qemuVersion, want.engine.qemuVersion],
    ["network.card", m.network?.card ?? true, want.networkCard],
  ];
  return checks.find(([, got, exp]) => !isDeepStrictEqual(got, exp))?.[0];
}

/** What {@link pullPublishedSnapshot} needs. */
export interface PullPublishedOptions {
  store: SnapshotStore;
  key: SnapshotKey;
  image: PulledImage;
  repository: SnapshotRepository;
  expected: ExpectedMetadata;
  /** The network recorded in the stored metadata (the build's, not the artifact's). */
  network: SnapshotMetadata["network"];
  insecureRegistries?: string[];
  onProgress: (p: BuildProgress) => void;
}

/**
 * Looks for the snapshot of `key.fingerprint` in the registry and, when
 * there is one this host can use, pulls it into the store (no boot).
 * Resolves undefined when there is none, or when its root fs builds to
 * other bytes here (the caller bakes). An artifact whose metadata does not
 * match the fingerprint's inputs fails `SNAPSHOT_ARTIFACT_INVALID`; one
 * whose blobs do not match their digests fails `SNAPSHOT_DIGEST_MISMATCH`;
 * either way nothing is kept.
 */
export async function pullPublishedSnapshot(o: PullPublishedOptions): Promise<PublishResult | undefined> {
  const ref = artifactRef(o.repository, o.key.fingerprint);
  const progress = o.onProgress;
  progress({ phase: "registry", action: "lookup", ref, message: `looking for a published snapshot ${ref}` });
  await using registry = client(o.repository, o.insecureRegistries, false);
  const artifact = await findSnapshotArtifact(registry, o.key.fingerprint, {
    subject: o.image.manifestDigest,
  });
  if (!artifact) {
    progress({ phase: "registry", action: "miss", ref, message: "no published snapshot: baking" });
    return undefined;
  }
  const bad = mismatch(artifact.metadata, o.expected);
  if (bad) {
    throw new CoreError(
      "BAKE_FAILED",
      `the snapshot published as ${ref} does not match its fingerprint's inputs (${bad} differs): refusing it`,
      { details: { ref, field: bad } },
    );
  }
  // The root fs is rebuilt here from the image's layers (it must be the very bytes the snapshot
  // saw) while the snapshot downloads; the download is checked against it before it is stored.
  progress({ phase: "rootfs", message: "building root file system" });
  let building = true;
  let lastDownload: { bytesDone: number; bytesTotal: number } | undefined;
  const rootfsBuild = buildRootfs(o.image, {
    onProgress: (m: string) => progress({ phase: "rootfs", message: m }),
  }).finally(() => {
    building = false;
    // download progress is held back while the root fs reports, then caught up
    if (lastDownload) progress({ phase: "download", ...lastDownload });
  });
  rootfsBuild.catch(() => {});
  const want = artifact.metadata.rootfs;
  let unusable = false;
  let stored: PublishResult;
  try {
    stored = await o.store.pull(
      o.key,
      registry,
      // what this host knows first-hand replaces the artifact's word: the image as pulled here, the build's network
      {
        ...artifact,
        metadata: {
          ...artifact.metadata,
          image: { ref: o.image.reference, manifestDigest: o.image.manifestDigest, config: o.image.config },
          network: o.network,
        },
      },
      {
        expectedAssets: o.expected.assets,
        onProgress: (p) => {
          lastDownload = { bytesDone: p.bytesDone, bytesTotal: p.bytesTotal };
          if (!building) progress({ phase: "download", ...lastDownload });
        },
        verify: async (dir, metadata) => {
          const rootfs = await rootfsBuild;
          if (
            rootfs.digest !== want.digest ||
            rootfs.sha256 !== want.sha256 ||
            rootfs.sizeBytes !== want.size
          ) {
            unusable = true;
            throw new CoreError("BAKE_FAILED", "the published snapshot's root fs builds to other bytes here");
          }
          verifyMachineRecord(dir, metadata, rootfs.path, o.expected);
        },
      },
    );
  } catch (err) {
    await rootfsBuild.catch(() => {}); // never leave the build running behind the caller
    if (!unusable) throw err;
    progress({
      phase: "registry",
      action: "unusable",
      ref,
      message: `the published snapshot's root fs (${want.digest}, sha256 ${want.sha256}) builds to other bytes on this host: baking`,
    });
    return undefined;
  }
  progress({ phase: "restored", snapshotPath: stored.dir, ref, bytes: artifact.blobBytes });
  return stored;
}

/**
 * The engine record of a pulled snapshot must name its inputs by hash only
 * (a path would make this host hand one of its files to QEMU), and agree
 * with the metadata and this build: guest hashes, root fs digest, memory,
 * vCPUs, network card, accelerator, CPU model, QEMU version.
 */
function verifyMachineRecord(
  dir: string,
  metadata: SnapshotMetadata,
  rootfsPath: string,
  want: ExpectedMetadata,
): void {
  const files = openSnapshotFiles(dir, { rootfs: rootfsPath, byHashOnly: true });
  const r = files.record;
  const problems: Array<[string, unknown, unknown]> = [
    ["guest", r.guest, { kernelHash: want.assets.kernelHash, agentHash: want.assets.agentHash }],
    ["rootfs", r.rootfs, { digest: metadata.rootfs.digest }],
    ["spec.memoryMib", r.spec.memoryMib, metadata.memoryMib],
    ["spec.vcpus", r.spec.vcpus, metadata.vcpus],
    ["spec.network", r.spec.network ?? true, want.networkCard],
    ["accel", r.accel, want.engine.accel],
    ["cpuModel", r.cpuModel, want.engine.cpuModel],
    ["qemuVersion", r.qemuVersion, want.engine.qemuVersion],
  ];
  const bad = problems.find(([, got, exp]) => !isDeepStrictEqual(got, exp));
  if (bad) {
    throw new CoreError(
      "BAKE_FAILED",
      `the published snapshot's machine.json does not match (${bad[0]}: ${JSON.stringify(bad[1])}, expected ${JSON.stringify(bad[2])}): refusing it`,
      { details: { field: `machine.${bad[0]}` } },
    );
  }
}

/** Publishes a loaded snapshot (see `Image.push`). */
export async function pushLoadedSnapshot(loaded: LoadedSnapshot, options: PushOptions): Promise<PushResult> {
  const repo = snapshotRepositoryFor(loaded.metadata.image.ref, options.repository);
  const ref = artifactRef(repo, loaded.metadata.fingerprint);
  const progress = options.onProgress ?? (() => {});
  await using registry = client(repo, options.insecureRegistries, true);
  const subject = await subjectOf(loaded.metadata.image.manifestDigest);
  const pushed = await pushSnapshot(loaded, registry, {
    ...(subject ? { subject } : {}),
    compressionLevel: options.compressionLevel,
    onProgress: (p) =>
      progress({
        phase: "upload",
        step: p.phase === "pack" ? "pack" : "upload",
        bytesDone: p.bytesDone,
        bytesTotal: p.bytesTotal,
      }),
  });
  progress({ phase: "pushed", ref, manifestDigest: pushed.manifestDigest, bytes: pushed.artifactBytes });
  return {
    ref,
    manifestDigest: pushed.manifestDigest,
    artifactBytes: pushed.artifactBytes,
    snapshotDiskBytes: (await diskUsage(loaded.dir)).allocatedBytes,
    totalPages: pushed.totalPages,
    presentPages: pushed.presentPages,
  };
}
