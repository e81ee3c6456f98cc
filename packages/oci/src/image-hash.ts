import { createHash } from "node:crypto";
import { open } from "node:fs/promises";

const CHUNK = 4 * 1024 * 1024;

/** sha256 (hex) of a file, reading the next 4 MiB while hashing the last. */
export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  const fh = await open(path, "r");
  try {
    const size = (await fh.stat()).size;
    let bufs = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
    let pos = 0;
    let pending = fh.read(bufs[0]!, 0, Math.min(CHUNK, size), 0);
    while (pos < size) {
      const { bytesRead } = await pending;
      if (bytesRead === 0) break;
      pos += bytesRead;
      if (pos < size) pending = fh.read(bufs[1]!, 0, Math.min(CHUNK, size - pos), pos);
      hash.update(bufs[0]!.subarray(0, bytesRead));
      bufs = [bufs[1]!, bufs[0]!];
    }
  } finally {
    await fh.close();
  }
  return hash.digest("hex");
}
