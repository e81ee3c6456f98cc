import {
  closeSync,
  constants,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { removeVmCgroup } from "./confine/cgroup.js";
import { VmmError } from "./errors.js";

/**
 * Who created a run directory, precisely enough to tell a live owner from a
 * dead one whose pid was reused: pid, start time (field 22 of
 * /proc/<pid>/stat), boot id and pid namespace.
 */
export interface RunDirOwner {
  pid: number;
  startTime: string;
  bootId: string;
  pidNamespace: string;
  /** A cgroup made for the VM, removed with the directory. */
  cgroup?: string;
}

/** Name of the owner record inside each run directory. */
export const OWNER_FILE = "owner.json";
/** Prefix of run directory names. */
export const RUN_DIR_PREFIX = "vm-";
/** A run directory without an owner record is left alone this long (it may be being created). */
const OWNERLESS_GRACE_MS = 60_000;
/** Reaping runs at most this often per process and root. */
const REAP_INTERVAL_MS = 30_000;

function procStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return fallback;
  }
}

let selfOwner: RunDirOwner | undefined;
/** The owner record of this process. */
export function currentOwner(): RunDirOwner {
  selfOwner ??= {
    pid: process.pid,
    startTime: procStartTime(process.pid) ?? "0",
    bootId: readOr("/proc/sys/kernel/random/boot_id", ""),
    pidNamespace: (() => {
      try {
        return readlinkSync("/proc/self/ns/pid");
      } catch {
        return "";
      }
    })(),
  };
  return selfOwner;
}

/**
 * Whether the owner of a run directory is dead. Only judged when it is
 * judgeable from here: same boot and same pid namespace (a process in
 * another container sharing this directory is never taken for dead).
 */
export function ownerIsDead(o: RunDirOwner): boolean {
  const me = currentOwner();
  if (o.bootId && me.bootId && o.bootId !== me.bootId) return true;
  if (o.pidNamespace !== me.pidNamespace) return false;
  try {
    process.kill(o.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return true;
  }
  const now = procStartTime(o.pid);
  return o.startTime !== "0" && now !== undefined && now !== o.startTime;
}

/**
 * The private root of this user's run directories:
 * `<base>/supermachine-<uid>`, where base is `parent`, else
 * `SUPERMACHINE_RUN_DIR`, else `XDG_RUNTIME_DIR`, else the OS temp dir.
 * Created 0700; refused (`RUN_DIR_UNSAFE`) when it is a symlink, not a
 * directory, someone else's, or open to group or others — on a shared /tmp,
 * another user could have made it first.
 */
export function runRoot(parent?: string): string {
  const base = parent ?? (process.env.SUPERMACHINE_RUN_DIR || process.env.XDG_RUNTIME_DIR || tmpdir());
  const uid = process.getuid?.() ?? 0;
  const root = join(base, `supermachine-${uid}`);
  mkdirSync(base, { recursive: true, mode: 0o700 });
  try {
    mkdirSync(root, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  const st = lstatSync(root);
  const problem = st.isSymbolicLink()
    ? "is a symlink"
    : !st.isDirectory()
      ? "is not a directory"
      : process.getuid && st.uid !== uid
        ? `belongs to uid ${st.uid}`
        : (st.mode & 0o077) !== 0
          ? `has mode ${(st.mode & 0o777).toString(8)} (group/others may enter)`
          : undefined;
  if (problem) {
    throw new VmmError("RUN_DIR_UNSAFE", `run directory root ${root} ${problem}; remove it or pick another`, {
      details: { root },
    });
  }
  return root;
}

function readOwner(dir: string): RunDirOwner | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(join(dir, OWNER_FILE), constants.O_RDONLY | constants.O_NOFOLLOW);
    const o = JSON.parse(readFileSync(fd, "utf8")) as RunDirOwner;
    return typeof o.pid === "number" ? o : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

const lastReap = new Map<string, number>();

/**
 * Removes the run directories under `root` whose owner process is dead (or
 * that have had no owner record for a minute), with the cgroups recorded in
 * them. Returns the removed paths. Runs at most every 30 s per root unless
 * `force`.
 */
export function reapRunDirs(root: string, force = false): string[] {
  const now = Date.now();
  if (!force && now - (lastReap.get(root) ?? 0) < REAP_INTERVAL_MS) return [];
  lastReap.set(root, now);
  const removed: string[] = [];
  const me = process.getuid?.() ?? 0;
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return removed;
  }
  for (const name of names) {
    if (!name.startsWith(RUN_DIR_PREFIX)) continue;
    const dir = join(root, name);
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(dir);
    } catch {
      continue;
    }
    if (!st.isDirectory() || st.uid !== me) continue;
    const owner = readOwner(dir);
    const dead = owner ? ownerIsDead(owner) : now - st.mtimeMs > OWNERLESS_GRACE_MS;
    if (!dead) continue;
    rmSync(dir, { recursive: true, force: true });
    if (owner?.cgroup) removeVmCgroup(owner.cgroup);
    removed.push(dir);
  }
  return removed;
}

/**
 * A private directory for one QEMU process, `vm-XXXXXX` under {@link runRoot}:
 * `owner.json` (this process, so that a later process can reap the directory
 * once this one is dead), `console.pipe` (the console FIFO, shown to QEMU as
 * `/vm/console.pipe`) and `qemu/`, the only directory QEMU sees whole, holding
 * its QMP and agent sockets. Paths stay short because unix socket paths are
 * limited to 107 bytes. Creating one first reaps the run directories of dead
 * owners.
 */
export class RunDir {
  readonly path: string;
  constructor(parent?: string) {
    const root = runRoot(parent);
    reapRunDirs(root);
    this.path = mkdtempSync(join(root, RUN_DIR_PREFIX));
    this.writeOwner();
    mkdirSync(this.qemuDir, { mode: 0o700 });
  }
  private writeOwner(extra: Partial<RunDirOwner> = {}): void {
    writeFileSync(join(this.path, OWNER_FILE), `${JSON.stringify({ ...currentOwner(), ...extra })}\n`, {
      mode: 0o600,
    });
  }
  /** Records a cgroup made for this VM, so that reaping removes it too. */
  recordCgroup(cgroup: string): void {
    this.writeOwner({ cgroup });
  }
  /** The directory QEMU sees (its only writable place). */
  get qemuDir(): string {
    return join(this.path, "qemu");
  }
  get qmpSocket(): string {
    return join(this.qemuDir, "qmp.sock");
  }
  get agentSocket(): string {
    return join(this.qemuDir, "agent.sock");
  }
  /** The console FIFO (outside `qemu/`: QEMU sees only this file of the directory). */
  get consolePipe(): string {
    return join(this.path, "console.pipe");
  }
  /** Removes the directory and everything in it. Idempotent. */
  remove(): void {
    rmSync(this.path, { recursive: true, force: true });
  }
}
