import { type ChildProcess, type StdioOptions, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { constants } from "node:os";
import type { Readable } from "node:stream";
import type { LaunchPlan } from "./confine/launch.js";
import type { ConsoleSink } from "./console-tail.js";
import { type ExitInfo, VmExitedError } from "./errors.js";
import { guardAgainstOrphans } from "./orphan-guard.js";

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(
  Object.entries(constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]),
);

/** `/proc/PID/comm`, or "" once the process is gone. */
function readComm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

/** The first child of `pid` (from /proc/PID/task/PID/children, else by scanning /proc), or undefined. */
function childOf(pid: number): number | undefined {
  try {
    const first = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(" ")[0];
    return first ? Number(first) : undefined;
  } catch {
    // kernel without CONFIG_PROC_CHILDREN: scan
  }
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) return Number(name);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/**
 * One QEMU process. Started from a {@link LaunchPlan} (confined: the spawned
 * process is bubblewrap's monitor, QEMU its child, whose pid bubblewrap
 * reports; killed with its parent) or, with the plain constructor, through
 * `guardAgainstOrphans` (`setpriv --pdeathsig KILL` on Linux, a stdin
 * watcher on macOS) so QEMU dies when the Node process dies, even by
 * SIGKILL: no orphans.
 */
export class QemuProcess {
  /** Resolves once QEMU has exited, with how it ended. Never rejects. */
  readonly exited: Promise<ExitInfo>;
  /** Resolves once QEMU's pid is known (at once unless confined); never rejects. */
  readonly started: Promise<void>;
  private readonly child: ChildProcess;
  private qemuPid = -1;
  private stderrBuf = "";
  private exitInfo: ExitInfo | undefined;

  /**
   * Spawns `binary args` directly (unconfined, parent-death signal only), or
   * the command of `plan` when one is given (then `binary` and `args` are
   * unused: the plan holds them).
   */
  constructor(
    binary: string,
    args: string[],
    /** Where the guest console goes; its tail goes into {@link ExitInfo}. */
    readonly consoleSink: ConsoleSink,
    private readonly plan?: LaunchPlan,
  ) {
    if (plan) {
      const stdio: StdioOptions = [
        plan.stdinPipe ? "pipe" : "ignore",
        "ignore",
        "pipe",
        plan.infoFd ? "pipe" : "ignore",
        ...plan.fds,
      ];
      try {
        this.child = spawn(plan.command, plan.args, { stdio, env: plan.env, detached: false });
      } finally {
        plan.spawned();
      }
    } else {
      const g = guardAgainstOrphans(binary, args);
      this.child = spawn(g.command, g.args, {
        stdio: [g.stdinPipe ? "pipe" : "ignore", "ignore", "pipe"],
        detached: false,
      });
    }
    // the orphan guard's pipe (macOS): held open while QEMU runs, never written
    this.child.stdin?.on("error", () => {});
    const info = plan?.infoFd ? (this.child.stdio[3] as Readable | null) : null;
    if (!info) this.qemuPid = this.child.pid ?? -1;
    this.started = info ? this.readQemuPid(info) : Promise.resolve();
    this.child.stderr?.setEncoding("utf8");
    this.child.stderr?.on("data", (s: string) => {
      this.stderrBuf = (this.stderrBuf + s).slice(-4096);
    });
    this.exited = new Promise((resolve) => {
      const done = (code: number | null, signal: NodeJS.Signals | null) => {
        if (this.exitInfo) return;
        consoleSink.close(); // reads the console's last bytes from the pipe
        // bubblewrap's monitor exits 128+N when QEMU died of signal N
        const sig = plan?.monitor && code !== null && code > 128 ? SIGNAL_NAMES.get(code - 128) : undefined;
        this.exitInfo = {
          exitCode: sig ? null : code,
          signal: sig ?? signal,
          consoleTail: consoleSink.tail(),
          stderrTail: this.stderrBuf,
        };
        plan?.cleanup();
        this.child.stdin?.destroy(); // QEMU is gone: let the orphan guard's watcher exit
        resolve(this.exitInfo);
      };
      this.child.once("exit", done);
      this.child.once("error", (err) => {
        this.stderrBuf += `\nspawn failed: ${err.message}`;
        done(127, null);
      });
    });
  }

  /**
   * QEMU's pid when confined: bubblewrap reports its sandbox init's pid on
   * the info descriptor; QEMU is that init's child. (QEMU is not made pid 1
   * itself: the kernel's guarantee that a pid namespace dies with its init
   * is what kills QEMU, running as another uid, when Node dies.)
   */
  private async readQemuPid(info: Readable): Promise<void> {
    const initPid = await new Promise<number | undefined>((resolve) => {
      let text = "";
      info.setEncoding("utf8");
      info.on("data", (s: string) => {
        text += s;
        const pid = /"child-pid"\s*:\s*(\d+)/.exec(text)?.[1];
        if (pid) resolve(Number(pid));
      });
      info.once("close", () => resolve(undefined));
      info.once("error", () => resolve(undefined));
    });
    if (initPid === undefined) return;
    for (let delay = 1; !this.exitInfo; delay = Math.min(delay * 2, 20)) {
      const child = childOf(initPid);
      if (child) {
        this.qemuPid = child;
        return;
      }
      const comm = readComm(initPid);
      if (comm === "") return;
      if (comm !== "bwrap") {
        this.qemuPid = initPid; // no init in between (no pid namespace): the sandboxed process is QEMU
        return;
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  /** Operating-system process id of QEMU itself (-1 until known, see {@link started}). */
  get pid(): number {
    return this.qemuPid;
  }

  /** True once the process has exited. */
  get hasExited(): boolean {
    return this.exitInfo !== undefined;
  }

  /**
   * True once QEMU is known to be gone, even before {@link exited} resolves.
   * Confined, QEMU is reaped by its monitor, and the monitor's own exit
   * reaches this process a little later: in that window the pid is already
   * free while {@link hasExited} still says false.
   */
  get isGone(): boolean {
    if (this.exitInfo) return true;
    if (!this.plan?.monitor || this.qemuPid <= 0) return false;
    try {
      process.kill(this.qemuPid, 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === "ESRCH";
    }
  }

  /** A promise that rejects with {@link VmExitedError} when QEMU exits. Use it in races. */
  exitedAsError(context?: string): Promise<never> {
    return this.exited.then((info) => {
      throw new VmExitedError(info, context);
    });
  }

  /**
   * Sends a signal to QEMU if it is still running. Confined, QEMU is not
   * this process's child: it is signalled by pid while its monitor (which
   * reaps it) is alive, and the monitor is signalled when the pid is not
   * known yet (QEMU then dies with it).
   */
  signal(sig: NodeJS.Signals = "SIGKILL"): void {
    if (this.exitInfo) return;
    if (this.plan?.monitor && this.qemuPid > 0) {
      try {
        process.kill(this.qemuPid, sig);
        return;
      } catch {
        // gone already: the monitor is about to exit
      }
    }
    this.child.kill(sig);
  }

  /** Kills QEMU (SIGKILL) and waits for it to be gone. Idempotent. */
  async kill(): Promise<ExitInfo> {
    this.signal("SIGKILL");
    return this.exited;
  }
}
