import { writev } from "node:fs";
import { Writable } from "node:stream";

/**
 * A stream written into an open file from `start` on (positioned writes,
 * one in flight at a time), e.g. a layer's uncompressed tar straight into
 * the root fs image that uses its bytes in place. The descriptor stays the
 * caller's: after the stream finished or failed, await {@link settled}
 * before closing it, so no write is still running.
 */
export class FileRegion extends Writable {
  private pos: number;
  private inFlight: Promise<void> = Promise.resolve();

  constructor(
    private readonly fd: number,
    readonly start: number,
  ) {
    super({ highWaterMark: 4 * 1024 * 1024 });
    this.pos = start;
  }

  /** Bytes written so far. */
  get size(): number {
    return this.pos - this.start;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.put([chunk], cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.put(
      chunks.map((c) => c.chunk),
      cb,
    );
  }

  private put(bufs: Buffer[], cb: (err?: Error | null) => void): void {
    const at = this.pos;
    for (const b of bufs) this.pos += b.length;
    this.inFlight = new Promise<void>((resolve) => {
      writeAll(this.fd, bufs, at, (err) => {
        resolve();
        cb(err);
      });
    });
  }

  /** Resolves once no write is in flight. */
  settled(): Promise<void> {
    return this.inFlight;
  }
}

/** Writes all of `bufs` at `pos` (positioned `writev`, continued after a short write). */
export function writeAll(fd: number, bufs: Buffer[], pos: number, cb: (err?: Error | null) => void): void {
  writev(fd, bufs, pos, (err, n) => {
    if (err) {
      cb(err);
      return;
    }
    let rest = n;
    let i = 0;
    while (i < bufs.length && rest >= bufs[i]!.length) rest -= bufs[i++]!.length;
    if (i === bufs.length) {
      cb();
      return;
    }
    const left = [bufs[i]!.subarray(rest), ...bufs.slice(i + 1)];
    writeAll(fd, left, pos + n, cb);
  });
}
