import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { MEMORY_FILE, METADATA_FILE, type SnapshotFileRecord } from "./metadata.js";

/** Files larger than this are recorded by size only (never read). */
export const CHECKSUM_MAX_BYTES = 64 * 1024 * 1024;

/** sha256 (hex) of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/**
 * Records every regular file of a freshly built snapshot directory except
 * `metadata.json`: its size, and its sha256 unless it is the memory file or
 * larger than {@link CHECKSUM_MAX_BYTES}. The memory file is only stat'ed.
 */
export async function describeFiles(dir: string): Promise<Record<string, SnapshotFileRecord>> {
  const out: Record<string, SnapshotFileRecord> = {};
  for (const name of (await readdir(dir)).sort()) {
    if (name === METADATA_FILE) continue;
    const st = await lstat(join(dir, name));
    if (!st.isFile()) continue;
    const rec: SnapshotFileRecord = { size: st.size };
    if (name !== MEMORY_FILE && st.size <= CHECKSUM_MAX_BYTES) rec.sha256 = await sha256File(join(dir, name));
    out[name] = rec;
  }
  return out;
}

/** Disk usage of a directory tree. */
export interface DiskUsage {
  /** Bytes actually allocated (sparse files count only their written blocks). */
  allocatedBytes: number;
  /** Sum of apparent file sizes. */
  apparentBytes: number;
}

/** Measures a directory tree with lstat only (no file is read). */
export async function diskUsage(path: string): Promise<DiskUsage> {
  const usage: DiskUsage = { allocatedBytes: 0, apparentBytes: 0 };
  const walk = async (p: string): Promise<void> => {
    let st: Awaited<ReturnType<typeof lstat>>;
    try {
      st = await lstat(p);
    } catch {
      return;
    }
    usage.allocatedBytes += st.blocks * 512;
    if (st.isDirectory()) {
      const names = await readdir(p).catch(() => [] as string[]);
      for (const n of names) await walk(join(p, n));
    } else {
      usage.apparentBytes += st.size;
    }
  };
  await walk(path);
  return usage;
}
