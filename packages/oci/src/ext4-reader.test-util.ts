import { execFileSync } from "node:child_process";

/** Runs one debugfs request against an ext4 image (read-only) and returns its output. */
export function debugfs(image: string, request: string): string {
  return execFileSync("debugfs", ["-R", request, image], { stdio: ["ignore", "pipe", "ignore"] }).toString();
}

/** Parsed `debugfs stat` essentials. */
export function statPath(image: string, path: string) {
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

/** Names in a directory of the image (without . and ..). */
export function listDir(image: string, path: string): string[] {
  return debugfs(image, `ls -p "${path}"`)
    .split("\n")
    .map((l) => l.split("/"))
    .filter((f) => f.length >= 6 && f[5] !== "." && f[5] !== "..")
    .map((f) => f[5]!);
}

/** Contents of a file in the image. */
export function catFile(image: string, path: string): string {
  return debugfs(image, `cat "${path}"`);
}
