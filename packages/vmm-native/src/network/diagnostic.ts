import { accessSync, constants } from "node:fs";
import type { DiagnosticCheck } from "../diagnostics.js";
import { networkTools } from "./tools.js";

/**
 * Whether this host can enforce VM network policies: the tools are there,
 * and (when not root) `/dev/net/tun` opens for this user, which slirp4netns needs.
 */
export function networkDiagnostic(): DiagnosticCheck {
  const base = { id: "network", title: "network policy" };
  try {
    const tools = networkTools();
    if (process.getuid?.() !== 0) {
      try {
        accessSync("/dev/net/tun", constants.R_OK | constants.W_OK);
      } catch {
        return {
          ...base,
          status: "fail",
          summary:
            "/dev/net/tun is not readable and writable by this user: slirp4netns cannot give VMs their uplink",
          fix: 'chmod 0666 /dev/net/tun (Debian\'s default), run as root, or build images with network: "none"',
        };
      }
    }
    return {
      ...base,
      status: "ok",
      summary: `VMs run in network namespaces filtered by ${tools.nft}, uplink ${tools.slirp4netns}`,
    };
  } catch (err) {
    return {
      ...base,
      status: "fail",
      summary: (err as Error).message,
      fix: "apt-get install slirp4netns nftables util-linux (npm run setup does)",
    };
  }
}
