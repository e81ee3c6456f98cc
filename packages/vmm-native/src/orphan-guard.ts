import { existsSync } from "node:fs";

/** A command line that runs QEMU so that it dies with the Node process that started it. */
export interface GuardedCommand {
  command: string;
  args: string[];
  /**
   * The spawned process's standard input must be a pipe from this process,
   * kept open while QEMU runs and ended once it has exited: the macOS guard
   * kills QEMU when that pipe reaches end of file.
   */
  stdinPipe: boolean;
  /** Which guard is used: `pdeathsig` (Linux), `stdin-watch` (macOS) or `none`. */
  guard: "pdeathsig" | "stdin-watch" | "none";
}

/** Where `setpriv` (util-linux) is looked for. */
const SETPRIV_PATHS = ["/usr/bin/setpriv", "/bin/setpriv"];

/**
 * The macOS guard. macOS has no parent-death signal (`PR_SET_PDEATHSIG` is
 * Linux-only and QEMU's `-run-with exit-with-parent` is not implemented
 * there), so a watcher does its job: the shell forks a watcher that holds the
 * read end of a pipe whose write end only the Node process has, then execs
 * QEMU under its own pid. When Node dies for any reason, SIGKILL included,
 * the kernel closes the write end, `cat` sees end of file and the watcher
 * kills QEMU. When QEMU exits first, Node ends the pipe and the watcher exits
 * (its `kill` then finds the pid gone). `$$` in the watcher is the shell's pid,
 * which `exec` hands to QEMU.
 */
export const STDIN_WATCH_SCRIPT =
  'exec 3<&0 </dev/null; (cat <&3 >/dev/null; kill -KILL "$$" 2>/dev/null) & exec 3<&- "$@"';

/**
 * How to start `binary args` so that QEMU never outlives this process:
 *
 * - Linux: `setpriv --pdeathsig KILL -- binary args` (the kernel signals QEMU
 *   when its parent dies);
 * - macOS: `/bin/sh -c STDIN_WATCH_SCRIPT` with a stdin pipe (see
 *   {@link STDIN_WATCH_SCRIPT});
 * - elsewhere, or on Linux without setpriv: QEMU directly (no guard; `doctor`
 *   reports it).
 *
 * QEMU keeps the spawned process's pid in every case.
 */
export function guardAgainstOrphans(
  binary: string,
  args: readonly string[],
  platform: NodeJS.Platform = process.platform,
  setpriv: string | undefined = platform === "linux" ? SETPRIV_PATHS.find((p) => existsSync(p)) : undefined,
): GuardedCommand {
  if (platform === "linux" && setpriv) {
    return {
      command: setpriv,
      args: ["--pdeathsig", "KILL", "--", binary, ...args],
      stdinPipe: false,
      guard: "pdeathsig",
    };
  }
  if (platform === "darwin") {
    return {
      command: "/bin/sh",
      args: ["-c", STDIN_WATCH_SCRIPT, "supermachine-qemu", binary, ...args],
      stdinPipe: true,
      guard: "stdin-watch",
    };
  }
  return { command: binary, args: [...args], stdinPipe: false, guard: "none" };
}
