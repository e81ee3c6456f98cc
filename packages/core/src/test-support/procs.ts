import { mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, watch, writeFileSync } from "node:fs";
import { join } from "node:path";

/** `pid`, `ppid`, `comm` and state of one process, read from `/proc/PID/stat`. */
export interface ProcInfo {
  pid: number;
  ppid: number;
  comm: string;
  state: string;
}

function readStat(pid: number): ProcInfo | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const open = s.indexOf("(");
    const close = s.lastIndexOf(")");
    const rest = s.slice(close + 2).split(" ");
    return { pid, comm: s.slice(open + 1, close), state: rest[0] ?? "?", ppid: Number(rest[1]) };
  } catch {
    return undefined;
  }
}

/** Every process on the machine (a snapshot of `/proc`). */
export function allProcesses(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const p = readStat(Number(e));
    if (p) out.push(p);
  }
  return out;
}

/** Processes descending from `root` (children, grandchildren, ...), zombies excluded. */
export function descendants(root: number = process.pid): ProcInfo[] {
  const procs = allProcesses();
  const byParent = new Map<number, ProcInfo[]>();
  for (const p of procs) byParent.set(p.ppid, [...(byParent.get(p.ppid) ?? []), p]);
  const out: ProcInfo[] = [];
  const stack = [root];
  while (stack.length) {
    const pid = stack.pop() as number;
    for (const c of byParent.get(pid) ?? []) {
      if (c.state !== "Z") out.push(c);
      stack.push(c.pid);
    }
  }
  return out;
}

/** PIDs of the QEMU processes descending from `root` (this process by default). */
export function qemuPids(root: number = process.pid): number[] {
  return descendants(root)
    .filter((p) => p.comm.startsWith("qemu-system"))
    .map((p) => p.pid)
    .sort((a, b) => a - b);
}

/** True while `pid` runs (a zombie counts as gone). */
export function alive(pid: number): boolean {
  const p = readStat(pid);
  return p !== undefined && p.state !== "Z";
}

/** Open file descriptors of this process, and how many of them are sockets. */
export function fdCounts(): { fds: number; sockets: number } {
  let fds = 0;
  let sockets = 0;
  for (const fd of readdirSync("/proc/self/fd")) {
    let target = "";
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // the fd of the readdir itself, closed meanwhile
    }
    fds++;
    if (target.startsWith("socket:")) sockets++;
  }
  return { fds, sockets };
}

/** Unix socket paths bound by this process (from `/proc/net/unix`, matched by inode). */
export function boundUnixSockets(): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (m?.[1]) inodes.add(m[1]);
    } catch {}
  }
  const out: string[] = [];
  for (const line of readFileSync("/proc/net/unix", "utf8").split("\n").slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length >= 8 && inodes.has(cols[6] as string)) out.push(cols[7] as string);
  }
  return out.sort();
}

/** Polls `cond` every `everyMs` until it holds or `timeoutMs` passes; returns its last value. */
export async function waitFor<T>(cond: () => T | Promise<T>, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Runs `fn` and returns its result with the QEMU processes started meanwhile,
 * as the names of their run directories. Every QEMU the engine starts gets a
 * fresh `vm-*` directory under `$SUPERMACHINE_RUN_DIR` (which `coreFixture`
 * makes private to the test file), and inotify reports each creation however
 * short-lived the QEMU was, so no start can slip between two samples.
 */
export async function watchQemuStarts<T>(fn: () => Promise<T>): Promise<{ result: T; started: string[] }> {
  const base = process.env.SUPERMACHINE_RUN_DIR;
  if (!base) throw new Error("watchQemuStarts needs SUPERMACHINE_RUN_DIR (coreFixture sets it)");
  // the engine makes each VM's run directory in its private per-uid root under the base
  const dir = join(base, `supermachine-${process.getuid?.() ?? 0}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const before = new Set(readdirSync(dir));
  const started = new Set<string>();
  const marker = `.flush-${process.pid}-${Date.now()}`;
  let flushed: (() => void) | undefined;
  const watcher = watch(dir, (_event, name) => {
    if (name === marker) flushed?.();
    else if (name?.startsWith("vm-") && !before.has(name)) started.add(name);
  });
  try {
    const result = await fn();
    // inotify keeps order: once our own marker's event arrives, every earlier one has
    const seen = new Promise<void>((r) => {
      flushed = r;
    });
    writeFileSync(join(dir, marker), "");
    await withDeadline(seen, 10_000, "the run directory's inotify events");
    rmSync(join(dir, marker), { force: true });
    return { result, started: [...started] };
  } finally {
    watcher.close();
  }
}

/** Resolves like `p`, or rejects once `ms` passed, naming `what` it waited for. */
export async function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
