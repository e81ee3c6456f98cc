import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A real terminal for end-to-end CLI tests: a tmux server on a private
 * socket running one command in a window of a given size. The command's
 * exit status lands in a file (`status()`), the screen is read with
 * `capture-pane`.
 */
export class TmuxTerminal {
  private readonly dir = mkdtempSync(join(tmpdir(), "sm-tmux-"));
  private readonly socket = join(this.dir, "tmux.sock");
  private readonly statusFile = join(this.dir, "status");

  /** Starts `command` (a shell command line) in a detached `cols`×`rows` window. */
  constructor(command: string, opts: { cols?: number; rows?: number; env?: Record<string, string> } = {}) {
    const env = Object.entries(opts.env ?? {})
      .map(([k, v]) => `${k}=${shq(v)} `)
      .join("");
    // `exec` keeps no shell around the CLI; the status is written by an outer sh
    const line = `${env}${command}; echo $? > ${shq(this.statusFile)}; sleep 600`;
    this.tmux(
      "new-session",
      "-d",
      "-s",
      "t",
      "-x",
      String(opts.cols ?? 80),
      "-y",
      String(opts.rows ?? 24),
      "sh",
      "-c",
      line,
    );
  }

  private tmux(...args: string[]): string {
    return execFileSync("tmux", ["-S", this.socket, "-f", "/dev/null", ...args], {
      encoding: "utf8",
      env: { ...process.env, TMUX: "" },
    });
  }

  /** The visible screen as text (`escapes` keeps colors as ANSI sequences). */
  screen(escapes = false): string {
    return this.tmux("capture-pane", "-p", ...(escapes ? ["-e"] : []), "-t", "t");
  }

  /** Types keys (`send-keys` names: `Enter`, `C-c`, ... or literal text). */
  send(...keys: string[]): void {
    this.tmux("send-keys", "-t", "t", ...keys);
  }

  /** Types text literally (no key-name lookup). */
  type(text: string): void {
    this.tmux("send-keys", "-t", "t", "-l", "--", text);
  }

  /** Resizes the window (the program gets SIGWINCH). */
  resize(cols: number, rows: number): void {
    this.tmux("resize-window", "-t", "t", "-x", String(cols), "-y", String(rows));
  }

  /** The command's exit status once it has ended, else undefined. */
  status(): number | undefined {
    if (!existsSync(this.statusFile)) return undefined;
    const text = readFileSync(this.statusFile, "utf8").trim();
    return text === "" ? undefined : Number(text);
  }

  /** Polls the screen until `pattern` matches (returns the screen) or the deadline passes (throws with the screen). */
  async waitFor(pattern: RegExp, timeoutMs = 60_000, escapes = false): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = this.screen(escapes);
      if (pattern.test(s)) return s;
      if (Date.now() > deadline) throw new Error(`screen never matched ${pattern}:\n${s}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Polls until the command has exited; returns its status. */
  async waitForExit(timeoutMs = 60_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = this.status();
      if (s !== undefined) return s;
      if (Date.now() > deadline) throw new Error(`the command did not exit:\n${this.screen()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Kills the tmux server (and so the command) and removes the socket directory. */
  close(): void {
    try {
      this.tmux("kill-server");
    } catch {}
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
