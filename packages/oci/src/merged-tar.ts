import { LayerInvalidError } from "./errors.js";
import type { MergedInode, MergedNode, MergedTree } from "./layer-merge.js";
import { type ByteSink, type TarHeader, TarWriter } from "./tar-writer.js";

/** Counts used to size the file system made from a merged tar. */
export interface MergeStats {
  /** Names written (including hardlinks and the root). */
  entries: number;
  /** Distinct inodes. */
  inodes: number;
  /** Sum of regular file sizes. */
  dataBytes: number;
  /** 4 KiB blocks needed for file data, directories, long symlinks and xattrs (estimate). */
  blocks4k: number;
  /** Size of the tar written (0 until {@link writeMergedTar} ran). */
  tarBytes: number;
}

/** One name of the merged tree, in tar order. */
interface MergedTarItem {
  /** Path in the tar (`.` for the root). */
  path: string;
  inode: MergedInode;
  /** For a further name of an inode already written: the first name (a hardlink). */
  linkTo?: string;
}

/** The merged tree flattened in tar order, with the counts that size the file system. */
export interface MergedTarPlan {
  readonly items: readonly MergedTarItem[];
  readonly stats: MergeStats;
}

const BLOCK = 4096;

/**
 * Orders the merged tree for its tar: parents before children (sorted by
 * name), every inode once with its data and further names as hardlinks to
 * the first; counts what the file system will need.
 */
export function planMergedTar(tree: MergedTree): MergedTarPlan {
  const items: MergedTarItem[] = [];
  const seen = new Map<MergedInode, string>();
  const stats: MergeStats = { entries: 0, inodes: 0, dataBytes: 0, blocks4k: 0, tarBytes: 0 };
  const visit = (node: MergedNode, path: string): void => {
    const ino = node.inode;
    stats.entries++;
    const first = seen.get(ino);
    if (first !== undefined) {
      items.push({ path, inode: ino, linkTo: first });
      return;
    }
    if (ino.type !== "dir") seen.set(ino, path);
    stats.inodes++;
    if (Object.keys(ino.xattrs).length) stats.blocks4k++;
    items.push({ path: path === "" ? "." : path, inode: ino });
    if (ino.type === "file") {
      stats.dataBytes += ino.size;
      stats.blocks4k +=
        Math.ceil(ino.size / BLOCK) +
        (ino.size > 64 * 1024 * 1024 ? Math.ceil(ino.size / (128 * 1024 * 1024)) : 0);
      return;
    }
    if (ino.type === "symlink") {
      if (Buffer.byteLength(ino.linkname) >= 60) stats.blocks4k++;
      return;
    }
    if (ino.type !== "dir") return;
    const names = [...node.children!.keys()].sort();
    let dirBytes = 24;
    for (const n of names) dirBytes += 8 + Math.ceil(Buffer.byteLength(n) / 4) * 4;
    stats.blocks4k += Math.ceil(dirBytes / BLOCK) + (dirBytes > BLOCK ? 1 : 0);
    for (const n of names) visit(node.children!.get(n)!, path === "" ? n : `${path}/${n}`);
  };
  visit(tree.root, "");
  return { items, stats };
}

/** Random access to the uncompressed tar of a layer: copies up to `length` bytes at `position` into `buf` at `offset`, returns how many. */
export interface LayerReader {
  readInto(buf: Buffer, offset: number, length: number, position: number): number;
}

/**
 * Writes the planned merged tree as one tar into `sink`; file data is read
 * from `layers[i]`, the uncompressed tar of layer `i` (synchronous reads
 * at known offsets, straight into the writer's chunks). Sets and returns
 * `plan.stats` with `tarBytes`.
 */
export async function writeMergedTar(
  plan: MergedTarPlan,
  layers: readonly LayerReader[],
  sink: ByteSink,
): Promise<MergeStats> {
  const w = new TarWriter(sink);
  // One header object, refilled per entry (no garbage per entry).
  const h: TarHeader = { path: "", type: "file", mode: 0, uid: 0, gid: 0, mtime: 0, size: 0 };
  for (const { path, inode: ino, linkTo } of plan.items) {
    h.path = path;
    h.mode = ino.mode;
    h.uid = ino.uid;
    h.gid = ino.gid;
    h.uname = ino.uname;
    h.gname = ino.gname;
    h.mtime = ino.mtime;
    h.devmajor = ino.devmajor;
    h.devminor = ino.devminor;
    h.xattrs = ino.xattrs;
    h.size = 0;
    if (linkTo !== undefined) {
      h.type = "link";
      h.linkname = linkTo;
      await w.writeHeader(h);
      continue;
    }
    h.type = ino.type;
    h.linkname = ino.type === "symlink" ? ino.linkname : undefined;
    if (ino.type !== "file") {
      await w.writeHeader(h);
      continue;
    }
    h.size = ino.size;
    await w.writeHeader(h);
    if (ino.size > 0) {
      const src = layers[ino.data!.layer];
      if (src === undefined) throw new LayerInvalidError(`no data source for layer ${ino.data!.layer}`);
      const start = ino.data!.offset;
      const ok = await w.writeFrom(ino.size, (buf, off, len, done) =>
        src.readInto(buf, off, len, start + done),
      );
      if (!ok) throw new LayerInvalidError(`truncated data for ${path}`);
    }
    await w.pad(ino.size);
  }
  await w.finish();
  plan.stats.tarBytes = w.bytesWritten;
  return plan.stats;
}
