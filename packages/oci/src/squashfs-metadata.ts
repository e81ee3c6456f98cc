/** Bytes of data in one squashfs metadata block. */
export const METADATA_BLOCK = 8192;
/** The 2-byte header's bit that marks a metadata block as stored uncompressed. */
const UNCOMPRESSED = 0x8000;

/** Where the next byte of a metadata table lands: its block (byte offset of the block's header in the table) and the offset inside the block's data. */
export interface MetadataPosition {
  block: number;
  offset: number;
}

/**
 * One squashfs metadata table (inodes, directories, ids, xattrs) built in
 * memory: bytes written here are cut into 8 KiB blocks, each stored
 * uncompressed behind its 2-byte header. Records may straddle blocks (the
 * kernel reads across them).
 */
export class MetadataTable {
  private readonly blocks: Buffer[] = [];
  private cur = Buffer.alloc(METADATA_BLOCK);
  private fill = 0;
  /** Bytes of the blocks already closed, headers included. */
  private closedBytes = 0;
  /** Table offsets of the closed blocks' headers. */
  private readonly starts: number[] = [];

  /** Where the next byte written goes. */
  position(): MetadataPosition {
    if (this.fill === METADATA_BLOCK) this.close();
    return { block: this.closedBytes, offset: this.fill };
  }

  /** Appends `data`. */
  write(data: Buffer): void {
    let i = 0;
    while (i < data.length) {
      if (this.fill === METADATA_BLOCK) this.close();
      const k = Math.min(METADATA_BLOCK - this.fill, data.length - i);
      data.copy(this.cur, this.fill, i, i + k);
      this.fill += k;
      i += k;
    }
  }

  /** Closes the last block; returns the table's bytes and the table offset of each block. */
  finish(): { chunks: Buffer[]; size: number; blockStarts: number[] } {
    if (this.fill > 0) this.close();
    return { chunks: this.blocks, size: this.closedBytes, blockStarts: this.starts };
  }

  private close(): void {
    const block = Buffer.allocUnsafe(2 + this.fill);
    block.writeUInt16LE(this.fill | UNCOMPRESSED, 0);
    this.cur.copy(block, 2, 0, this.fill);
    this.starts.push(this.closedBytes);
    this.blocks.push(block);
    this.closedBytes += block.length;
    this.fill = 0;
  }
}

/** A little-endian record builder reused for one inode or directory run at a time. */
export class RecordBuilder {
  private buf = Buffer.alloc(4096);
  private len = 0;

  reset(): this {
    this.len = 0;
    return this;
  }
  u16(v: number): this {
    this.room(2);
    this.buf.writeUInt16LE(v, this.len);
    this.len += 2;
    return this;
  }
  i16(v: number): this {
    this.room(2);
    this.buf.writeInt16LE(v, this.len);
    this.len += 2;
    return this;
  }
  u32(v: number): this {
    this.room(4);
    this.buf.writeUInt32LE(v >>> 0, this.len);
    this.len += 4;
    return this;
  }
  u64(v: number): this {
    this.room(8);
    this.buf.writeBigUInt64LE(BigInt(v), this.len);
    this.len += 8;
    return this;
  }
  bytes(b: Buffer): this {
    this.room(b.length);
    b.copy(this.buf, this.len);
    this.len += b.length;
    return this;
  }
  /** The bytes built (valid until the next call). */
  view(): Buffer {
    return this.buf.subarray(0, this.len);
  }
  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const bigger = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(bigger, 0, 0, this.len);
    this.buf = bigger;
  }
}
