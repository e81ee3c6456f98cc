import { homedir } from "node:os";
import { isAbsolute, join, posix, relative, resolve } from "node:path";
import { SnapshotError } from "./errors.js";

/**
 * Where `@supermachine/oci` keeps root fs images by default, and so where a
 * snapshot's root fs must be unless `rootfsDirs` says otherwise:
 * `$SUPERMACHINE_CACHE/oci/rootfs`, else `~/.cache/supermachine/oci/rootfs`
 * (mirrors `defaultCacheDir()` of `@supermachine/oci`, which this package
 * does not import).
 */
export function defaultRootfsDir(): string {
  return join(process.env.SUPERMACHINE_CACHE ?? join(homedir(), ".cache", "supermachine"), "oci", "rootfs");
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this rejects
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * Why `path` is not a safe absolute path, or undefined when it is: it must
 * be absolute, normalized (no `.`/`..` components, no `//`, no trailing
 * `/`), free of NUL and other control characters, and — when it reaches a
 * QEMU option string (`qemu`) — free of commas, which QEMU reads as option
 * separators.
 */
export function unsafePathProblem(path: string, opts: { qemu?: boolean } = {}): string | undefined {
  if (typeof path !== "string" || path.length === 0) return "is empty";
  if (CONTROL.test(path)) return "contains NUL or another control character";
  if (!path.startsWith("/")) return "is not absolute";
  if (path.split("/").some((c) => c === ".." || c === ".")) return "has a `.` or `..` component";
  if (posix.normalize(path) !== path || (path.length > 1 && path.endsWith("/"))) return "is not normalized";
  if (opts.qemu && path.includes(",")) {
    return "contains a comma (QEMU would read it as an option separator)";
  }
  return undefined;
}

/** True when `path` is `dir` itself or below it (lexically; both are resolved first). */
export function isInside(dir: string, path: string): boolean {
  const rel = relative(resolve(dir), resolve(path));
  return rel === "" || (rel !== ".." && !rel.startsWith("../") && !isAbsolute(rel));
}

/** Throws `SNAPSHOT_UNSAFE_PATH` when {@link unsafePathProblem} finds something. */
export function assertSafePath(
  path: string,
  what: string,
  opts: { qemu?: boolean; details?: Record<string, unknown> } = {},
): void {
  const problem = unsafePathProblem(path, opts);
  if (problem === undefined) return;
  throw new SnapshotError("SNAPSHOT_UNSAFE_PATH", `${what} ${JSON.stringify(path)} ${problem}`, {
    details: { ...opts.details, path, problem },
  });
}
