import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { VmmError } from "./errors.js";

/** The guest kernel and init/agent a VM boots, with their build hashes. */
export interface GuestAssets {
  /** Path of the kernel bzImage. */
  kernel: string;
  /** Content hash of the kernel build inputs. */
  kernelHash: string;
  /** Path of the initramfs holding `/init` (the agent). */
  initrd: string;
  /** Content hash of the agent build inputs. */
  agentHash: string;
}

/** Root of supermachine's caches: `$SUPERMACHINE_CACHE` or `~/.cache/supermachine`. */
export function cacheRoot(): string {
  return process.env.SUPERMACHINE_CACHE ?? join(homedir(), ".cache", "supermachine");
}

/**
 * Finds the guest assets built by `guest/build-assets.sh` (run by
 * `npm run setup`). `SUPERMACHINE_GUEST_ASSETS` may point at another
 * manifest. Throws `GUEST_ASSETS_MISSING` with the fix when absent.
 */
export function resolveGuestAssets(): GuestAssets {
  const manifest = process.env.SUPERMACHINE_GUEST_ASSETS ?? join(cacheRoot(), "guest-assets.json");
  if (!existsSync(manifest)) {
    throw new VmmError(
      "GUEST_ASSETS_MISSING",
      `guest kernel/agent not built (${manifest} missing); run \`npm run setup\` or packages/vmm-native/guest/build-assets.sh`,
    );
  }
  const raw = JSON.parse(readFileSync(manifest, "utf8")) as Partial<GuestAssets>;
  const assets: GuestAssets = {
    kernel: String(raw.kernel ?? ""),
    kernelHash: String(raw.kernelHash ?? ""),
    initrd: String(raw.initrd ?? ""),
    agentHash: String(raw.agentHash ?? ""),
  };
  for (const key of ["kernel", "initrd"] as const) {
    if (!existsSync(assets[key])) {
      throw new VmmError(
        "GUEST_ASSETS_MISSING",
        `guest ${key} ${assets[key]} listed in ${manifest} does not exist`,
      );
    }
  }
  return assets;
}
