import { existsSync } from "node:fs";
import { VmmError } from "../errors.js";

const DIRS = ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/local/sbin"];

/** Absolute paths of the host programs a VM network namespace needs. */
export interface NetworkTools {
  setpriv: string;
  unshare: string;
  nsenter: string;
  slirp4netns: string;
  nft: string;
  mount: string;
  sleep: string;
  sh: string;
}

const PACKAGES: Record<keyof NetworkTools, string> = {
  setpriv: "util-linux",
  unshare: "util-linux",
  nsenter: "util-linux",
  slirp4netns: "slirp4netns",
  nft: "nftables",
  mount: "mount",
  sleep: "coreutils",
  sh: "dash",
};

let cached: NetworkTools | undefined;

/** Finds the tools, or throws `NETWORK_UNAVAILABLE` naming what to install. Cached per process. */
export function networkTools(): NetworkTools {
  if (cached) return cached;
  if (process.platform !== "linux") {
    throw new VmmError(
      "NETWORK_UNAVAILABLE",
      `network policies need Linux network namespaces; on ${process.platform} build the image with network: "none"`,
    );
  }
  const found: Partial<NetworkTools> = {};
  const missing: string[] = [];
  for (const name of Object.keys(PACKAGES) as (keyof NetworkTools)[]) {
    const path = DIRS.map((d) => `${d}/${name}`).find((p) => existsSync(p));
    if (path) found[name] = path;
    else missing.push(`${name} (Debian package ${PACKAGES[name]})`);
  }
  if (missing.length) {
    throw new VmmError(
      "NETWORK_UNAVAILABLE",
      `a VM network card needs ${missing.join(", ")} to enforce its network policy; install them (npm run setup does) or build the image with network: "none"`,
      { details: { missing } },
    );
  }
  cached = found as NetworkTools;
  return cached;
}
