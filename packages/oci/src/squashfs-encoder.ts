import type { MergedInode, MergedNode, MergedTree } from "./layer-merge.js";
import { type MetadataPosition, MetadataTable, RecordBuilder } from "./squashfs-metadata.js";

/** Data block size of the images written here (the kernel's default, and its readahead window). */
export const SQUASHFS_BLOCK_LOG = 17;
const BLOCK = 1 << SQUASHFS_BLOCK_LOG;
const MAGIC = 0x73717368;
const INVALID = 0xffff_ffff_ffff_ffffn;
const NO_FRAGMENT = 0xffff_ffff;
const NO_XATTR = 0xffff_ffff;
/** Block size word flag: the block is stored uncompressed. */
const UNCOMPRESSED_BLOCK = 1 << 24;
const COMPRESSION_GZIP = 1;
/** Superblock flags: inodes, data, fragments, xattrs uncompressed; no fragments; (no xattrs). */
const FLAGS = 0x1 | 0x2 | 0x8 | 0x10 | 0x100;
const FLAG_NO_XATTRS = 0x200;
/** The superblock counts ids in 16 bits, and 0 is invalid. */
const MAX_IDS = 65535;
const MAX_NAME = 256;
const MAX_DIR_RUN = 256;
/** Extended inode types (all used, so every inode can have nlink and xattrs). */
const L_DIR = 8;
const L_REG = 9;
const L_SYMLINK = 10;
const L_BLKDEV = 11;
const L_CHRDEV = 12;
const L_FIFO = 13;
/** Basic types, as directory entries name them. */
const BASIC: Record<MergedInode["type"], number> = {
  dir: 1,
  file: 2,
  symlink: 3,
  block: 4,
  char: 5,
  fifo: 6,
};
const XATTR_PREFIXES: [string, number][] = [
  ["user.", 0],
  ["trusted.", 1],
  ["security.", 2],
];

/** Where the image's data and metadata go. */
export interface SquashfsLayout {
  /** Byte offset in the image of layer `i`'s uncompressed tar (file data is used in place). */
  layerBase: readonly number[];
  /** Byte offset where the metadata tables start (after all data). */
  metadataStart: number;
}

/** The metadata of an image: write `metadata` at `layout.metadataStart`, `superblock` at 0, and make the file `fileSize` bytes long. */
export interface EncodedSquashfs {
  superblock: Buffer;
  metadata: Buffer[];
  /** End of the file system (the superblock's `bytes_used`). */
  bytesUsed: number;
  /** `bytesUsed` rounded up to 4 KiB (block devices are read in whole sectors). */
  fileSize: number;
  inodes: number;
}

/**
 * Why the merged tree cannot be a squashfs image as written here (an xattr
 * namespace squashfs lacks, a name, symlink or id count beyond its limits),
 * or `undefined` when it can.
 */
export function squashfsUnsupported(tree: MergedTree): string | undefined {
  const ids = new Set<number>();
  const why = eachInode(tree, (ino, node) => {
    ids.add(ino.uid);
    ids.add(ino.gid);
    for (const name of Object.keys(ino.xattrs)) {
      if (!XATTR_PREFIXES.some(([p]) => name.startsWith(p) && name.length > p.length)) {
        return `xattr ${JSON.stringify(name)} (squashfs keeps user.*, trusted.* and security.* only)`;
      }
    }
    if (ino.type === "symlink" && Buffer.byteLength(ino.linkname) > 4096)
      return "a symlink target over 4096 bytes";
    if ((ino.type === "char" || ino.type === "block") && (ino.devmajor > 0xfff || ino.devminor > 0xfffff)) {
      return `device number ${ino.devmajor}:${ino.devminor}`;
    }
    for (const name of node.children?.keys() ?? []) {
      if (Buffer.byteLength(name) > MAX_NAME) return `a name of ${Buffer.byteLength(name)} bytes`;
    }
    return undefined;
  });
  if (why !== undefined) return why;
  if (ids.size > MAX_IDS) return `${ids.size} distinct owner ids`;
  return undefined;
}

/**
 * Calls `visit` once per distinct inode of the tree (a hardlinked file
 * once), depth first; stops at, and returns, the first value it returns.
 */
