import { lstat, readdir, readFile, rm, unlink } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { rootfsFileNames } from "./load.js";
import { LOCK_PREFIX } from "./lock.js";
import { METADATA_FILE, SNAPSHOT_FORMAT_VERSION } from "./metadata.js";
import { ROOTFS_DIGEST } from "./parse-metadata.js";
import { scratchOwner } from "./publish.js";
import type { SnapshotListEntry, SnapshotStore } from "./store.js";

/** Options of {@link SnapshotStore.prune}. */
export interface PruneOptions {
  /** Keep the `keep` most recently created valid snapshots; older ones are removed (combined with `olderThan`: only those also older). */
  keep?: number;
  /** Remove valid snapshots created before this date, or more than this many milliseconds ago. */
  olderThan?: Date | number;
  /**
   * Remove snapshots that fail validation, including those of an older
   * format version (not those of a newer one, nor those failing with
   * `SNAPSHOT_UNSAFE_PATH`). Default true.
   */
  removeInvalid?: boolean;
  /**
   * Directory of content-addressed root fs images. Files in it that no
   * snapshot left in the store references are removed, except files
   * modified within `rootfsGraceMs` and except while any publish in this
   * store is running (its root fs is not referenced yet).
   */
  rootfsDir?: string;
  /** Root fs images modified more recently than this (ms) are kept. Default 600 000 (10 minutes). */
  rootfsGraceMs?: number;
}

/** What {@link SnapshotStore.prune} removed. */
export interface PruneResult {
  /** Names of removed snapshots. */
  removedSnapshots: string[];
  /** Paths of removed root fs images. */
  removedRootfs: string[];
  /** Removed leftovers of crashed publishes (`.tmp.*`, `.old.*`, lock temp files). */
  removedTemp: string[];
  /** Snapshots that qualified but were skipped because a live process held their lock. */
  skippedBusy: string[];
  /** Why root fs pruning was skipped, if it was. */
  rootfsSkipped?: string;
  /** Bytes of disk freed (allocated blocks). */
  freedBytes: number;
}

function isStaleLockTemp(entry: string): boolean {
  return entry.startsWith(LOCK_PREFIX) && entry.endsWith(".tmp");
}

/** The root fs file names (`<hex>.img`, legacy `<hex>.ext4`) a snapshot directory's metadata references, if it parses that far. */
async function rootfsNamesOf(dir: string): Promise<string[]> {
  try {
    const json = JSON.parse(await readFile(join(dir, METADATA_FILE), "utf8")) as {
      rootfs?: { digest?: unknown; path?: unknown };
    };
    if (typeof json.rootfs?.digest === "string" && ROOTFS_DIGEST.test(json.rootfs.digest)) {
      return rootfsFileNames(json.rootfs.digest);
    }
    // format 1 named the file by path
    return typeof json.rootfs?.path === "string" ? [basename(json.rootfs.path)] : [];
  } catch {
    return [];
  }
}

function selectExpired(entries: SnapshotListEntry[], options: PruneOptions): Set<string> {
  const valid = entries
    .filter((e) => e.valid && e.metadata)
    .sort((a, b) => Date.parse(b.metadata!.createdAt) - Date.parse(a.metadata!.createdAt));
  if (options.keep === undefined && options.olderThan === undefined) return new Set();
  const cutoff =
    options.olderThan === undefined
      ? undefined
      : options.olderThan instanceof Date
        ? options.olderThan.getTime()
        : Date.now() - options.olderThan;
  const out = new Set<string>();
  valid.forEach((e, i) => {
    const beyondKeep = options.keep === undefined || i >= options.keep;
    const old = cutoff === undefined || Date.parse(e.metadata!.createdAt) < cutoff;
    if (beyondKeep && old) out.add(e.name);
  });
  return out;
}

/** Implementation of {@link SnapshotStore.prune}. */
export async function pruneStore(store: SnapshotStore, options: PruneOptions): Promise<PruneResult> {
  const result: PruneResult = {
    removedSnapshots: [],
    removedRootfs: [],
    removedTemp: [],
    skippedBusy: [],
    freedBytes: 0,
  };
  const entries = await store.list();
  const expired = selectExpired(entries, options);
  for (const e of entries) {
    // A newer format version, or a root fs leading out of its store, may be another setup's: keep it.
    // An older format version is superseded (this release bakes it again): invalid like any other.
    const version = e.error?.details.formatVersion;
    const older = typeof version === "number" && version < SNAPSHOT_FORMAT_VERSION;
    const foreign =
      (e.error?.code === "SNAPSHOT_VERSION" && !older) || e.error?.code === "SNAPSHOT_UNSAFE_PATH";
    const invalid = !e.valid && !foreign && options.removeInvalid !== false;
    if (!expired.has(e.name) && !invalid) continue;
    const lock = await store.tryLock(e.name);
    if (!lock) {
      result.skippedBusy.push(e.name);
      continue;
    }
    try {
      if (await store.removeLocked(e.name)) {
        result.removedSnapshots.push(e.name);
        result.freedBytes += e.diskUsage.allocatedBytes;
      }
    } finally {
      await lock.release();
    }
  }

  // Leftovers of publishes whose process died: their name's lock is free.
  let busyPublish = false;
  const names = await readdir(store.dir).catch(() => [] as string[]);
  for (const entry of names) {
    const owner = scratchOwner(entry);
    if (owner !== undefined) {
      const lock = await store.tryLock(owner).catch(() => undefined);
      if (!lock) {
        busyPublish = true;
        continue;
      }
      try {
        await rm(join(store.dir, entry), { recursive: true, force: true });
        result.removedTemp.push(entry);
      } finally {
        await lock.release();
      }
    } else if (isStaleLockTemp(entry)) {
      const st = await lstat(join(store.dir, entry)).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > 60_000) {
        await unlink(join(store.dir, entry)).catch(() => {});
        result.removedTemp.push(entry);
      }
    }
  }

  if (options.rootfsDir !== undefined) {
    if (busyPublish) {
      result.rootfsSkipped = "a publish is in progress in this store";
      return result;
    }
    const referenced = new Set<string>();
    for (const entry of await readdir(store.dir).catch(() => [] as string[])) {
      if (entry.startsWith(".")) continue;
      for (const n of await rootfsNamesOf(join(store.dir, entry))) {
        referenced.add(n);
        referenced.add(n.replace(/\.(img|ext4)$/, ".json")); // the builder's record of it
      }
    }
    const rootfsDir = resolve(options.rootfsDir);
    const grace = options.rootfsGraceMs ?? 600_000;
    for (const entry of await readdir(rootfsDir).catch(() => [] as string[])) {
      if (entry.startsWith(".")) continue;
      const path = join(rootfsDir, entry);
      if (referenced.has(entry)) continue;
      const st = await lstat(path).catch(() => undefined);
      if (!st?.isFile() || Date.now() - st.mtimeMs < grace) continue;
      await unlink(path).catch(() => {});
      result.removedRootfs.push(path);
      result.freedBytes += st.blocks * 512;
    }
  }
  return result;
}
