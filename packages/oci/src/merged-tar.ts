import { open } from "node:fs/promises";
import type { ByteSource } from "./byte-source.js";
import { LayerInvalidError } from "./errors.js";
import type { MergedInode, MergedNode, MergedTree } from "./layer-merge.js";
import { TarWriter } from "./tar-writer.js";

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
  /** Size of the tar written. */
  tarBytes: number;
}

const BLOCK = 4096;
const COPY_CHUNK = 1024 * 1024;

/**
 * Writes the merged tree as one tar to `outPath`, parents before children
 * (sorted by name), every inode once with its data and further names as
 * hardlinks to the first. `layers[i]` holds the uncompressed tar of layer `i`.
 */
export async function writeMergedTar(
  tree: MergedTree,
  layers: ByteSource[],
  outPath: string,
): Promise<MergeStats> {
  const fh = await open(outPath, "w");
  const w = new TarWriter(fh);
  const seen = new Map<MergedInode, string>();
  const stats: MergeStats = { entries: 0, inodes: 0, dataBytes: 0, blocks4k: 0, tarBytes: 0 };
  try {
    const visit = async (node: MergedNode, path: string): Promise<void> => {
      const ino = node.inode;
      stats.entries++;
      const first = seen.get(ino);
      if (first !== undefined) {
        await w.writeHeader({ ...base(ino), path, type: "link", size: 0, linkname: first });
        return;
      }
      if (ino.type !== "dir") seen.set(ino, path);
      stats.inodes++;
      if (Object.keys(ino.xattrs).length) stats.blocks4k++;
      if (ino.type === "file") {
        await w.writeHeader({ ...base(ino), path, type: "file", size: ino.size });
        await copyData(w, layers, ino, path);
        await w.pad(ino.size);
        stats.dataBytes += ino.size;
        stats.blocks4k +=
          Math.ceil(ino.size / BLOCK) +
          (ino.size > 64 * 1024 * 1024 ? Math.ceil(ino.size / (128 * 1024 * 1024)) : 0);
        return;
      }
      if (ino.type === "symlink") {
        await w.writeHeader({ ...base(ino), path, type: "symlink", size: 0, linkname: ino.linkname });
        if (Buffer.byteLength(ino.linkname) >= 60) stats.blocks4k++;
        return;
      }
      if (ino.type !== "dir") {
        await w.writeHeader({ ...base(ino), path, type: ino.type, size: 0 });
        return;
      }
      await w.writeHeader({ ...base(ino), path: path === "" ? "." : path, type: "dir", size: 0 });
      const names = [...node.children!.keys()].sort();
      let dirBytes = 24;
      for (const n of names) dirBytes += 8 + Math.ceil(Buffer.byteLength(n) / 4) * 4;
      stats.blocks4k += Math.ceil(dirBytes / BLOCK) + (dirBytes > BLOCK ? 1 : 0);
      for (const n of names) await visit(node.children!.get(n)!, path === "" ? n : `${path}/${n}`);
    };
    await visit(tree.root, "");
    await w.finish();
    stats.tarBytes = w.bytesWritten;
  } finally {
    await fh.close();
  }
  return stats;
}

function base(ino: MergedInode) {
  return {
    mode: ino.mode,
    uid: ino.uid,
    gid: ino.gid,
    uname: ino.uname,
    gname: ino.gname,
    mtime: ino.mtime,
    devmajor: ino.devmajor,
    devminor: ino.devminor,
    xattrs: ino.xattrs,
  };
}

async function copyData(w: TarWriter, layers: ByteSource[], ino: MergedInode, path: string): Promise<void> {
  if (ino.size === 0) return;
  const src = layers[ino.data!.layer];
  if (!src) throw new LayerInvalidError(`no data source for layer ${ino.data!.layer}`);
  let done = 0;
  while (done < ino.size) {
    const n = Math.min(COPY_CHUNK, ino.size - done);
    const chunk = await src.read(ino.data!.offset + done, n);
    if (chunk.length !== n) throw new LayerInvalidError(`truncated data for ${path}`);
    await w.write(chunk);
    done += n;
  }
}
