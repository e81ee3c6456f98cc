/** A FIFO of byte chunks that can hand out contiguous slices without copying when possible. */
export class ChunkQueue {
  private chunks: Buffer[] = [];
  private head = 0;
  /** Total buffered bytes. */
  length = 0;

  /** Appends a chunk (kept by reference). */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** The first `n` bytes, contiguous, without consuming them (n <= length). */
  peek(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    if (first.length - this.head >= n) return first.subarray(this.head, this.head + n);
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    let off = this.head;
    for (const c of this.chunks) {
      const take = Math.min(n - filled, c.length - off);
      c.copy(out, filled, off, off + take);
      filled += take;
      off = 0;
      if (filled === n) break;
    }
    return out;
  }

  /** How many bytes the first chunk still holds: what {@link take} returns without copying. */
  get headLength(): number {
    const first = this.chunks[0];
    return first ? first.length - this.head : 0;
  }

  /** Removes and returns the first `n` bytes, contiguous (n <= length). */
  take(n: number): Buffer {
    const out = n === 0 ? Buffer.alloc(0) : this.peek(n);
    this.skip(n);
    return out;
  }

  /** Drops the first `n` bytes (n <= length). */
  skip(n: number): void {
    this.length -= n;
    while (n > 0) {
      const first = this.chunks[0] as Buffer;
      const avail = first.length - this.head;
      if (avail > n) {
        this.head += n;
        return;
      }
      n -= avail;
      this.chunks.shift();
      this.head = 0;
    }
  }

  /** Removes and returns everything buffered as one Buffer. */
  drain(): Buffer {
    const out = this.take(this.length);
    this.chunks = [];
    this.head = 0;
    return out;
  }
}

/** Views a Uint8Array as a Buffer without copying. */
export function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
