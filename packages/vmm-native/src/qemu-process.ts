import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import type { ConsoleSink } from "./console-tail.js";
import { type ExitInfo, VmExitedError } from "./errors.js";

const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p));

/**
 * One QEMU process. Started through `setpriv --pdeathsig KILL` on Linux so the
 * kernel kills it when the Node process dies, even by SIGKILL: no orphans.
 */
export class QemuProcess {
  /** Operating-system process id of QEMU. */
  readonly pid: number;
  /** Resolves once QEMU has exited, with how it ended. Never rejects. */
  readonly exited: Promise<ExitInfo>;
  private readonly child: ChildProcess;
  private stderrBuf = "";
  private ended = false;

  constructor(
    binary: string,
    args: string[],
    /** Where the guest console goes; its tail goes into {@link ExitInfo}. */
    readonly consoleSink: ConsoleSink,
  ) {
    const [cmd, argv] = SETPRIV ? [SETPRIV, ["--pdeathsig", "KILL", "--", binary, ...args]] : [binary, args];
    this.child = spawn(cmd, argv, { stdio: ["ignore", "ignore", "pipe"], detached: false });
    this.pid = this.child.pid ?? -1;
    this.child.stderr?.setEncoding("utf8");
    this.child.stderr?.on("data", (s: string) => {
      this.stderrBuf = (this.stderrBuf + s).slice(-4096);
    });
    this.exited = new Promise((resolve) => {
      const done = (code: number | null, signal: NodeJS.Signals | null) => {
        if (this.ended) return;
        this.ended = true;
        consoleSink.close(); // reads the console's last bytes from the pipe
        resolve({
          exitCode: code,
          signal,
          consoleTail: consoleSink.tail(),
          stderrTail: this.stderrBuf,
        });
      };
      this.child.once("exit", done);
      this.child.once("error", (err) => {
        this.stderrBuf += `\nspawn failed: ${err.message}`;
        done(127, null);
      });
    });
  }

  /** True once the process has exited. */
  get hasExited(): boolean {
    return this.ended;
  }

  /** A promise that rejects with {@link VmExitedError} when QEMU exits. Use it in races. */
  exitedAsError(context?: string): Promise<never> {
    return this.exited.then((info) => {
      throw new VmExitedError(info, context);
    });
  }

  /** Sends a signal if the process is still running. */
  signal(sig: NodeJS.Signals = "SIGKILL"): void {
    if (!this.ended) this.child.kill(sig);
  }

  /** Kills QEMU (SIGKILL) and waits for it to be gone. Idempotent. */
  async kill(): Promise<ExitInfo> {
    this.signal("SIGKILL");
    return this.exited;
  }
}
