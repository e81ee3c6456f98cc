import { type FileHandle, open } from "node:fs/promises";
import type { ByteSink } from "./tar-writer.js";

/** A {@link ByteSink} into a new file, and how to finish it. */
export interface FileSink {
  sink: ByteSink;
  /** Waits for every write and closes the file (also after a failure; then rejects with it). */
  close(): Promise<void>;
}

/**
 * Writes chunks into a new file at `path` with up to `inFlight` positioned
 * writes under way, so the writer fills its next chunk while the kernel
 * copies the last ones.
 */
export async function fileSink(path: string, inFlight = 4): Promise<FileSink> {
  const fh: FileHandle = await open(path, "w");
  const pending = new Set<Promise<void>>();
  let position = 0;
  let failure: unknown;
  const writeAll = async (chunk: Buffer, pos: number) => {
    let off = 0;
    while (off < chunk.length) {
      const { bytesWritten } = await fh.write(chunk, off, chunk.length - off, pos + off);
      off += bytesWritten;
    }
  };
  return {
    async sink(chunk) {
      if (failure !== undefined) throw failure;
      const p = writeAll(chunk, position).catch((err: unknown) => {
        failure ??= err;
      });
      position += chunk.length;
      pending.add(p);
      void p.then(() => pending.delete(p));
      while (pending.size >= inFlight) await Promise.race(pending);
      if (failure !== undefined) throw failure;
    },
    async close() {
      await Promise.all(pending);
      await fh.close();
      if (failure !== undefined) throw failure;
    },
  };
}
