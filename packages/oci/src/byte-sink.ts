import { type FileHandle, open } from "node:fs/promises";
import type { ByteSink } from "./tar-writer.js";

/** A {@link ByteSink} into a new file, and how to finish it. */
export interface FileSink {
  sink: ByteSink;
  /** Closes the file. */
  close(): Promise<void>;
}

/**
 * Writes chunks into a new file at `path`, each at its own position, so
 * several can be under way (the writer fills its next chunk while the
 * kernel copies the last ones).
 */
export async function fileSink(path: string): Promise<FileSink> {
  const fh: FileHandle = await open(path, "w");
  let position = 0;
  return {
    sink(chunk) {
      const pos = position;
      position += chunk.length;
      return (async () => {
        let off = 0;
        while (off < chunk.length) {
          const { bytesWritten } = await fh.write(chunk, off, chunk.length - off, pos + off);
          off += bytesWritten;
        }
      })();
    },
    close: () => fh.close(),
  };
}
