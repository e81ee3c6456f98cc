import { createHash, randomBytes } from "node:crypto";
import { lstat, mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { type ArtifactLimits, downloadSnapshotArtifact, type SnapshotArtifact } from "./artifact/pull.js";
import {
  type PushSnapshotOptions,
  type PushSnapshotResult,
  pushSnapshot,
  type TransferProgress,
} from "./artifact/push.js";
import type { SnapshotRegistry } from "./artifact/registry.js";
import { SnapshotError } from "./errors.js";
import { type DiskUsage, diskUsage } from "./files.js";
import {
  type LoadedSnapshot,
  type LoadOptions,
  loadSnapshot,
  readSnapshotMetadata,
  validateSnapshotFiles,
} from "./load.js";
import { acquireLock, type LockOptions, type SnapshotLock, tryAcquireLock } from "./lock.js";
import { METADATA_FILE, type SnapshotMetadata, type SnapshotMetadataDraft } from "./metadata.js";
import { assertSnapshotName, defaultSnapshotName } from "./names.js";
import { assertSafePath } from "./paths.js";
import { type PruneOptions, type PruneResult, pruneStore } from "./prune.js";
import {
  buildAndPlace,
  OLD_PREFIX,
  type PublishOptions,
  type PublishResult,
  scratchName,
} from "./publish.js";

/** Default snapshots directory: `$SUPERMACHINE_SNAPSHOTS_DIR` or `~/.local/supermachine-snapshots`. */
export function defaultSnapshotsDir(): string {
  return process.env.SUPERMACHINE_SNAPSHOTS_DIR ?? join(homedir(), ".local", "supermachine-snapshots");
}

/** Options of {@link SnapshotStore}. */
export interface SnapshotStoreOptions {
  /** The snapshots directory. Default {@link defaultSnapshotsDir}. */
  dir?: string;
  /** Staleness of locks held from another host (ms), see {@link LockOptions.staleMs}. Default 120 000. */
  lockStaleMs?: number;
  /**
   * Directories the snapshots' root fs images may live in, used by every
   * load, lookup, list and publish of this store unless the call passes its
   * own (see {@link LoadOptions.rootfsDirs}). Default: the default root fs
   * directory of `@supermachine/oci`.
   */
  rootfsDirs?: string[];
}

/** Identifies a snapshot in the store: an explicit name, or the default name derived from `ref` + `fingerprint`. */
export interface SnapshotKey {
  /** Stable name; a new fingerprint under the same name replaces the old snapshot. */
  name?: string;
  /** The image reference (names the default directory). */
  ref: string;
  /** {@link computeFingerprint} of the bake inputs. */
  fingerprint: string;
}

/** Options of {@link SnapshotStore.lookup}. */
export interface LookupOptions extends LoadOptions {
  /** Called when a snapshot exists under the name but is unusable (corrupt, other version or assets, ...). */
  onInvalid?: (error: SnapshotError) => void;
}

/** One snapshot directory as {@link SnapshotStore.list} reports it. */
export interface SnapshotListEntry {
  /** Directory name. */
  name: string;
  /** Absolute path. */
  dir: string;
  /** Whether it validated. */
  valid: boolean;
  /** The metadata, when it parsed (also for some invalid snapshots, e.g. a missing root fs). */
  metadata?: SnapshotMetadata;
  /** Why it is invalid. */
  error?: SnapshotError;
  /** Space it takes (the root fs is not included: it is shared). */
  diskUsage: DiskUsage;
}

/**
 * The on-disk snapshot store: one directory per snapshot under `dir`, an
 * atomic publish under a cross-process lock per name, validation on load,
 * listing and pruning. See the package README for the format.
 */
export class SnapshotStore {
  /** Absolute path of the snapshots directory. */
  readonly dir: string;
  private readonly lockStaleMs: number;
  private readonly rootfsDirs?: string[];

  constructor(options: SnapshotStoreOptions = {}) {
    this.dir = resolve(options.dir ?? defaultSnapshotsDir());
    this.lockStaleMs = options.lockStaleMs ?? 120_000;
    this.rootfsDirs = options.rootfsDirs;
  }

  /** `options` with this store's `rootfsDirs` unless they name their own. */
  private withStoreDefaults<T extends LoadOptions>(options: T): T {
    return this.rootfsDirs && options.rootfsDirs === undefined
      ? { ...options, rootfsDirs: this.rootfsDirs }
      : options;
  }

  /** The directory name a key maps to (its `name`, else the default name), validated. */
  nameFor(key: SnapshotKey): string {
    const name = key.name ?? defaultSnapshotName(key.ref, key.fingerprint);
    assertSnapshotName(name);
    return name;
  }

  /** Absolute path of the snapshot called `name`. */
  pathOf(name: string): string {
    assertSnapshotName(name);
    return join(this.dir, name);
  }

  /**
   * Returns the valid snapshot for `key` (same fingerprint, every check of
   * {@link loadSnapshot} passing), or undefined: absent, another
   * fingerprint under that name, or invalid (reported to `onInvalid`).
   */
  async lookup(
    key: SnapshotKey,
    options: LookupOptions = {},
  ): Promise<(LoadedSnapshot & { name: string }) | undefined> {
    const name = this.nameFor(key);
    try {
      const loaded = await loadSnapshot(join(this.dir, name), this.withStoreDefaults(options));
      if (loaded.metadata.fingerprint !== key.fingerprint) return undefined;
      return { ...loaded, name };
    } catch (err) {
      if (!(err instanceof SnapshotError)) throw err;
      if (err.code !== "SNAPSHOT_NOT_FOUND") options.onInvalid?.(err);
      return undefined;
    }
  }

  /**
   * Publishes the snapshot for `key`, building it at most once across
   * processes: takes the name's lock (waiting while another live process
   * holds it, taking it over if its holder died), returns the existing
   * snapshot if a valid one with this fingerprint is there by then,
   * otherwise runs `build(tmpDir)` in a temp directory inside the store,
   * fills in and validates the metadata it returns, and renames the
   * directory into place (replacing an older snapshot of the same name).
   * A failed build leaves nothing behind and the old snapshot intact; the
   * build's own error is rethrown unchanged.
   */
  async publish(
    key: SnapshotKey,
    build: (tmpDir: string) => Promise<SnapshotMetadataDraft>,
    options: PublishOptions = {},
  ): Promise<PublishResult> {
    const name = this.nameFor(key);
    // The build directory's files reach QEMU inside option strings.
    assertSafePath(this.dir, "snapshots directory", { qemu: true, details: { field: "(directory)" } });
    options = this.withStoreDefaults(options);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const lock = await this.lock(name, {
      timeoutMs: options.lockTimeoutMs,
      signal: options.signal,
      onWait: options.onWait ? () => options.onWait?.() : undefined,
    });
    try {
      const existing = await this.lookup(key, options);
      if (existing) return { ...existing, built: false };
      const placed = await buildAndPlace(this.dir, name, key.fingerprint, build, options);
      return { ...placed, name, built: true };
    } finally {
      await lock.release();
    }
  }

  /**
   * Loads and validates a snapshot: `pathOrName` is a snapshot directory,
   * its `restore.snap`, or (no `/` in it) the name of a snapshot in this store.
   */
  async load(pathOrName: string, options: LoadOptions = {}): Promise<LoadedSnapshot> {
    const isName = !pathOrName.includes("/") && pathOrName !== "." && pathOrName !== "..";
    return loadSnapshot(isName ? join(this.dir, pathOrName) : pathOrName, this.withStoreDefaults(options));
  }

  /** Loads and validates the snapshot at a directory or its `restore.snap` path. See {@link loadSnapshot}. */
  static async load(pathOrRestoreSnap: string, options: LoadOptions = {}): Promise<LoadedSnapshot> {
    return loadSnapshot(pathOrRestoreSnap, options);
  }

  /**
   * Pulls a snapshot artifact (see {@link findSnapshotArtifact}) into this
   * store under `key`, through the same lock, temp directory and atomic
   * rename as {@link SnapshotStore.publish}: every blob is verified against
   * its digest on the way in and the result validated like any snapshot
   * (its root fs must already be in a root fs store); on any failure, a
   * digest mismatch included, nothing is kept. Returns the existing snapshot
   * (`built: false`) when a valid one with this fingerprint is already there.
   */
  async pull(
    key: SnapshotKey,
    registry: SnapshotRegistry,
    artifact: SnapshotArtifact,
    options: PublishOptions & {
      limits?: Partial<ArtifactLimits>;
      onProgress?: (p: TransferProgress) => void;
      /**
       * Checks the downloaded files before they are stored (e.g. the engine's
       * `machine.json`, which this package does not read); throwing discards them.
       */
      verify?: (dir: string, metadata: SnapshotMetadata) => Promise<void> | void;
    } = {},
  ): Promise<PublishResult> {
    if (artifact.metadata.fingerprint !== key.fingerprint) {
      throw new SnapshotError(
        "SNAPSHOT_ARTIFACT_INVALID",
        `snapshot artifact of fingerprint ${artifact.metadata.fingerprint} cannot be stored as ${key.fingerprint}`,
        { details: { problem: "fingerprint" } },
      );
    }
    return this.publish(
      key,
      async (tmpDir) => {
        await downloadSnapshotArtifact(registry, artifact, tmpDir, options);
        await options.verify?.(tmpDir, artifact.metadata);
        const { rootfs } = artifact.metadata;
        return {
          ...artifact.metadata,
          files: undefined,
          rootfs: { digest: rootfs.digest, size: rootfs.size, sha256: rootfs.sha256 },
        };
      },
      options,
    );
  }

  /**
   * Publishes the snapshot `pathOrName` of this store as an OCI artifact in
   * `registry` (see {@link pushSnapshot}).
   */
  async push(
    pathOrName: string,
    registry: SnapshotRegistry,
    options: PushSnapshotOptions & LoadOptions = {},
  ): Promise<PushSnapshotResult> {
    return pushSnapshot(await this.load(pathOrName, options), registry, options);
  }

  /** Takes this store's cross-process lock for `name` (see {@link acquireLock}). */
  async lock(name: string, options: LockOptions = {}): Promise<SnapshotLock> {
    assertSnapshotName(name);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    return acquireLock(this.dir, name, { staleMs: this.lockStaleMs, ...options });
  }

  /** Takes the lock for `name` if no live process holds it, else returns undefined. */
  async tryLock(name: string): Promise<SnapshotLock | undefined> {
    assertSnapshotName(name);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    return tryAcquireLock(this.dir, name, { staleMs: this.lockStaleMs });
  }

  /**
   * Every snapshot directory in the store (entries starting with `.` —
   * temp, retired and lock entries — are skipped), valid or not, with its
   * disk usage, sorted by name. Memory files are only stat'ed.
   */
  async list(options: LoadOptions = {}): Promise<SnapshotListEntry[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    const out: SnapshotListEntry[] = [];
    for (const name of names.sort()) {
      if (name.startsWith(".")) continue;
      const dir = join(this.dir, name);
      const st = await stat(dir).catch(() => undefined);
      if (!st?.isDirectory()) continue;
      const entry: SnapshotListEntry = { name, dir, valid: false, diskUsage: await diskUsage(dir) };
      try {
        entry.metadata = await readSnapshotMetadata(dir);
        await validateSnapshotFiles(dir, entry.metadata, {
          verifyChecksums: false,
          ...this.withStoreDefaults(options),
        });
        entry.valid = true;
      } catch (err) {
        if (!(err instanceof SnapshotError)) throw err;
        entry.error = err;
      }
      out.push(entry);
    }
    return out;
  }

  /**
   * Removes the snapshot `name` (waiting for its lock, so never under a
   * running publish). Returns false when there was none. Processes already
   * restored from it keep working (their files stay open).
   */
  async remove(name: string, options: Pick<LockOptions, "timeoutMs" | "signal"> = {}): Promise<boolean> {
    const lock = await this.lock(name, options);
    try {
      return await this.removeLocked(name);
    } finally {
      await lock.release();
    }
  }

  /** @internal Removes `name` while its lock is held. */
  async removeLocked(name: string): Promise<boolean> {
    const target = join(this.dir, name);
    if (!(await lstat(target).catch(() => undefined))) return false;
    const old = join(this.dir, scratchName(OLD_PREFIX, name));
    await rename(target, old);
    await rm(old, { recursive: true, force: true });
    return true;
  }

  /**
   * Removes snapshots (invalid ones, and those beyond `keep` newest and/or
   * older than `olderThan`), leftovers of crashed publishes, and — given
   * `rootfsDir` — root fs images no remaining snapshot references. See
   * {@link PruneOptions}.
   */
  async prune(options: PruneOptions = {}): Promise<PruneResult> {
    return pruneStore(this, options);
  }

  /**
   * Writes a snapshot derived from a running VM into `destDir` (any
   * directory; replaced if it already holds a snapshot, refused with
   * `SNAPSHOT_DEST_NOT_EMPTY` if it holds anything else). `capture(tmpDir)`
   * writes the engine files; the metadata is `base`'s with trigger
   * `vm-snapshot`, a fresh fingerprint and `parentFingerprint` = base's.
   * Same temp-dir, lock and rename steps as {@link SnapshotStore.publish}.
   */
  static async writeDerived(
    destDir: string,
    base: SnapshotMetadata,
    capture: (tmpDir: string) => Promise<void>,
    options: PublishOptions = {},
  ): Promise<LoadedSnapshot> {
    const dest = resolve(destDir);
    const parent = dirname(dest);
    const name = basename(dest);
    const fingerprint = createHash("sha256")
      .update(`derived:${base.fingerprint}:${randomBytes(16).toString("hex")}`)
      .digest("hex");
    const store = new SnapshotStore({ dir: parent, rootfsDirs: options.rootfsDirs });
    const result = await store.publish(
      { name, ref: base.image.ref, fingerprint },
      async (tmpDir) => {
        const st = await lstat(dest).catch(() => undefined);
        const existing = st?.isDirectory() ? await readdir(dest) : undefined;
        if (st && (!existing || (existing.length > 0 && !existing.includes(METADATA_FILE)))) {
          throw new SnapshotError(
            "SNAPSHOT_DEST_NOT_EMPTY",
            `${dest} exists and is not a snapshot directory; refusing to replace it`,
            { details: { dir: dest } },
          );
        }
        await capture(tmpDir);
        return {
          ...base,
          trigger: "vm-snapshot",
          parentFingerprint: base.fingerprint,
          fingerprint,
          createdAt: undefined,
          files: undefined,
        };
      },
      options,
    );
    return {
      dir: result.dir,
      metadata: result.metadata,
      stateFile: result.stateFile,
      memoryFile: result.memoryFile,
      rootfsPath: result.rootfsPath,
    };
  }
}