function eachInode<T>(
  tree: MergedTree,
  visit: (ino: MergedInode, node: MergedNode) => T | undefined,
): T | undefined {
  const seen = new Set<MergedInode>();
  const stack: MergedNode[] = [tree.root];
  while (stack.length) {
    const node = stack.pop()!;
    if (seen.has(node.inode)) continue;
    seen.add(node.inode);
    const out = visit(node.inode, node);
    if (out !== undefined) return out;
    if (node.children) for (const c of node.children.values()) stack.push(c);
  }
  return undefined;
}

/**
 * The byte ranges `[start, end)` of the layer tars (from `layout.layerBase[0]`
 * to `layout.metadataStart`) that no file of the merged tree uses: tar
 * headers, padding, and the data of files later layers deleted or
 * replaced. The image must hold zeros there, or a guest reading its raw
 * block device would find what the image's own layers hid.
 */
export function unusedRanges(tree: MergedTree, layout: SquashfsLayout): [number, number][] {
  const used: [number, number][] = [];
  eachInode(tree, (ino) => {
    if (ino.type === "file" && ino.size > 0) {
      const start = layout.layerBase[ino.data!.layer]! + ino.data!.offset;
      used.push([start, start + ino.size]);
    }
    return undefined;
  });
  used.sort((a, b) => a[0] - b[0]);
  const gaps: [number, number][] = [];
  let at = layout.layerBase[0] ?? layout.metadataStart;
  for (const [start, end] of used) {
    if (start > at) gaps.push([at, start]);
    at = Math.max(at, end);
  }
  if (layout.metadataStart > at) gaps.push([at, layout.metadataStart]);
  return gaps;
}

interface Emitted {
  ref: bigint;
  pos: MetadataPosition;
  ino: number;
  type: number;
}

/**
 * Encodes the squashfs 4.0 metadata of `tree` (check it with
 * {@link squashfsUnsupported} first). File data is not copied: each file's
 * blocks are its bytes where they already lie in the image, inside the
 * layer tars written at `layout.layerBase`, as uncompressed 128 KiB blocks
 * (the last one short, no fragments). Output is a pure function of the
 * tree and the layout.
 */
