import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";

/**
 * Returns the last `maxLines` lines (at most 8 KiB) of a text file, or "" if
 * it cannot be read. A symlink is not followed (the file may sit in a
 * directory QEMU can write to).
 */
export function fileTail(path: string, maxLines = 30): string {
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    const size = fstatSync(fd).size;
    const len = Math.min(size, 8192);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    const lines = buf.toString("utf8").split("\n");
    return lines.slice(-maxLines - 1).join("\n");
  } catch {
    return "";
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
