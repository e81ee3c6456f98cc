import { randomBytes } from "node:crypto";
import { chmod, lstat, mkdir, open, readdir, rename, rm, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { SnapshotError } from "./errors.js";
import { describeFiles, sha256File } from "./files.js";
import type { LoadedSnapshot, LoadOptions } from "./load.js";
import { rootfsFileNames, validateSnapshotFiles } from "./load.js";
import {
  MEMORY_FILE,
  METADATA_FILE,
  SNAPSHOT_FORMAT_VERSION,
  type SnapshotMetadata,
  type SnapshotMetadataDraft,
  STATE_FILE,
} from "./metadata.js";
import { parseSnapshotMetadata } from "./parse-metadata.js";

/** Prefix of build directories: `.tmp.<random>.<name>`. */
export const TEMP_PREFIX = ".tmp.";
/** Prefix of replaced snapshots awaiting deletion: `.old.<random>.<name>`. */
export const OLD_PREFIX = ".old.";

/** Name of a fresh build (`.tmp.`) or retired (`.old.`) directory for snapshot `name`. */
export function scratchName(prefix: string, name: string): string {
  return `${prefix}${randomBytes(6).toString("hex")}.${name}`;
}

/** The snapshot name a `.tmp.`/`.old.` entry belongs to, or undefined for other entries. */
export function scratchOwner(entry: string): string | undefined {
  for (const prefix of [TEMP_PREFIX, OLD_PREFIX]) {
    if (!entry.startsWith(prefix)) continue;
    const rest = entry.slice(prefix.length);
    const dot = rest.indexOf(".");
    return dot > 0 && dot < rest.length - 1 ? rest.slice(dot + 1) : undefined;
  }
  return undefined;
}

/**
 * Removes the `.tmp.`/`.old.` entries of snapshot `name`. Call only while
 * holding that name's lock: then any such entry is left over from a
 * process that died mid-publish. Returns the removed entry names.
 */
export async function removeScratch(dir: string, name: string): Promise<string[]> {
  const removed: string[] = [];
  const entries = await readdir(dir).catch(() => [] as string[]);
  for (const e of entries) {
    if (scratchOwner(e) !== name) continue;
    await rm(join(dir, e), { recursive: true, force: true });
    removed.push(e);
  }
  return removed;
}

/**
 * Completes a build callback's draft into full metadata: fills
 * `formatVersion`, `fingerprint`, `createdAt`, measures `files` and
 * `rootfs.size` from disk, then validates strictly
 * (`SNAPSHOT_METADATA_INVALID` names the bad field).
 */
export async function finalizeMetadata(
  buildDir: string,
  draft: SnapshotMetadataDraft,
  fingerprint: string,
): Promise<SnapshotMetadata> {
  if (typeof draft !== "object" || draft === null) {
    throw new SnapshotError(
      "SNAPSHOT_METADATA_INVALID",
      "the build callback must resolve to snapshot metadata",
      {
        details: { field: "(root)" },
      },
    );
  }
  if (draft.fingerprint !== undefined && draft.fingerprint !== fingerprint) {
    throw new SnapshotError(
      "SNAPSHOT_METADATA_INVALID",
      `metadata field \`fingerprint\` ${draft.fingerprint} differs from the fingerprint being published (${fingerprint})`,
      { details: { field: "fingerprint" } },
    );
  }
  const rootfs = await measureRootfs(draft.rootfs);
  const files = await describeFiles(buildDir);
  for (const required of [STATE_FILE, MEMORY_FILE]) {
    if (!files[required]) {
      throw new SnapshotError("SNAPSHOT_CORRUPT", `the build did not write ${required} into ${buildDir}`, {
        details: { dir: buildDir, file: required, problem: "missing" },
      });
    }
  }
  return parseSnapshotMetadata({
    ...draft,
    formatVersion: draft.formatVersion ?? SNAPSHOT_FORMAT_VERSION,
    fingerprint,
    createdAt: draft.createdAt ?? new Date().toISOString(),
    extraFiles: draft.extraFiles ?? [],
    rootfs,
    files,
  });
}

/**
 * The root fs record of a draft: `{digest, size, sha256}`, measured from
 * `path` when the draft names one (which must be the store's file name for
 * the digest; its sha256 is computed unless the draft gives it), else taken
 * from the draft (a derived snapshot).
 */
async function measureRootfs(
  r: SnapshotMetadataDraft["rootfs"] | undefined,
): Promise<{ digest: unknown; size: unknown; sha256: unknown }> {
  if (typeof r !== "object" || r === null) return { digest: undefined, size: undefined, sha256: undefined };
  if (r.path === undefined) return { digest: r.digest, size: r.size, sha256: r.sha256 };
  const path = resolve(r.path);
  const st = await stat(path).catch(() => undefined);
  if (!st) {
    throw new SnapshotError(
      "SNAPSHOT_ROOTFS_MISSING",
      `root fs ${path} given for the snapshot does not exist`,
      {
        details: { rootfs: path, digest: r.digest },
      },
    );
  }
  const names = rootfsFileNames(r.digest);
  if (!names.includes(basename(path))) {
    throw new SnapshotError(
      "SNAPSHOT_METADATA_INVALID",
      `root fs ${path} is not named after its digest ${r.digest} (${names.join(" or ")})`,
      { details: { field: "rootfs.path" } },
    );
  }
  // the builder may vouch for the bytes it wrote (`@supermachine/oci` records their sha256 once)
  return { digest: r.digest, size: st.size, sha256: r.sha256 ?? (await sha256File(path)) };
}

/** Writes `metadata.json` durably (temp file, fsync, rename) into `dir`. */
export async function writeMetadata(dir: string, metadata: SnapshotMetadata): Promise<void> {
  const tmp = join(dir, `.${METADATA_FILE}.tmp`);
  const fh = await open(tmp, "w", 0o600);
  try {
    await fh.writeFile(`${JSON.stringify(metadata, null, 2)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(dir, METADATA_FILE));
}

/**
 * Makes a built snapshot private: the directory 0700, every file 0600. The
 * memory file keeps group read if the engine granted it (0640): a confined
 * QEMU, running under its own uid, reads it through that group.
 */
export async function restrictModes(buildDir: string): Promise<void> {
  await chmod(buildDir, 0o700);
  for (const name of await readdir(buildDir)) {
    const p = join(buildDir, name);
    const st = await lstat(p);
    if (st.isFile()) await chmod(p, 0o600 | (name === MEMORY_FILE ? st.mode & 0o040 : 0));
    else if (st.isDirectory()) await chmod(p, 0o700);
  }
}

/**
 * Moves a finished build directory to `dir/name`. When a snapshot is
 * already there it is first renamed aside to `.old.<random>.<name>` and
 * deleted after the new one is in place; readers see the old snapshot or
 * the new one, never a partial one.
 */
export async function moveIntoPlace(dir: string, buildDir: string, name: string): Promise<void> {
  const target = join(dir, name);
  try {
    await rename(buildDir, target);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "ENOTEMPTY" && code !== "EEXIST" && code !== "ENOTDIR" && code !== "EISDIR") throw err;
  }
  const old = join(dir, scratchName(OLD_PREFIX, name));
  await rename(target, old);
  try {
    await rename(buildDir, target);
  } catch (err) {
    await rename(old, target).catch(() => {});
    throw err;
  }
  await rm(old, { recursive: true, force: true }).catch(() => {});
}

/** Options of a publish. */
export interface PublishOptions extends LoadOptions {
  /** Give up waiting for another process's bake of the same name after this long (ms). Default: wait. */
  lockTimeoutMs?: number;
  /** Abort waiting for the lock. */
  signal?: AbortSignal;
  /** Called once if another live process holds the name's lock and this one starts waiting. */
  onWait?: () => void;
}

/** The result of a publish. */
export interface PublishResult extends LoadedSnapshot {
  /** The snapshot's name (its directory name). */
  name: string;
  /** True when this call ran the build; false when a valid snapshot was already there (e.g. another process baked it meanwhile). */
  built: boolean;
}

/**
 * Runs `build` in a fresh `.tmp.` directory inside `dir`, finalizes and
 * validates the metadata, writes it and moves the directory into place.
 * On any failure the build directory is removed and an older snapshot of
 * the same name is left as it was. The caller must hold the name's lock.
 */
export async function buildAndPlace(
  dir: string,
  name: string,
  fingerprint: string,
  build: (buildDir: string) => Promise<SnapshotMetadataDraft>,
  options: LoadOptions,
): Promise<LoadedSnapshot> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await removeScratch(dir, name);
  const buildDir = join(dir, scratchName(TEMP_PREFIX, name));
  await mkdir(buildDir, { mode: 0o700 });
  try {
    const draft = await build(buildDir);
    await restrictModes(buildDir);
    const metadata = await finalizeMetadata(buildDir, draft, fingerprint);
    const rootfsPath = await validateSnapshotFiles(buildDir, metadata, {
      ...options,
      verifyChecksums: false,
    });
    await writeMetadata(buildDir, metadata);
    await moveIntoPlace(dir, buildDir, name);
    const target = join(dir, name);
    return {
      dir: target,
      metadata,
      stateFile: join(target, STATE_FILE),
      memoryFile: join(target, MEMORY_FILE),
      rootfsPath,
    };
  } catch (err) {
    await rm(buildDir, { recursive: true, force: true });
    throw err;
  }
}