export function encodeSquashfs(tree: MergedTree, layout: SquashfsLayout): EncodedSquashfs {
  const inodes = new MetadataTable();
  const dirs = new MetadataTable();
  const rec = new RecordBuilder();
  const idIndex = new Map<number, number>();
  const idOf = (id: number): number => {
    let i = idIndex.get(id);
    if (i === undefined) {
      i = idIndex.size;
      idIndex.set(id, i);
    }
    return i;
  };
  const xattrSets = new Map<string, number>();
  const xattrList: [string, Buffer][][] = [];
  const xattrOf = (ino: MergedInode): number => {
    const names = Object.keys(ino.xattrs).sort();
    if (names.length === 0) return NO_XATTR;
    const pairs = names.map((n): [string, Buffer] => [n, ino.xattrs[n]!]);
    const key = JSON.stringify(pairs.map(([n, v]) => [n, v.toString("base64")]));
    let i = xattrSets.get(key);
    if (i === undefined) {
      i = xattrList.length;
      xattrList.push(pairs);
      xattrSets.set(key, i);
    }
    return i;
  };

  // Names per inode: hardlinked files have nlink > 1.
  const links = new Map<MergedInode, number>();
  const count = (node: MergedNode): void => {
    links.set(node.inode, (links.get(node.inode) ?? 0) + 1);
    if (node.children) for (const c of node.children.values()) count(c);
  };
  count(tree.root);

  let nextIno = 1;
  const done = new Map<MergedInode, Emitted>();
  const header = (type: number, ino: MergedInode, number: number) =>
    rec
      .reset()
      .u16(type)
      .u16(ino.mode & 0o7777)
      .u16(idOf(ino.uid))
      .u16(idOf(ino.gid))
      .u32(Math.min(Math.max(Math.floor(ino.mtime), 0), 0xffff_ffff))
      .u32(number);
  const place = (type: number, number: number): Emitted => {
    const pos = inodes.position();
    inodes.write(rec.view());
    return { ref: (BigInt(pos.block) << 16n) | BigInt(pos.offset), pos, ino: number, type };
  };

  const emitLeaf = (ino: MergedInode): Emitted => {
    const number = nextIno++;
    const nlink = links.get(ino) ?? 1;
    switch (ino.type) {
      case "file": {
        const size = ino.size;
        const start = size > 0 ? layout.layerBase[ino.data!.layer]! + ino.data!.offset : 0;
        header(L_REG, ino, number)
          .u64(start)
          .u64(size)
          .u64(0)
          .u32(nlink)
          .u32(NO_FRAGMENT)
          .u32(0)
          .u32(xattrOf(ino));
        for (let left = size; left > 0; left -= BLOCK) rec.u32(Math.min(left, BLOCK) | UNCOMPRESSED_BLOCK);
        return place(BASIC.file, number);
      }
      case "symlink": {
        const target = Buffer.from(ino.linkname);
        header(L_SYMLINK, ino, number).u32(nlink).u32(target.length).bytes(target).u32(xattrOf(ino));
        return place(BASIC.symlink, number);
      }
      case "char":
      case "block": {
        const rdev = (ino.devminor & 0xff) | ((ino.devmajor & 0xfff) << 8) | ((ino.devminor & ~0xff) << 12);
        header(ino.type === "char" ? L_CHRDEV : L_BLKDEV, ino, number)
          .u32(nlink)
          .u32(rdev)
          .u32(xattrOf(ino));
        return place(BASIC[ino.type], number);
      }
      case "fifo":
        header(L_FIFO, ino, number).u32(nlink).u32(xattrOf(ino));
        return place(BASIC.fifo, number);
      default:
        throw new Error(`unexpected inode type ${ino.type}`);
    }
  };

  const emitDir = (node: MergedNode, number: number, parent: number): Emitted => {
    const names = [...node.children!.keys()].map((n) => ({ n, b: Buffer.from(n) }));
    names.sort((a, b) => Buffer.compare(a.b, b.b));
    const kids: { name: Buffer; e: Emitted }[] = [];
    let subdirs = 0;
    for (const { n, b } of names) {
      const child = node.children!.get(n)!;
      let e = done.get(child.inode);
      if (!e) {
        if (child.inode.type === "dir") {
          subdirs++;
          e = emitDir(child, nextIno++, number);
        } else e = emitLeaf(child.inode);
        done.set(child.inode, e);
      } else if (child.inode.type === "dir") subdirs++;
      kids.push({ name: b, e });
    }
    // The listing: runs of at most 256 entries whose inodes share a metadata block and lie within ±32767 of the run's first.
    const at = dirs.position();
    let listing = 0;
    for (let i = 0; i < kids.length; ) {
      const first = kids[i]!.e;
      let j = i + 1;
      while (
        j < kids.length &&
        j - i < MAX_DIR_RUN &&
        kids[j]!.e.pos.block === first.pos.block &&
        Math.abs(kids[j]!.e.ino - first.ino) <= 32767
      )
        j++;
      rec
        .reset()
        .u32(j - i - 1)
        .u32(first.pos.block)
        .u32(first.ino);
      for (let k = i; k < j; k++) {
        const { name, e } = kids[k]!;
        rec
          .u16(e.pos.offset)
          .i16(e.ino - first.ino)
          .u16(e.type)
          .u16(name.length - 1)
          .bytes(name);
      }
      listing += rec.view().length;
      dirs.write(rec.view());
      i = j;
    }
    header(L_DIR, node.inode, number)
      .u32(2 + subdirs)
      .u32(listing + 3)
      .u32(at.block)
      .u32(parent)
      .u16(0)
      .u16(at.offset)
      .u32(xattrOf(node.inode));
    return place(BASIC.dir, number);
  };

  const total = links.size;
  // The root's parent number (its ".." in readdir): inodes + 1, as mksquashfs does.
  const root = emitDir(tree.root, nextIno++, total + 1);
  if (nextIno - 1 !== total) throw new Error(`squashfs: ${nextIno - 1} inodes written, ${total} expected`);

  // Tables after the data, in the order the kernel checks them.
  const out: Buffer[] = [];
  let pos = layout.metadataStart;
  const put = (chunks: Buffer[], size: number): number => {
    const start = pos;
    out.push(...chunks);
    pos += size;
    return start;
  };
  const inodeTable = inodes.finish();
  const inodeStart = put(inodeTable.chunks, inodeTable.size);
  const dirTable = dirs.finish();
  const dirStart = put(dirTable.chunks, dirTable.size);

  const idTable = new MetadataTable();
  const ids = [...idIndex.entries()].sort((a, b) => a[1] - b[1]);
  for (const [id] of ids) idTable.write(rec.reset().u32(id).view());
  const idBlocks = idTable.finish();
  const idBlocksStart = put(idBlocks.chunks, idBlocks.size);
  const idIndexStart = put([pointers(idBlocks.blockStarts, idBlocksStart)], idBlocks.blockStarts.length * 8);

  let xattrIdTableStart = INVALID;
  if (xattrList.length > 0) {
    const kv = new MetadataTable();
    const refs: { ref: bigint; count: number; size: number }[] = [];
    for (const pairs of xattrList) {
      const p = kv.position();
      let size = 0;
      for (const [name, value] of pairs) {
        const [prefix, type] = XATTR_PREFIXES.find(([px]) => name.startsWith(px))!;
        const short = Buffer.from(name.slice(prefix.length));
        rec.reset().u16(type).u16(short.length).bytes(short).u32(value.length).bytes(value);
        size += rec.view().length;
        kv.write(rec.view());
      }
      refs.push({ ref: (BigInt(p.block) << 16n) | BigInt(p.offset), count: pairs.length, size });
    }
    const kvBlocks = kv.finish();
    const kvStart = put(kvBlocks.chunks, kvBlocks.size);
    const idsTable = new MetadataTable();
    for (const r of refs) {
      const b = Buffer.alloc(16);
      b.writeBigUInt64LE(r.ref, 0);
      b.writeUInt32LE(r.count, 8);
      b.writeUInt32LE(r.size, 12);
      idsTable.write(b);
    }
    const xidBlocks = idsTable.finish();
    const xidStart = put(xidBlocks.chunks, xidBlocks.size);
    const head = Buffer.alloc(16);
    head.writeBigUInt64LE(BigInt(kvStart), 0);
    head.writeUInt32LE(refs.length, 8);
    xattrIdTableStart = BigInt(put([head], 16));
    put([pointers(xidBlocks.blockStarts, xidStart)], xidBlocks.blockStarts.length * 8);
  }

  const bytesUsed = pos;
  const sb = Buffer.alloc(96);
  sb.writeUInt32LE(MAGIC, 0);
  sb.writeUInt32LE(total, 4);
  sb.writeUInt32LE(0, 8); // mkfs time: fixed, so the bytes depend on the layers only
  sb.writeUInt32LE(BLOCK, 12);
  sb.writeUInt32LE(0, 16); // fragments
  sb.writeUInt16LE(COMPRESSION_GZIP, 20);
  sb.writeUInt16LE(SQUASHFS_BLOCK_LOG, 22);
  sb.writeUInt16LE(FLAGS | (xattrList.length ? 0 : FLAG_NO_XATTRS), 24);
  sb.writeUInt16LE(ids.length, 26);
  sb.writeUInt16LE(4, 28);
  sb.writeUInt16LE(0, 30);
  sb.writeBigUInt64LE(root.ref, 32);
  sb.writeBigUInt64LE(BigInt(bytesUsed), 40);
  sb.writeBigUInt64LE(BigInt(idIndexStart), 48);
  sb.writeBigUInt64LE(xattrIdTableStart, 56);
  sb.writeBigUInt64LE(BigInt(inodeStart), 64);
  sb.writeBigUInt64LE(BigInt(dirStart), 72);
  sb.writeBigUInt64LE(INVALID, 80); // fragment table
  sb.writeBigUInt64LE(INVALID, 88); // export (lookup) table
  const fileSize = Math.ceil(bytesUsed / 4096) * 4096;
  return { superblock: sb, metadata: out, bytesUsed, fileSize, inodes: total };
}

/** Absolute u64 pointers to a table's blocks. */
function pointers(blockStarts: number[], tableStart: number): Buffer {
  const b = Buffer.alloc(blockStarts.length * 8);
  for (const [i, s] of blockStarts.entries()) b.writeBigUInt64LE(BigInt(tableStart + s), i * 8);
  return b;
}
