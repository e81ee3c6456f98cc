// Reads built root fs images in tests, ext4 (debugfs) or squashfs (rdsquashfs),
// both tools independent of the code that wrote the image.
import { execFileSync } from "node:child_process";
import { closeSync, openSync, readSync } from "node:fs";

function isSquashfs(image: string): boolean {
  const fd = openSync(image, "r");
  try {
    const b = Buffer.alloc(4);
    readSync(fd, b, 0, 4, 0);
    return b.toString("latin1") === "hsqs";
  } finally {
    closeSync(fd);
  }
}

/** Runs one debugfs request against an ext4 image (read-only) and returns its output. */
export function debugfs(image: string, request: string): string {
  return execFileSync("debugfs", ["-R", request, image], { stdio: ["ignore", "pipe", "ignore"] }).toString();
}

function rdsquashfs(image: string, ...args: string[]): string | undefined {
  try {
    return execFileSync("rdsquashfs", [...args, image], {
      stdio: ["ignore", "pipe", "ignore"],
      maxBuffer: 1 << 30,
    }).toString();
  } catch {
    return undefined;
  }
}

/** What a test asks of a path in an image. */
export interface PathStat {
  inode: number;
  /** debugfs's names: `regular`, `directory`, `symlink`, `character special`, `block special`, `FIFO`. */
  type: string;
  mode: number;
  uid: number;
  gid: number;
  links: number;
  device: [number, number] | undefined;
  /** The reader's own output; xattrs as debugfs prints them (`name (len) = hex bytes`). */
  raw: string;
}

const SQUASHFS_TYPES: [RegExp, string][] = [
  [/file/, "regular"],
  [/directory/, "directory"],
  [/symbolic link/, "symlink"],
  [/character device/, "character special"],
  [/block device/, "block special"],
  [/named pipe|fifo/i, "FIFO"],
  [/socket/, "socket"],
];

/** Type, mode, owner, link count, device number and xattrs of `path`, or undefined when it does not exist. */
export function statPath(image: string, path: string): PathStat | undefined {
  if (isSquashfs(image)) return statSquashfs(image, path);
  const out = debugfs(image, `stat "${path}"`);
  const m = /Inode: (\d+)\s+Type: (.+?)\s+Mode:\s+(\d+)/.exec(out);
  if (!m) return undefined;
  const ug = /User:\s+(\d+)\s+Group:\s+(\d+)/.exec(out)!;
  const links = /Links: (\d+)/.exec(out);
  const dev = /Device major\/minor number: (\d+):(\d+)/.exec(out);
  return {
    inode: Number(m[1]),
    type: m[2]!,
    mode: Number.parseInt(m[3]!, 8),
    uid: Number(ug[1]),
    gid: Number(ug[2]),
    links: links ? Number(links[1]) : 0,
    device: dev ? [Number(dev[1]), Number(dev[2])] : undefined,
    raw: out,
  };
}

function statSquashfs(image: string, path: string): PathStat | undefined {
  const out = rdsquashfs(image, "-s", path);
  if (out === undefined) return undefined;
  const field = (name: string) => new RegExp(`^${name}: (.*)$`, "m").exec(out)?.[1];
  const kind = field("Inode type") ?? "";
  const dev = /^Device number: (\d+):(\d+)/m.exec(out);
  let raw = out;
  const xattrs = rdsquashfs(image, "-x", path) ?? "";
  for (const line of xattrs.split("\n")) {
    const m = /^([^=]+)=0x([0-9a-fA-F]*)$/.exec(line);
    if (!m) continue;
    const bytes = m[2]!.toLowerCase().match(/../g) ?? [];
    raw += `\n${m[1]} (${bytes.length}) = ${bytes.join(" ")}`;
  }
  return {
    inode: Number(field("Inode number")),
    type: SQUASHFS_TYPES.find(([re]) => re.test(kind))?.[1] ?? kind,
    mode: Number.parseInt(field("Access") ?? "0", 8),
    uid: Number(/^(\d+)/.exec(field("UID") ?? "")?.[1]),
    gid: Number(/^(\d+)/.exec(field("GID") ?? "")?.[1]),
    links: Number(field("Hard link count") ?? 0),
    device: dev ? [Number(dev[1]), Number(dev[2])] : undefined,
    raw,
  };
}

/** Names in a directory of the image (without . and ..). */
export function listDir(image: string, path: string): string[] {
  if (isSquashfs(image)) {
    return (rdsquashfs(image, "-l", path) ?? "")
      .split("\n")
      .filter((l) => l.length > 0)
      .map((l) => l.replace(/^\S+\s+\S+\s+\S+\s/, "").replace(/ -> .*$/, ""));
  }
  return debugfs(image, `ls -p "${path}"`)
    .split("\n")
    .map((l) => l.split("/"))
    .filter((f) => f.length >= 6 && f[5] !== "." && f[5] !== "..")
    .map((f) => f[5]!);
}

/** Contents of a file in the image. */
export function catFile(image: string, path: string): string {
  if (isSquashfs(image)) return rdsquashfs(image, "-c", path) ?? "";
  return debugfs(image, `cat "${path}"`);
}

/**
 * Checks the whole image with an independent reader: `fsck.ext4 -fn` for
 * ext4; for squashfs every file read back by `sqfs2tar` (fails on any
 * error) and the entries counted by `rdsquashfs -d`. Returns their report.
 */
export function checkImage(image: string): string {
  if (!isSquashfs(image)) {
    return execFileSync("fsck.ext4", ["-fn", image], { stdio: ["ignore", "pipe", "pipe"] }).toString();
  }
  execFileSync("sqfs2tar", ["--no-skip", image], { stdio: ["ignore", "ignore", "pipe"] });
  const listed = execFileSync("rdsquashfs", ["-d", image], { maxBuffer: 1 << 30 }).toString();
  return `${listed.split("\n").filter((l) => l.length > 0).length} entries`;
}
