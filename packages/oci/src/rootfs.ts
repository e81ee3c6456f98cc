import { createHash, randomBytes } from "node:crypto";
import { readSync } from "node:fs";
import { type FileHandle, mkdir, open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { defaultCacheDir, tempName } from "./blob-cache.js";
import { InvalidOptionsError, throwIfAborted } from "./errors.js";
import { withFileLock } from "./file-lock.js";
import { sha256OfFile } from "./image-hash.js";
import { MergedTree } from "./layer-merge.js";
import { DEFAULT_LAYER_MEMORY_BYTES as LAYER_MEMORY_BYTES } from "./layer-store.js";
import { unpackLayers, unpackLayersInPlace } from "./layer-unpack.js";
import { type OciLimits, resolveLimits } from "./limits.js";
import { type LayerReader, planMergedTar, writeMergedTar } from "./merged-tar.js";
import { runMke2fs } from "./mke2fs.js";
import type { PulledImage } from "./pulled-image.js";
import { encodeSquashfs, SQUASHFS_BLOCK_LOG, squashfsUnsupported, unusedRanges } from "./squashfs-encoder.js";
import type { TarEntry } from "./tar-reader.js";
import { zeroRanges } from "./zero-ranges.js";

/** Options of {@link buildRootfs}. */
export interface BuildRootfsOptions {
  /** Cache directory (default: the one the image was pulled into). */
  cacheDir?: string;
  /** Human-readable progress messages. */
  onProgress?: (message: string) => void;
  /** Extra free space to leave in an ext4 file system, in bytes (default 0; the guest mounts it read-only; squashfs has none). */
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
  /**
   * File system of the image (default `"squashfs"`): see {@link RootfsFormat}.
   * Part of the content address, so each format is cached on its own.
   */
  format?: RootfsFormat;
}

/**
 * `"squashfs"`: the layers' uncompressed tars are written once, straight
 * into the image, and file data is used where it lies (uncompressed
 * blocks); only the metadata is encoded. An image squashfs cannot hold
 * (an xattr outside `user.`/`trusted.`/`security.`, more than 65535 owner
 * ids, a symlink target over 4 KiB) is built as ext4 instead, under the
 * same address. `"ext4"`: the merged tree is encoded by `mke2fs -d`.
 * The guest tells them apart by their magic.
 */
export type RootfsFormat = "squashfs" | "ext4";

/** A built root file system image. */
export interface RootfsImage {
  /** Path of the image (do not modify it: it is shared by every user of the cache). */
  path: string;
  /** File system the image holds (ext4 also when squashfs was asked for an image it cannot hold). */
  format: RootfsFormat;
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
const EXT4_ENCODER = {
  format: "ext4",
  version: 2,
  blockSize: 4096,
  inodeSize: 256,
  journal: false,
  metadataCsum: false,
};

/** Where the first layer's tar starts in a squashfs image (after the superblock's page). */
const DATA_START = 4096;

/** Bump when the squashfs layout changes. */
const SQUASHFS_ENCODER = {
  format: "squashfs",
  version: 1,
  blockLog: SQUASHFS_BLOCK_LOG,
  dataStart: DATA_START,
  fallback: EXT4_ENCODER,
};

/** The content address of the root fs for `diffIds` (with `extraBytes` headroom) in `format`. */
export function rootfsDigest(diffIds: string[], extraBytes = 0, format: RootfsFormat = "squashfs"): string {
  const encoder = format === "ext4" ? EXT4_ENCODER : SQUASHFS_ENCODER;
  const key = JSON.stringify({ encoder, extraBytes, diffIds });
  return `sha256:${createHash("sha256").update(key).digest("hex")}`;
}

/** File names of the root fs image `<hex>`: `<hex>.img`, and `<hex>.ext4` as versions before 0.5 named their ext4 images. */
function rootfsFileNames(hex: string): [current: string, legacy: string] {
  return [`${hex}.img`, `${hex}.ext4`];
}

/** The mke2fs command line for an image of `blocks` 4 KiB blocks and `inodes` inodes holding the tar `tar`. */
function mke2fsArgs(hex: string, inodes: number, blocks: number, tar: string, out: string): string[] {
  return [
    "-q",
    "-F",
    "-t",
    "ext4",
    "-b",
    String(EXT4_ENCODER.blockSize),
    "-I",
    String(EXT4_ENCODER.inodeSize),
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
    `${blocks * (EXT4_ENCODER.blockSize / 1024)}k`,
  ];
}

/**
 * Builds (or reuses) the root file system image of a pulled image: the
 * layers are verified, decompressed and merged in TypeScript (whiteouts,
 * opaque dirs, hardlinks, last writer wins), then encoded as squashfs
 * (default: the layer tars written once into the image, file data used in
 * place, metadata encoded here) or ext4 (`mke2fs -d`, fed the merged tree
 * as one tar), keeping owners, modes, device nodes and xattrs, without
 * root. Images live in `<cacheDir>/rootfs/<hex>.img` under their content
 * address; two processes building the same one build it once.
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
  const format = opts.format ?? "squashfs";
  if (format !== "squashfs" && format !== "ext4") {
    throw new InvalidOptionsError(`format must be "squashfs" or "ext4", got ${JSON.stringify(format)}`);
  }
  const diffIds = image.layers.map((l) => l.diffId);
  const digest = rootfsDigest(diffIds, extraBytes, format);
  const hex = digest.slice("sha256:".length);
  const dir = join(cacheDir, "rootfs");
  const reuse = async (): Promise<RootfsImage | undefined> => {
    for (const name of rootfsFileNames(hex)) {
      const path = join(dir, name);
      const st = await stat(path).catch(() => undefined);
      if (!st) continue;
      progress(`reusing root file system ${digest}`);
      return {
        path,
        format: await formatOf(path),
        digest,
        sizeBytes: st.size,
        sha256: await recordedSha256(dir, hex, path, st.size),
        reused: true,
      };
    }
    return undefined;
  };
  const existing = await reuse();
  if (existing) return existing;
  await mkdir(dir, { recursive: true });
  return withFileLock(
    join(dir, `${hex}.lock`),
    async () => {
      const again = await reuse();
      if (again) return again;
      const work = join(cacheDir, "tmp", `rootfs-${process.pid}-${randomBytes(6).toString("hex")}`);
      await mkdir(work, { recursive: true });
      const tmp = tempName(dir, hex);
      const path = join(dir, rootfsFileNames(hex)[0]);
      try {
        const job: BuildJob = {
          image,
          cacheDir,
          work,
          tmp,
          hex,
          extraBytes,
          limits,
          layerMemoryBytes,
          progress,
        };
        const built =
          format === "squashfs" ? await buildSquashfs(job, opts.signal) : await buildExt4(job, opts.signal);
        const size = (await stat(tmp)).size;
        const sha256 = await sha256OfFile(tmp);
        const record = {
          digest,
          diffIds,
          format: built.format,
          encoder: built.encoder,
          stats: built.stats,
          size,
          sha256,
        };
        await writeFile(`${tmp}.json`, JSON.stringify(record, null, 2));
        await rename(`${tmp}.json`, join(dir, `${hex}.json`));
        await rename(tmp, path);
        progress(`root file system ready: ${path}`);
        return { path, format: built.format, digest, sizeBytes: size, sha256, reused: false };
      } catch (err) {
        await rm(tmp, { force: true });
        await rm(`${tmp}.json`, { force: true });
        throw err;
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    },
    opts.signal,
    () => progress(`waiting for another process building root file system ${digest}`),
  );
}

/** What one build needs. */
interface BuildJob {
  image: PulledImage;
  cacheDir: string;
  /** A scratch directory (removed after). */
  work: string;
  /** The image file to write. */
  tmp: string;
  hex: string;
  extraBytes: number;
  limits: OciLimits;
  layerMemoryBytes: number;
  progress: (message: string) => void;
}

/** What a build wrote to `job.tmp`. */
interface Built {
  format: RootfsFormat;
  encoder: object;
  stats: object;
}

/** The merged tree of layers already listed. */
function mergeLayers(entries: TarEntry[][], limits: OciLimits, progress: (m: string) => void): MergedTree {
  progress("merging layers");
  const tree = new MergedTree({ maxImplicitDirs: limits.maxEntries });
  for (let i = 0; i < entries.length; i++) {
    tree.applyLayer(i, entries[i]!);
    entries[i] = [];
  }
  return tree;
}

/** Layers in memory or spill files, merged, piped as one tar into `mke2fs -d -`. */
async function buildExt4(job: BuildJob, signal?: AbortSignal): Promise<Built> {
  const spillPaths = job.image.layers.map((_, i) => join(job.work, `layer-${i}.tar`));
  const { data, entries } = await unpackLayers(
    job.image,
    job.cacheDir,
    spillPaths,
    job.limits,
    job.layerMemoryBytes,
    job.progress,
    signal,
  );
  try {
    const tree = mergeLayers(entries, job.limits, job.progress);
    return await encodeExt4(job, tree, data, signal);
  } finally {
    for (const d of data) d.release();
  }
}

/** Encodes `tree` as ext4 into `job.tmp`, file data read from `layers`. */
async function encodeExt4(
  job: BuildJob,
  tree: MergedTree,
  layers: readonly LayerReader[],
  signal?: AbortSignal,
): Promise<Built> {
  const plan = planMergedTar(tree);
  const stats = plan.stats;
  throwIfAborted(signal);
  const inodes = Math.ceil(stats.inodes * 1.1) + 256;
  const inodeTableBlocks = Math.ceil((inodes * EXT4_ENCODER.inodeSize) / EXT4_ENCODER.blockSize);
  const blocks =
    Math.ceil((stats.blocks4k + inodeTableBlocks) * 1.08) + 2048 + Math.ceil(job.extraBytes / 4096);
  job.progress(`encoding ext4 (${stats.entries} entries, ${(stats.dataBytes / 1e6).toFixed(1)} MB)`);
  // The merged tar is piped into mke2fs as it is written: no 117 MB
  // temp file, whose fresh pages cost more than mke2fs's small reads.
  await runMke2fs(mke2fsArgs(job.hex, inodes, blocks, "-", job.tmp), signal, (sink) =>
    writeMergedTar(plan, layers, sink),
  );
  return { format: "ext4", encoder: EXT4_ENCODER, stats };
}

/**
 * Layers decompressed one after another straight into the image file
 * (after its first page), merged, and the squashfs metadata written after
 * them, pointing into the tars: the file data is written once, in place.
 */
async function buildSquashfs(job: BuildJob, signal?: AbortSignal): Promise<Built> {
  const fh = await open(job.tmp, "w+");
  let closed = false;
  try {
    await fh.truncate(DATA_START);
    const { entries, layerBase, end } = await unpackLayersInPlace(
      job.image,
      job.cacheDir,
      job.tmp,
      DATA_START,
      job.limits,
      job.progress,
      signal,
    );
    const tree = mergeLayers(entries, job.limits, job.progress);
    throwIfAborted(signal);
    const unsupported = squashfsUnsupported(tree);
    if (unsupported !== undefined) {
      job.progress(`squashfs cannot hold ${unsupported}: encoding ext4 instead`);
      const layers = layerBase.map((base, i) => regionReader(fh.fd, base, (layerBase[i + 1] ?? end) - base));
      const ext4 = `${job.tmp}.ext4`;
      try {
        const built = await encodeExt4({ ...job, tmp: ext4 }, tree, layers, signal);
        await fh.close();
        closed = true;
        await rename(ext4, job.tmp);
        return {
          ...built,
          encoder: { ...EXT4_ENCODER, instead: SQUASHFS_ENCODER.format, reason: unsupported },
        };
      } finally {
        await rm(ext4, { force: true });
      }
    }
    job.progress(
      `encoding squashfs metadata (${((end - DATA_START) / 1e6).toFixed(1)} MB of layers used in place)`,
    );
    const layout = { layerBase, metadataStart: end };
    // Headers and the data of files later layers deleted or replaced: zeros,
    // so the guest's raw disk holds only what the merged tree shows.
    throwIfAborted(signal);
    const hidden = await zeroRanges(job.tmp, fh.fd, unusedRanges(tree, layout));
    const enc = encodeSquashfs(tree, layout);
    throwIfAborted(signal);
    await writeAt(fh, Buffer.concat(enc.metadata), end);
    await writeAt(fh, enc.superblock, 0);
    await fh.truncate(enc.fileSize);
    return {
      format: "squashfs",
      encoder: SQUASHFS_ENCODER,
      stats: {
        inodes: enc.inodes,
        layerBytes: end - DATA_START,
        dataBytes: end - DATA_START - hidden.bytes,
        zeroedBytes: hidden.bytes,
        punchedBytes: hidden.punched,
        metadataBytes: enc.bytesUsed - end,
      },
    };
  } finally {
    if (!closed) await fh.close();
  }
}

/** Reads of a layer tar lying at `base` (`size` bytes) in an open file. */
function regionReader(fd: number, base: number, size: number): LayerReader {
  return {
    readInto(buf, offset, length, position) {
      const n = Math.max(0, Math.min(length, size - position));
      let done = 0;
      while (done < n) {
        const k = readSync(fd, buf, offset + done, n - done, base + position + done);
        if (k <= 0) break;
        done += k;
      }
      return done;
    },
  };
}

/** Writes all of `buf` at `at`. */
async function writeAt(fh: FileHandle, buf: Buffer, at: number): Promise<void> {
  for (let done = 0; done < buf.length; ) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, at + done);
    done += bytesWritten;
  }
}

/** ext4 or squashfs, by the image's magic (squashfs `hsqs` at 0, else ext4). */
async function formatOf(path: string): Promise<RootfsFormat> {
  const fh = await open(path, "r");
  try {
    const head = Buffer.alloc(4);
    await fh.read(head, 0, 4, 0);
    return head.toString("latin1") === "hsqs" ? "squashfs" : "ext4";
  } finally {
    await fh.close();
  }
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
