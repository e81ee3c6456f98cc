import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { BlobCache, defaultCacheDir, tempName } from "./blob-cache.js";
import { type ByteSource, fileSource } from "./byte-source.js";
import { decompressLayer } from "./decompress.js";
import { RootfsBuildError, throwIfAborted } from "./errors.js";
import { withFileLock } from "./file-lock.js";
import { LayerEntryLimits } from "./layer-limits.js";
import { MergedTree } from "./layer-merge.js";
import { type OciLimits, resolveLimits, UnpackBudget } from "./limits.js";
import { writeMergedTar } from "./merged-tar.js";
import type { PulledImage } from "./pulled-image.js";
import { readTarEntries } from "./tar-reader.js";

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
const ENCODER = { format: "ext4", version: 1, blockSize: 4096, inodeSize: 256, journal: false };

/** The content address of the root fs for `diffIds` (with `extraBytes` headroom). */
export function rootfsDigest(diffIds: string[], extraBytes = 0): string {
  const key = JSON.stringify({ encoder: ENCODER, extraBytes, diffIds });
  return `sha256:${createHash("sha256").update(key).digest("hex")}`;
}

async function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.on("error", (err) =>
      reject(new RootfsBuildError(`cannot run ${cmd}: ${err.message}`, { cause: err })),
    );
    child.on("close", (code) => {
      if (code === 0) resolve();
      else {
        reject(
          new RootfsBuildError(`${cmd} failed (exit ${code}): ${out.trim().slice(-2000)}`, {
            details: { cmd, args, code },
          }),
        );
      }
    });
  });
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
      const sources: ByteSource[] = [];
      try {
        const blobs = new BlobCache(cacheDir);
        const tarPaths = image.layers.map((_, i) => join(work, `layer-${i}.tar`));
        const budget = new UnpackBudget(limits.maxUnpackedBytes);
        let next = 0;
        const worker = async () => {
          while (next < image.layers.length) {
            const i = next++;
            const layer = image.layers[i]!;
            throwIfAborted(opts.signal);
            progress(`decompressing layer ${i + 1}/${image.layers.length} ${layer.digest}`);
            try {
              await decompressLayer(
                blobs.path(layer.digest),
                layer.digest,
                layer.diffId,
                tarPaths[i]!,
                budget,
              );
            } catch (err) {
              // A blob that no longer matches its digest is dropped so the next pull fetches it again.
              if ((err as { code?: string }).code === "OCI_DIGEST_MISMATCH") await blobs.remove(layer.digest);
              throw err;
            }
          }
        };
        await Promise.all([worker(), worker()]);
        progress("merging layers");
        const tree = new MergedTree({ maxImplicitDirs: limits.maxEntries });
        const entryLimits = new LayerEntryLimits(limits);
        // PAX headers hold paths, link targets and xattrs: allow what the limits allow, and no more.
        const maxExtendedHeaderBytes = Math.max(
          1024 * 1024,
          2 * limits.maxXattrBytes + 2 * limits.maxPathBytes + 64 * 1024,
        );
        for (let i = 0; i < tarPaths.length; i++) {
          throwIfAborted(opts.signal);
          const src = await fileSource(tarPaths[i]!);
          sources.push(src);
          const where = `layer ${i + 1}/${image.layers.length} ${image.layers[i]!.digest}`;
          const entries = [];
          for await (const e of readTarEntries(src, { maxExtendedHeaderBytes })) {
            entryLimits.check(e, where);
            entries.push(e);
          }
          tree.applyLayer(i, entries);
        }
        const merged = join(work, "merged.tar");
        const stats = await writeMergedTar(tree, sources, merged);
        for (const s of sources) await s.close();
        sources.length = 0;
        for (const p of tarPaths) await rm(p, { force: true });
        throwIfAborted(opts.signal);
        const inodes = Math.ceil(stats.inodes * 1.1) + 256;
        const inodeTableBlocks = Math.ceil((inodes * ENCODER.inodeSize) / ENCODER.blockSize);
        const blocks =
          Math.ceil((stats.blocks4k + inodeTableBlocks) * 1.08) + 2048 + Math.ceil(extraBytes / 4096);
        progress(`encoding ext4 (${stats.entries} entries, ${(stats.dataBytes / 1e6).toFixed(1)} MB)`);
        const tmp = tempName(dir, hex);
        try {
          await run(
            "mke2fs",
            [
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
              "-O",
              "^has_journal,^resize_inode",
              "-E",
              `lazy_itable_init=0,root_owner=0:0,hash_seed=${uuidFrom(hex)}`,
              "-U",
              uuidFrom(hex),
              "-L",
              "rootfs",
              "-d",
              merged,
              tmp,
              `${blocks * (ENCODER.blockSize / 1024)}k`,
            ],
            { E2FSPROGS_FAKE_TIME: "1" },
          );
          const built = await stat(tmp);
          const sha256 = await sha256OfFile(tmp);
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
        for (const s of sources) await s.close().catch(() => {});
        await rm(work, { recursive: true, force: true });
      }
    },
    opts.signal,
    () => progress(`waiting for another process building root file system ${digest}`),
  );
}

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
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
