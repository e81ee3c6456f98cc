import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/**
 * One "host" simulated on this machine: its own HOME, supermachine cache
 * (blob cache, root fs store, accelerator verdicts) and snapshots
 * directory. What two real hosts share is what they would share: the
 * registry, and the same guest build installed (the guest package).
 */
export interface SimulatedHost {
  name: string;
  home: string;
  cache: string;
  snapshotsDir: string;
  /** Runs `fn` with this host's environment (HOME, SUPERMACHINE_CACHE, ...), restoring the previous one after. */
  run<T>(fn: () => Promise<T>): Promise<T>;
}

const realCache = process.env.SUPERMACHINE_CACHE ?? join(homedir(), ".cache", "supermachine");

/**
 * The guest every simulated host under `root` has installed: a copy, taken
 * once, of the manifest this checkout's guest build wrote (its kernel and
 * initramfs live in content-addressed directories that stay). A copy,
 * because other worktrees on this machine rewrite the shared manifest when
 * they build their own guest, and a host's installed guest does not change
 * under it.
 */
function pinnedGuest(root: string): string {
  const pinned = join(root, "guest-assets.json");
  if (!existsSync(pinned)) {
    const source = process.env.SUPERMACHINE_GUEST_ASSETS ?? join(realCache, "guest-assets.json");
    writeFileSync(pinned, readFileSync(source));
  }
  return pinned;
}

/** Makes a simulated host under `root/name`. */
export function simulatedHost(root: string, name: string): SimulatedHost {
  const base = join(root, name);
  const home = join(base, "home");
  const cache = join(home, ".cache", "supermachine");
  const snapshotsDir = join(home, ".local", "supermachine-snapshots");
  mkdirSync(cache, { recursive: true });
  // The accelerator verdict is per host; this machine's is copied so that a
  // fresh cache does not probe KVM again (10 s on this project's PVM hosts).
  const probes = join(realCache, "accel-probe");
  if (existsSync(probes)) cpSync(probes, join(cache, "accel-probe"), { recursive: true });
  const guest = pinnedGuest(root);
  const env: Record<string, string> = {
    HOME: home,
    SUPERMACHINE_CACHE: cache,
    SUPERMACHINE_SNAPSHOTS_DIR: snapshotsDir,
    // the same guest build on every host, as the installed guest package would be
    SUPERMACHINE_GUEST_ASSETS: guest,
  };
  return {
    name,
    home,
    cache,
    snapshotsDir,
    async run<T>(fn: () => Promise<T>): Promise<T> {
      const saved: Record<string, string | undefined> = {};
      for (const [k, v] of Object.entries(env)) {
        saved[k] = process.env[k];
        process.env[k] = v;
      }
      try {
        return await fn();
      } finally {
        for (const [k, v] of Object.entries(saved)) {
          if (v === undefined) delete process.env[k];
          else process.env[k] = v;
        }
      }
    },
  };
}
