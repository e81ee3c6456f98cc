import type { Stats } from "node:fs";
import { lstat, readFile, realpath, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { SnapshotError } from "./errors.js";
import { sha256File } from "./files.js";
import {
  MEMORY_FILE,
  METADATA_FILE,
  type SnapshotAssets,
  type SnapshotMetadata,
  type SnapshotRootfs,
  STATE_FILE,
} from "./metadata.js";
import { metadataFormatVersion, parseSnapshotMetadata, ROOTFS_DIGEST } from "./parse-metadata.js";
import { assertSafePath, defaultRootfsDir, isInside } from "./paths.js";

/** A validated snapshot on disk. */
export interface LoadedSnapshot {
  /** Absolute path of the snapshot directory. */
  dir: string;
  /** Its parsed, validated metadata. */
  metadata: SnapshotMetadata;
  /** Absolute path of `restore.snap`. */
  stateFile: string;
  /** Absolute path of `memory.bin`. */
  memoryFile: string;
  /** Absolute path of the root fs image on this host, found by its digest in the root fs stores. */
  rootfsPath: string;
}

/** Options of {@link loadSnapshot}. */
export interface LoadOptions {
  /** Guest asset hashes of the running build; a snapshot baked with others fails `SNAPSHOT_ASSET_MISMATCH`. */
  expectedAssets?: SnapshotAssets;
  /** Check the sha256 of the small files (`restore.snap`, ...). Default true; the memory file is never read. */
  verifyChecksums?: boolean;
  /**
   * The root fs stores: directories searched, in order, for the snapshot's
   * root fs image `<hex>.img` or `<hex>.ext4` (a regular file, symlinks resolved inside
   * the store). Default: `[defaultRootfsDir()]`, where `@supermachine/oci`
   * builds root fs images by default.
   */
  rootfsDirs?: string[];
}

const MIB = 1024 * 1024;

async function statOrUndefined(path: string) {
  try {
    return await stat(path);
  } catch (err) {
    if (
      (err as NodeJS.ErrnoException).code === "ENOENT" ||
      (err as NodeJS.ErrnoException).code === "ENOTDIR"
    ) {
      return undefined;
    }
    throw err;
  }
}

function corrupt(
  dir: string,
  what: string,
  details: Record<string, unknown>,
  cause?: unknown,
): SnapshotError {
  return new SnapshotError("SNAPSHOT_CORRUPT", `snapshot ${dir}: ${what}`, {
    cause,
    details: { dir, ...details },
  });
}

/** Resolves a snapshot directory, or a file inside one (`restore.snap`, `metadata.json`), to the directory. */
export async function resolveSnapshotDir(pathOrFile: string): Promise<string> {
  const abs = resolve(pathOrFile);
  // QEMU gets `<dir>/memory.bin` and `<dir>/restore.snap` inside option strings.
  assertSafePath(abs, "snapshot path", { qemu: true, details: { field: "(directory)" } });
  const st = await statOrUndefined(abs);
  if (!st) {
    throw new SnapshotError("SNAPSHOT_NOT_FOUND", `no snapshot at ${abs}: path does not exist`, {
      details: { path: abs },
    });
  }
  if (st.isDirectory()) return abs;
  const name = basename(abs);
  if (name === STATE_FILE || name === METADATA_FILE) return dirname(abs);
  throw new SnapshotError(
    "SNAPSHOT_NOT_FOUND",
    `no snapshot at ${abs}: expected a snapshot directory or its ${STATE_FILE}`,
    { details: { path: abs } },
  );
}

/** Reads and strictly parses `metadata.json` of a snapshot directory (no file checks). */
export async function readSnapshotMetadata(dir: string): Promise<SnapshotMetadata> {
  const path = join(dir, METADATA_FILE);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw corrupt(dir, `${METADATA_FILE} is missing`, { file: METADATA_FILE });
    }
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw corrupt(
      dir,
      `${METADATA_FILE} is not valid JSON (${(err as Error).message})`,
      { file: METADATA_FILE },
      err,
    );
  }
  try {
    return parseSnapshotMetadata(json);
  } catch (err) {
    if (err instanceof SnapshotError && err.code === "SNAPSHOT_METADATA_INVALID") {
      throw corrupt(
        dir,
        `${METADATA_FILE}: ${err.message}`,
        { file: METADATA_FILE, field: err.details.field },
        err,
      );
    }
    if (err instanceof SnapshotError && err.code === "SNAPSHOT_UNSAFE_PATH") {
      throw new SnapshotError("SNAPSHOT_UNSAFE_PATH", `snapshot ${dir}: ${METADATA_FILE}: ${err.message}`, {
        cause: err,
        details: { dir, file: METADATA_FILE, ...err.details },
      });
    }
    if (err instanceof SnapshotError && err.code === "SNAPSHOT_VERSION") {
      throw new SnapshotError("SNAPSHOT_VERSION", `snapshot ${dir}: ${err.message}`, {
        details: { dir, formatVersion: metadataFormatVersion(json) },
      });
    }
    throw err;
  }
}

