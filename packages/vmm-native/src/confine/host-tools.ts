import { execFileSync } from "node:child_process";
import { closeSync, existsSync, openSync, readSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { VmmError } from "../errors.js";

const BIN_DIRS = ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"];

/** Absolute path of a host tool, or undefined. */
export function findTool(name: string): string | undefined {
  return BIN_DIRS.map((d) => `${d}/${name}`).find((p) => existsSync(p));
}

/** A host tool the launcher cannot do without; throws `CONFINEMENT_FAILED` naming its package. */
export function requireTool(name: string, pkg: string): string {
  const p = findTool(name);
  if (!p) {
    throw new VmmError(
      "CONFINEMENT_FAILED",
      `${name} is not installed; QEMU cannot be confined without it. Install Debian's ${pkg} ` +
        "(npm run setup does), or set SUPERMACHINE_CONFINE=off to run QEMU unconfined",
    );
  }
  return p;
}

/**
 * What an executable needs to run inside an otherwise empty root: the
 * directories its shared libraries are loaded from (as `ldd` reports them)
 * and its ELF interpreter. Directories rather than files: ld.so searches
 * them by soname, and one bind per directory keeps the sandbox's start cheap.
 */
export interface RuntimeFiles {
  /** Read-only directories to bind at the same path. */
  dirs: string[];
  /** Read-only files to bind at the same path. */
  files: string[];
}

const runtimeCache = new Map<string, RuntimeFiles>();

/** Shared-library directories and interpreter of `binary` (cached by path, size and mtime). */
export function runtimeFiles(binary: string): RuntimeFiles {
  const st = statSync(binary);
  const key = `${binary}\0${st.size}\0${st.mtimeMs}`;
  const hit = runtimeCache.get(key);
  if (hit) return hit;
  const head = Buffer.alloc(2);
  const fd = openSync(binary, "r");
  readSync(fd, head, 0, 2, 0);
  closeSync(fd);
  if (head.toString("latin1") === "#!") {
    throw new VmmError(
      "CONFINEMENT_FAILED",
      `${binary} is a script, not QEMU itself: the sandbox shows QEMU and its libraries only. ` +
        "Point SUPERMACHINE_QEMU at the QEMU executable, or set SUPERMACHINE_CONFINE=off to run a wrapper unconfined",
    );
  }
  let out: string;
  try {
    out = execFileSync(findTool("ldd") ?? "ldd", [binary], { encoding: "utf8", env: { LC_ALL: "C" } });
  } catch (err) {
    throw new VmmError("CONFINEMENT_FAILED", `cannot list the shared libraries of ${binary} (ldd failed)`, {
      cause: err,
    });
  }
  const dirs = new Set<string>();
  const files = new Set<string>();
  for (const line of out.split("\n")) {
    const lib = /=>\s+(\/\S+)/.exec(line)?.[1];
    if (lib) {
      dirs.add(dirname(lib));
      continue;
    }
    const interp = /^\s*(\/\S+)\s+\(/.exec(line)?.[1];
    if (interp) files.add(interp);
  }
  for (const f of [...files]) if ([...dirs].some((d) => f.startsWith(`${d}/`))) files.delete(f);
  if (existsSync("/etc/ld.so.cache")) files.add("/etc/ld.so.cache");
  const r = { dirs: [...dirs].sort(), files: [...files].sort() };
  runtimeCache.set(key, r);
  return r;
}

const dataDirCache = new Map<string, string[]>();

/**
 * QEMU's firmware/data directories (`-L help`: e.g. /usr/share/qemu and
 * /usr/share/seabios, where microvm's `bios-microvm.bin` lives), bound
 * read-only at the same paths so that QEMU finds its firmware.
 */
export function qemuDataDirs(qemu: string): string[] {
  const hit = dataDirCache.get(qemu);
  if (hit) return hit;
  let listed: string[] = [];
  try {
    listed = execFileSync(qemu, ["-L", "help"], { encoding: "utf8", env: {} })
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l.startsWith("/") && existsSync(l));
  } catch {
    listed = ["/usr/share/qemu", "/usr/share/seabios"].filter((d) => existsSync(d));
  }
  const r = [...new Set(listed)].sort();
  dataDirCache.set(qemu, r);
  return r;
}
