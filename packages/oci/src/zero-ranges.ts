import { spawn } from "node:child_process";
import { writeSync } from "node:fs";
import { findProgram } from "./find-program.js";

/** Ranges at least this long are punched out of the file (a hole reads as zeros and takes no disk) rather than written. */
const PUNCH_MIN = 1024 * 1024;
/** Most `fallocate` runs per image (the longest ranges; the rest are written): a hostile image cannot make thousands. */
const MAX_PUNCHES = 256;

/** What {@link zeroRanges} did. */
export interface Zeroed {
  /** Bytes that now read as zeros. */
  bytes: number;
  /** Of those, bytes punched out as holes (no disk blocks). */
  punched: number;
}

/**
 * Makes `ranges` of the file `path` (open as `fd`) read as zeros: a range
 * of 1 MiB or more (the 256 longest) is punched out with `fallocate --punch-hole` (the file
 * keeps its size, the range its disk space back: a big file a later layer
 * deleted costs nothing), anything else, or when punching is not possible
 * on this file system, is overwritten with zeros.
 */
export async function zeroRanges(path: string, fd: number, ranges: [number, number][]): Promise<Zeroed> {
  const fallocate = findProgram("fallocate");
  const punchable = new Set(
    ranges
      .filter(([start, end]) => end - start >= PUNCH_MIN)
      .sort((a, b) => b[1] - b[0] - (a[1] - a[0]))
      .slice(0, MAX_PUNCHES),
  );
  const zeros = Buffer.alloc(1024 * 1024);
  const done: Zeroed = { bytes: 0, punched: 0 };
  for (const range of ranges) {
    const [start, end] = range;
    done.bytes += end - start;
    if (fallocate && punchable.has(range) && (await punch(fallocate, path, start, end - start))) {
      done.punched += end - start;
      continue;
    }
    for (let pos = start; pos < end; ) {
      pos += writeSync(fd, zeros, 0, Math.min(zeros.length, end - pos), pos);
    }
  }
  return done;
}

function punch(fallocate: string, path: string, offset: number, length: number): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(
      fallocate,
      ["--punch-hole", "--offset", String(offset), "--length", String(length), path],
      {
        stdio: "ignore",
      },
    );
    child.on("error", () => resolve(false));
    child.on("close", (code) => resolve(code === 0));
  });
}