/**
 * Checks a snapshot's files against its metadata with `stat` only (plus
 * the checksums of small files when asked): every recorded file present
 * with its recorded size, the memory file exactly `memoryMib` MiB, the
 * guest assets the expected ones, the root fs image found by its digest in
 * one of `rootfsDirs` (see {@link resolveRootfs}). Returns the root fs path.
 */
export async function validateSnapshotFiles(
  dir: string,
  metadata: SnapshotMetadata,
  options: LoadOptions = {},
): Promise<string> {
  const memWant = metadata.memoryMib * MIB;
  const memRecorded = metadata.files[MEMORY_FILE]?.size;
  if (memRecorded !== memWant) {
    throw corrupt(
      dir,
      `${METADATA_FILE} records ${MEMORY_FILE} as ${memRecorded} bytes, not memoryMib ${metadata.memoryMib} MiB`,
      {
        file: MEMORY_FILE,
        field: `files.${MEMORY_FILE}.size`,
      },
    );
  }
  for (const [name, rec] of Object.entries(metadata.files)) {
    const st = await statOrUndefined(join(dir, name));
    if (!st?.isFile()) {
      throw corrupt(dir, `${name} is missing`, { file: name, problem: "missing" });
    }
    if (st.size !== rec.size) {
      const what = name === MEMORY_FILE ? "guest memory" : "file";
      throw corrupt(
        dir,
        `${name} (${what}) is ${st.size} bytes, expected ${rec.size} (truncated or overwritten)`,
        {
          file: name,
          problem: "size",
          size: st.size,
          expectedSize: rec.size,
        },
      );
    }
    if (rec.sha256 && options.verifyChecksums !== false && name !== MEMORY_FILE) {
      const got = await sha256File(join(dir, name));
      if (got !== rec.sha256) {
        throw corrupt(dir, `${name} checksum mismatch (sha256 ${got}, expected ${rec.sha256})`, {
          file: name,
          problem: "checksum",
        });
      }
    }
  }
  const want = options.expectedAssets;
  if (want) {
    for (const key of ["kernelHash", "agentHash"] as const) {
      if (metadata.assets[key] !== want[key]) {
        const what = key === "kernelHash" ? "guest kernel" : "guest agent";
        throw new SnapshotError(
          "SNAPSHOT_ASSET_MISMATCH",
          `snapshot ${dir} was baked with another ${what} build (${key} ${metadata.assets[key]}, this build has ${want[key]})`,
          { details: { dir, field: `assets.${key}`, found: metadata.assets[key], expected: want[key] } },
        );
      }
    }
  }
  return resolveRootfs(dir, metadata.rootfs, options.rootfsDirs);
}

/**
 * Finds a snapshot's root fs image by its digest: `<hex>.img` (or a legacy `<hex>.ext4`) in the first
 * of `rootfsDirs` (default `[defaultRootfsDir()]`) that has it, a regular
 * file (not a symlink) still inside that store once symlinks are resolved,
 * of the recorded size. Returns its path. Throws `SNAPSHOT_ROOTFS_MISSING`
 * (no store has it; `details.digest`, `details.rootfsDirs`),
 * `SNAPSHOT_ROOTFS_CHANGED` (a file of another size) or
 * `SNAPSHOT_UNSAFE_PATH` (a symlink, or a path leading out of the store).
 */
