import { lstatSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VmmError } from "../errors.js";

/**
 * An empty directory (0700, owned by this user, not a symlink) that each
 * namespace holder mounts a tmpfs over in its own mount namespace, to hold
 * the resolv.conf QEMU reads. Nothing is ever written to it on the host, so
 * nothing is left behind, whatever happens to the processes.
 */
export function scratchDir(): string {
  const uid = process.getuid?.() ?? 0;
  const dir = join(process.env.SUPERMACHINE_RUN_DIR ?? tmpdir(), `supermachine-net-${uid}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new VmmError(
      "NETWORK_SETUP_FAILED",
      `${dir} must be a directory owned by uid ${uid} with mode 0700`,
    );
  }
  return dir;
}
