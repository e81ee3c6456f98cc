import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { defaultCacheDir, tempName } from "./blob-cache.js";
import { InvalidOptionsError, throwIfAborted } from "./errors.js";
import { withFileLock } from "./file-lock.js";
import { sha256OfFile } from "./image-hash.js";
import { MergedTree } from "./layer-merge.js";
import { DEFAULT_LAYER_MEMORY_BYTES as LAYER_MEMORY_BYTES, type LayerData } from "./layer-store.js";
import { unpackLayers } from "./layer-unpack.js";
import { type OciLimits, resolveLimits } from "./limits.js";
import { planMergedTar, writeMergedTar } from "./merged-tar.js";
import { runMke2fs } from "./mke2fs.js";
import type { PulledImage } from "./pulled-image.js";

/** Options of {@link buildRootfs}. */
export interface BuildRootfsOptions {
  /** Cache directory (default: the one the image was pulled into). */
  cacheDir?: string;
  /** Human-readable progress messages. */
  onProgress?: (message: string) => void;
  /** Extra free space to leave in the file system, in bytes (default 0; the guest mounts it read-only). */
  extraBytes?: number;
  /** Aborts the build (the partial image is removed). */
  signal?: AbortSignal;
  /**
   * Caps on what the layers may unpack to: `maxUnpackedBytes`,
   * `maxEntries`, `maxPathBytes`, `maxXattrBytes`, `maxXattrs` (defaults in
   * `DEFAULT_LIMITS`). Exceeding one fails with `OCI_LIMIT_EXCEEDED`
   * naming it, and nothing is left behind. A root fs already in the cache
   * is reused without checking again.
   */
  limits?: Partial<OciLimits>;
  /**
   * Bytes of uncompressed layer tars kept in memory while building
   * (default 512 MiB); the rest goes to temp files under
   * `<cacheDir>/tmp`. Changes speed and memory use, never the image.
   */
  layerMemoryBytes?: number;
}

/** A built root file system image. */
export interface RootfsImage {
  /** Path of the ext4 image (do not modify it: it is shared by every user of the cache). */
  path: string;
  /** Content address: `sha256:` of the ordered layer diff IDs and the encoder settings. */
  digest: string;
  /** Size of the image file in bytes. */
  sizeBytes: number;
  /**
   * sha256 (hex) of the image file's bytes: computed once when it is built
   * and kept next to it in `<hex>.json` (computed again when that record
   * lacks it or names another size).
   */
  sha256: string;
  /** True when an existing image was reused and nothing was built. */
  reused: boolean;
}

/** Bump when the merge or the mke2fs settings change, so cached images are rebuilt. */
const ENCODER = {
  format: "ext4",
  version: 2,
  blockSize: 4096,
  inodeSize: 256,
  journal: false,
  metadataCsum: false,
};

/** The content address of the root fs for `diffIds` (with `extraBytes` headroom). */
export function rootfsDigest(diffIds: string[], extraBytes = 0): string {
  const key = JSON.stringify({ encoder: ENCODER, extraBytes, diffIds });
  return `sha256:${createHash("sha256").update(key).digest("hex")}`;
}

/** The mke2fs command line for an image of `blocks` 4 KiB blocks and `inodes` inodes holding the tar `tar`. */
function mke2fsArgs(hex: string, inodes: number, blocks: number, tar: string, out: string): string[] {
  return [
    "-q",
    "-F",
    "-t",
    "ext4",
    "-b",
    String(ENCODER.blockSize),
    "-I",
    String(ENCODER.inodeSize),
    "-N",
    String(inodes),
    "-m",
    "0",
    // No journal (mounted read-only), no metadata checksums: mke2fs -d spends
    // most of its CPU on crc32c of directory blocks it re-reads for every name.
    "-O",
    "^has_journal,^resize_inode,^metadata_csum",
    "-E",
    `lazy_itable_init=0,root_owner=0:0,hash_seed=${uuidFrom(hex)}`,
    "-U",
    uuidFrom(hex),
    "-L",
    "rootfs",
    "-d",
    tar,
    out,
    `${blocks * (ENCODER.blockSize / 1024)}k`,
  ];
}

/**
 * Builds (or reuses) the root file system image of a pulled image: the
 * layers are verified, decompressed, merged in TypeScript into one tar
 * (whiteouts, opaque dirs, hardlinks, last writer wins) and encoded by
 * `mke2fs -t ext4 -d merged.tar` without root, keeping owners, modes,
 * device nodes and xattrs. Images live in `<cacheDir>/rootfs/` under their
 * content address; two processes building the same one build it once.
 */