export async function resolveRootfs(
  dir: string,
  rootfs: Pick<SnapshotRootfs, "digest" | "size">,
  rootfsDirsOption?: string[],
): Promise<string> {
  const rootfsDirs = (rootfsDirsOption ?? [defaultRootfsDir()]).map((d) => resolve(d));
  const names = rootfsFileNames(rootfs.digest);
  for (const store of rootfsDirs) {
    let path = "";
    let link: Stats | undefined;
    for (const name of names) {
      path = join(store, name);
      link = await lstat(path).catch(() => undefined);
      if (link) break;
    }
    if (!link) continue;
    const outside = (problem: string) =>
      new SnapshotError(
        "SNAPSHOT_UNSAFE_PATH",
        `snapshot ${dir}: root fs ${path} ${problem} (root fs stores: ${rootfsDirs.join(", ")})`,
        { details: { dir, field: "rootfs.digest", path, problem, rootfsDirs } },
      );
    if (!link.isFile()) throw outside(link.isSymbolicLink() ? "is a symbolic link" : "is not a regular file");
    // Symlinked directories on the way must not lead out of the store either.
    const real = await realpath(path);
    const realStore = await realpath(store).catch(() => undefined);
    if (realStore === undefined || !isInside(realStore, real) || real === realStore) {
      throw outside(`resolves to ${real}, outside the root fs stores`);
    }
    if (link.size !== rootfs.size) {
      throw new SnapshotError(
        "SNAPSHOT_ROOTFS_CHANGED",
        `snapshot ${dir} needs root fs ${rootfs.digest} of ${rootfs.size} bytes, found ${link.size} bytes at ${path}`,
        { details: { dir, rootfs: path, digest: rootfs.digest, size: link.size, expectedSize: rootfs.size } },
      );
    }
    return path;
  }
  throw new SnapshotError(
    "SNAPSHOT_ROOTFS_MISSING",
    `snapshot ${dir} needs root fs ${rootfs.digest} (${rootfs.size} bytes), which no root fs store has (looked in ${rootfsDirs.join(", ")}); it is rebuilt from the image's layers by Image.build/Image.fromSnapshot when they can be pulled`,
    { details: { dir, digest: rootfs.digest, size: rootfs.size, rootfsDirs } },
  );
}

/** The file name of a root fs image in a store: `<hex>.img` of its `sha256:<hex>` digest. */
export function rootfsFileName(digest: string): string {
  return rootfsFileNames(digest)[0];
}

/**
 * The names a root fs image of `digest` may have in a store, in the order
 * they are looked for: `<hex>.img`, then `<hex>.ext4` (how versions before
 * 0.5 named their images, all ext4). Throws `SNAPSHOT_METADATA_INVALID` for
 * a digest that is not `sha256:<64 hex>`.
 */
export function rootfsFileNames(digest: string): [current: string, legacy: string] {
  if (!ROOTFS_DIGEST.test(digest)) {
    throw new SnapshotError(
      "SNAPSHOT_METADATA_INVALID",
      `root fs digest ${JSON.stringify(digest)} is not sha256:<64 hex>`,
      {
        details: { field: "rootfs.digest" },
      },
    );
  }
  const hex = digest.slice("sha256:".length);
  return [`${hex}.img`, `${hex}.ext4`];
}

/**
 * Loads and validates a snapshot from its directory or its `restore.snap`
 * path. Never reads the memory file. Throws a {@link SnapshotError}:
 * `SNAPSHOT_NOT_FOUND`, `SNAPSHOT_CORRUPT` (missing or truncated file, bad
 * metadata; `details.file`/`details.field` say which), `SNAPSHOT_VERSION`,
 * `SNAPSHOT_UNSAFE_PATH` (a guest path in the metadata, or the directory's
 * own path, is unsafe, or the root fs leads out of its store), `SNAPSHOT_ASSET_MISMATCH`,
 * `SNAPSHOT_ROOTFS_MISSING` or `SNAPSHOT_ROOTFS_CHANGED`.
 */
export async function loadSnapshot(
  pathOrRestoreSnap: string,
  options: LoadOptions = {},
): Promise<LoadedSnapshot> {
  const dir = await resolveSnapshotDir(pathOrRestoreSnap);
  const metadata = await readSnapshotMetadata(dir);
  const rootfsPath = await validateSnapshotFiles(dir, metadata, options);
  return { dir, metadata, stateFile: join(dir, STATE_FILE), memoryFile: join(dir, MEMORY_FILE), rootfsPath };
}
