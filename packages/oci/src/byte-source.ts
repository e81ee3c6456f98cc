import { type FileHandle, open } from "node:fs/promises";

/** Random-access bytes: a file on disk or a buffer in memory. */
export interface ByteSource {
  /** Total size in bytes. */
  readonly size: number;
  /** Reads up to `length` bytes at `position` (fewer only at the end). */
  read(position: number, length: number): Promise<Buffer>;
  /** Releases the underlying file. Idempotent. */
  close(): Promise<void>;
}

/** A {@link ByteSource} over an in-memory buffer. */
export function bufferSource(buf: Uint8Array): ByteSource {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return {
    size: b.length,
    read: async (pos, len) => b.subarray(pos, Math.min(b.length, pos + len)),
    close: async () => {},
  };
}

const WINDOW = 1024 * 1024;

/** A {@link ByteSource} over a file, with a 1 MiB read-ahead window for small reads (tar headers). */
export async function fileSource(path: string): Promise<ByteSource> {
  const fh: FileHandle = await open(path, "r");
  const size = (await fh.stat()).size;
  let winStart = -1;
  let win = Buffer.alloc(0);
  let closed = false;
  return {
    size,
    async read(pos, len) {
      const end = Math.min(size, pos + len);
      if (end <= pos) return Buffer.alloc(0);
      if (winStart >= 0 && pos >= winStart && end <= winStart + win.length) {
        return win.subarray(pos - winStart, end - winStart);
      }
      if (end - pos >= WINDOW) {
        const out = Buffer.allocUnsafe(end - pos);
        let off = 0;
        while (off < out.length) {
          const { bytesRead } = await fh.read(out, off, out.length - off, pos + off);
          if (bytesRead === 0) break;
          off += bytesRead;
        }
        return out.subarray(0, off);
      }
      const want = Math.min(WINDOW, size - pos);
      const buf = Buffer.allocUnsafe(want);
      let off = 0;
      while (off < want) {
        const { bytesRead } = await fh.read(buf, off, want - off, pos + off);
        if (bytesRead === 0) break;
        off += bytesRead;
      }
      winStart = pos;
      win = buf.subarray(0, off);
      return win.subarray(0, Math.min(off, end - pos));
    },
    async close() {
      if (closed) return;
      closed = true;
      await fh.close();
    },
  };
}