export async function buildRootfs(image: PulledImage, opts: BuildRootfsOptions = {}): Promise<RootfsImage> {
  const cacheDir = opts.cacheDir ?? image.cacheDir ?? defaultCacheDir();
  const progress = opts.onProgress ?? (() => {});
  const extraBytes = opts.extraBytes ?? 0;
  const limits = resolveLimits(opts.limits);
  const layerMemoryBytes = opts.layerMemoryBytes ?? LAYER_MEMORY_BYTES;
  if (!Number.isSafeInteger(layerMemoryBytes) || layerMemoryBytes < 0) {
    throw new InvalidOptionsError(
      `layerMemoryBytes must be a non-negative integer, got ${String(opts.layerMemoryBytes)}`,
    );
  }
  const diffIds = image.layers.map((l) => l.diffId);
  const digest = rootfsDigest(diffIds, extraBytes);
  const hex = digest.slice("sha256:".length);
  const dir = join(cacheDir, "rootfs");
  const path = join(dir, `${hex}.ext4`);
  const existing = await stat(path).catch(() => undefined);
  if (existing) {
    progress(`reusing root file system ${digest}`);
    return {
      path,
      digest,
      sizeBytes: existing.size,
      sha256: await recordedSha256(dir, hex, path, existing.size),
      reused: true,
    };
  }
  await mkdir(dir, { recursive: true });
  return withFileLock(
    join(dir, `${hex}.lock`),
    async () => {
      const again = await stat(path).catch(() => undefined);
      if (again) {
        return {
          path,
          digest,
          sizeBytes: again.size,
          sha256: await recordedSha256(dir, hex, path, again.size),
          reused: true,
        };
      }
      const work = join(cacheDir, "tmp", `rootfs-${process.pid}-${randomBytes(6).toString("hex")}`);
      await mkdir(work, { recursive: true });
      let layers: LayerData[] = [];
      try {
        const spillPaths = image.layers.map((_, i) => join(work, `layer-${i}.tar`));
        const { data, entries } = await unpackLayers(
          image,
          cacheDir,
          spillPaths,
          limits,
          layerMemoryBytes,
          progress,
          opts.signal,
        );
        layers = data;
        progress("merging layers");
        const tree = new MergedTree({ maxImplicitDirs: limits.maxEntries });
        for (let i = 0; i < entries.length; i++) {
          tree.applyLayer(i, entries[i]!);
          entries[i] = [];
        }
        const plan = planMergedTar(tree);
        const stats = plan.stats;
        throwIfAborted(opts.signal);
        const inodes = Math.ceil(stats.inodes * 1.1) + 256;
        const inodeTableBlocks = Math.ceil((inodes * ENCODER.inodeSize) / ENCODER.blockSize);
        const blocks =
          Math.ceil((stats.blocks4k + inodeTableBlocks) * 1.08) + 2048 + Math.ceil(extraBytes / 4096);
        progress(`encoding ext4 (${stats.entries} entries, ${(stats.dataBytes / 1e6).toFixed(1)} MB)`);
        const tmp = tempName(dir, hex);
        try {
          // The merged tar is piped into mke2fs as it is written: no 117 MB
          // temp file, whose fresh pages cost more than mke2fs's small reads.
          await runMke2fs(mke2fsArgs(hex, inodes, blocks, "-", tmp), opts.signal, (sink) =>
            writeMergedTar(plan, data, sink),
          );
          for (const d of data) d.release();
          const removed = Promise.all(spillPaths.map((p) => rm(p, { force: true })));
          const built = await stat(tmp);
          const sha256 = await sha256OfFile(tmp);
          await removed;
          await writeFile(
            `${tmp}.json`,
            JSON.stringify({ digest, diffIds, encoder: ENCODER, stats, size: built.size, sha256 }, null, 2),
          );
          await rename(`${tmp}.json`, join(dir, `${hex}.json`));
          await rename(tmp, path);
        } catch (err) {
          await rm(tmp, { force: true });
          await rm(`${tmp}.json`, { force: true });
          throw err;
        }
        const st = await stat(path);
        progress(`root file system ready: ${path}`);
        return {
          path,
          digest,
          sizeBytes: st.size,
          sha256: await recordedSha256(dir, hex, path, st.size),
          reused: false,
        };
      } finally {
        for (const d of layers) d.release();
        await rm(work, { recursive: true, force: true });
      }
    },
    opts.signal,
    () => progress(`waiting for another process building root file system ${digest}`),
  );
}

/**
 * The sha256 of a root fs image, from its `<hex>.json` record when that
 * names this size, else computed (and recorded, best effort).
 */
async function recordedSha256(dir: string, hex: string, path: string, size: number): Promise<string> {
  const recordPath = join(dir, `${hex}.json`);
  let record: Record<string, unknown> = {};
  try {
    record = JSON.parse(await readFile(recordPath, "utf8")) as Record<string, unknown>;
    if (record.size === size && typeof record.sha256 === "string" && /^[0-9a-f]{64}$/.test(record.sha256)) {
      return record.sha256;
    }
  } catch {
    // no record (an image built by an older version): compute it
  }
  const sha256 = await sha256OfFile(path);
  const tmp = `${recordPath}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify({ ...record, size, sha256 }, null, 2))
    .then(() => rename(tmp, recordPath))
    .catch(() => rm(tmp, { force: true }));
  return sha256;
}

function uuidFrom(hex: string): string {
  const h = hex.slice(0, 32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
