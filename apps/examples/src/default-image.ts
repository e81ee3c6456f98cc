import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/**
 * The built-in default image: an OCI layout of Debian's busybox-static that
 * `npm run setup` builds locally (no registry needed). Override with
 * `SUPERMACHINE_EXAMPLE_REF` (any reference `Image.build` accepts).
 */
export function defaultImageRef(): string {
  if (process.env.SUPERMACHINE_EXAMPLE_REF) return process.env.SUPERMACHINE_EXAMPLE_REF;
  const cache = process.env.SUPERMACHINE_CACHE ?? join(homedir(), ".cache", "supermachine");
  const layout = join(cache, "images", "default");
  if (!existsSync(join(layout, "index.json"))) {
    throw new Error(`default image not built (${layout}); run: bash scripts/test-images/default-image.sh`);
  }
  return `oci:${layout}:latest`;
}

/** Snapshot directory of the examples, kept apart from the user's default. */
export const snapshotsDir =
  process.env.SUPERMACHINE_SNAPSHOTS_DIR ?? join(homedir(), ".local", "supermachine-snapshots");

/** Milliseconds since `t0`, rounded. */
export function since(t0: number): string {
  return `${Math.round(performance.now() - t0)} ms`;
}
