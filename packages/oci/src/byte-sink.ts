import { type FileHandle, open } from "node:fs/promises";

/** An append-only file written in batches, one batch in flight at a time. */
export interface BatchedFile {
  /** Queues `chunk`; resolves at once unless a full batch has to wait for the one in flight. */
  write(chunk: Uint8Array): Promise<void>;
  /** Writes what is queued and closes the file. */
  end(): Promise<void>;
  /** Waits for the write in flight (its error ignored) and closes the file; idempotent. */
  abort(): Promise<void>;
}

/**
 * Opens a new file at `path` for {@link BatchedFile} writes: chunks are
 * gathered up to `batchBytes` and handed to the kernel with one `writev`
 * while the next batch fills, so a download and its disk writes overlap.
 * Plain promises instead of a stream: an abort cannot leave a write
 * callback firing into a destroyed stream.
 */
export async function batchedFile(path: string, batchBytes = 1024 * 1024): Promise<BatchedFile> {
  const fh: FileHandle = await open(path, "w");
  let queued: Uint8Array[] = [];
  let queuedBytes = 0;
  let inFlight: Promise<void> = Promise.resolve();
  let closed = false;
  const flush = (): Promise<void> => {
    const bufs = queued;
    queued = [];
    queuedBytes = 0;
    const prev = inFlight;
    inFlight = prev.then(() => writeAll(fh, bufs));
    // Marked handled here; whoever awaits it next still sees the error.
    inFlight.catch(() => {});
    return prev;
  };
  return {
    async write(chunk) {
      queued.push(chunk);
      queuedBytes += chunk.length;
      if (queuedBytes >= batchBytes) await flush();
    },
    async end() {
      await flush();
      await inFlight;
      closed = true;
      await fh.close();
    },
    async abort() {
      if (closed) return;
      closed = true;
      await inFlight.catch(() => {});
      await fh.close().catch(() => {});
    },
  };
}

async function writeAll(fh: FileHandle, bufs: Uint8Array[]): Promise<void> {
  let rest = bufs;
  while (rest.length > 0) {
    let { bytesWritten } = await fh.writev(rest);
    const next: Uint8Array[] = [];
    for (const b of rest) {
      if (bytesWritten >= b.length) {
        bytesWritten -= b.length;
      } else {
        next.push(bytesWritten > 0 ? b.subarray(bytesWritten) : b);
        bytesWritten = 0;
      }
    }
    rest = next;
  }
}
