import { lstatSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VmmError } from "../errors.js";

let counter = 0;

/**
 * A private directory (0700, owned by this user, not a symlink) for the
 * resolv.conf files namespace holders bind. Each file lives until its
 * namespace closes (those of dead processes are removed by the next one).
 */
function scratchDir(): string {
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

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Writes a resolv.conf for one namespace holder; `remove()` deletes it (idempotent). */
export function resolvFileFor(content: string): { path: string; remove(): void } {
  const path = join(scratchDir(), `${process.pid}-${counter++}.resolv.conf`);
  writeFileSync(path, content, { mode: 0o644 });
  return { path, remove: () => rmSync(path, { force: true }) };
}

/** Removes files left by processes that died between writing one and their holder binding it. */
export function removeStaleResolvFiles(): void {
  let names: string[];
  try {
    names = readdirSync(scratchDir());
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(name.split("-")[0]);
    if (Number.isInteger(pid) && pid !== process.pid && !alive(pid)) {
      rmSync(join(scratchDir(), name), { force: true });
    }
  }
}
