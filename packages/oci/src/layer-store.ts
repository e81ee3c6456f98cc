import { closeSync, openSync, readSync } from "node:fs";
import { Writable } from "node:stream";
import { writeAll } from "./file-region.js";

/** Bytes the uncompressed layers of one build may keep in memory by default (the rest goes to files). */
export const DEFAULT_LAYER_MEMORY_BYTES = 512 * 1024 * 1024;

/** Shared allowance of memory for the layers of one build. */
export class MemoryAllowance {
  private left: number;
  constructor(bytes: number) {
    this.left = bytes;
  }
  /** Takes `n` bytes if that many are left. */
  take(n: number): boolean {
    if (n > this.left) return false;
    this.left -= n;
    return true;
  }
}

/**
 * The uncompressed tar of one layer while a root fs is built, written once
 * (as a stream) and then read at random offsets. It stays in memory (the
 * chunks as they came) while the shared {@link MemoryAllowance} lasts; the
 * rest goes to `spillPath`. Reads are synchronous: from memory, or one
 * `pread` of a file the page cache usually still holds.
 */
export class LayerData extends Writable {
  private readonly chunks: Buffer[] = [];
  private readonly starts: number[] = [];
  /** Bytes held in memory (the first `memBytes` of the tar). */
  private memBytes = 0;
  /** Bytes in the spill file (the tar's bytes from `memBytes` on). */
  private fileBytes = 0;
  private fd: number | undefined;

  constructor(
    private readonly allowance: MemoryAllowance,
    private readonly spillPath: string,
  ) {
    super({ highWaterMark: 4 * 1024 * 1024 });
  }

  /** Bytes written so far. */
  get size(): number {
    return this.memBytes + this.fileBytes;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.fd === undefined && this.allowance.take(chunk.length)) {
      this.chunks.push(chunk);
      this.starts.push(this.memBytes);
      this.memBytes += chunk.length;
      cb();
      return;
    }
    try {
      this.fd ??= openSync(this.spillPath, "w+");
    } catch (err) {
      cb(err as Error);
      return;
    }
    const pos = this.fileBytes;
    this.fileBytes += chunk.length;
    writeAll(this.fd, [chunk], pos, cb);
  }

  /**
   * Copies up to `length` bytes of the tar from `position` into `buf` at
   * `offset`; returns how many (fewer only at the end of the tar).
   */
  readInto(buf: Buffer, offset: number, length: number, position: number): number {
    let done = 0;
    while (done < length) {
      const pos = position + done;
      if (pos >= this.size) break;
      if (pos < this.memBytes) {
        const i = this.chunkAt(pos);
        const c = this.chunks[i]!;
        const from = pos - this.starts[i]!;
        const k = Math.min(c.length - from, length - done);
        c.copy(buf, offset + done, from, from + k);
        done += k;
        continue;
      }
      const k = readSync(this.fd!, buf, offset + done, length - done, pos - this.memBytes);
      if (k <= 0) break;
      done += k;
    }
    return done;
  }

  /** Releases memory and the spill file's descriptor (the caller removes the file). Idempotent. */
  release(): void {
    this.chunks.length = 0;
    this.starts.length = 0;
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  /** Index of the chunk holding `pos` (< memBytes). */
  private chunkAt(pos: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}
