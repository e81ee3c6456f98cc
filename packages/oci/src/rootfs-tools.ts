import { spawnSync } from "node:child_process";

/** Whether this host can encode root file systems, and with what. */
export interface RootfsToolStatus {
  /** True when `mke2fs` is installed and new enough for `-d file.tar`. */
  ok: boolean;
  /** The e2fsprogs version `mke2fs -V` reports, when it ran. */
  version?: string;
  /** What is wrong, when not ok. */
  problem?: string;
  /** The install command that fixes it, when not ok. */
  fix?: string;
}

const FIX = "apt-get install -t bookworm-backports e2fsprogs (1.47.1 or newer)";

/** Compares dotted versions numerically: negative when a < b. */
function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * Checks the root fs encoder: `mke2fs` from e2fsprogs >= 1.47.1, the first
 * release whose `-d` reads a tar file (which keeps owners without root).
 */
export function checkRootfsTools(): RootfsToolStatus {
  // mke2fs -V prints its version on stderr
  const r = spawnSync("mke2fs", ["-V"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 10_000,
  });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT") {
    return { ok: false, problem: "mke2fs is not installed", fix: FIX };
  }
  const out = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  const version = /mke2fs (\d+\.\d+(?:\.\d+)?)/.exec(out)?.[1];
  if (!version) return { ok: false, problem: `cannot read the mke2fs version from: ${out.trim()}`, fix: FIX };
  if (compareVersions(version, "1.47.1") < 0) {
    return {
      ok: false,
      version,
      problem: `mke2fs ${version} cannot read tar input (needs 1.47.1)`,
      fix: FIX,
    };
  }
  return { ok: true, version };
}
