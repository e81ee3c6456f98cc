import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { describe, expect, it } from "vitest";
import { guardAgainstOrphans, STDIN_WATCH_SCRIPT } from "./orphan-guard.js";

describe("guardAgainstOrphans (argument vectors)", () => {
  it("wraps QEMU in setpriv --pdeathsig KILL on Linux", () => {
    expect(guardAgainstOrphans("/usr/bin/qemu", ["-M", "virt"], "linux", "/usr/bin/setpriv")).toEqual({
      command: "/usr/bin/setpriv",
      args: ["--pdeathsig", "KILL", "--", "/usr/bin/qemu", "-M", "virt"],
      stdinPipe: false,
      guard: "pdeathsig",
    });
  });

  it("uses the stdin watcher on macOS (no parent-death signal there)", () => {
    const g = guardAgainstOrphans("/opt/homebrew/bin/qemu-system-aarch64", ["-accel", "hvf"], "darwin");
    expect(g).toEqual({
      command: "/bin/sh",
      args: [
        "-c",
        STDIN_WATCH_SCRIPT,
        "supermachine-qemu",
        "/opt/homebrew/bin/qemu-system-aarch64",
        "-accel",
        "hvf",
      ],
      stdinPipe: true,
      guard: "stdin-watch",
    });
  });

  it("runs QEMU bare where neither exists", () => {
    expect(guardAgainstOrphans("/q", ["-x"], "linux", "")).toMatchObject({ command: "/q", guard: "none" });
    expect(guardAgainstOrphans("/q", ["-x"], "freebsd")).toMatchObject({ command: "/q", guard: "none" });
  });
});

// The guards themselves, with real processes (`sleep` standing in for QEMU): a parent Node
// process starts the guarded command and is then SIGKILLed; the stand-in must die with it.
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function gone(pid: number, deadlineMs = 10_000): Promise<boolean> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

/** A Node parent that spawns `cmd args` (stdin a pipe when asked) and prints the child's pid. */
function parent(cmd: string, args: string[], stdinPipe: boolean): ChildProcess {
  const code = `
    const { spawn } = require("node:child_process");
    const [cmd, args, pipe] = JSON.parse(process.argv[1]);
    const c = spawn(cmd, args, { stdio: [pipe ? "pipe" : "ignore", "ignore", "inherit"] });
    process.stdout.write(c.pid + "\\n");
    setInterval(() => {}, 1000);`;
  return spawn(process.execPath, ["-e", code, JSON.stringify([cmd, args, stdinPipe])], {
    stdio: ["ignore", "pipe", "inherit"],
  });
}

async function childPid(p: ChildProcess): Promise<number> {
  const [chunk] = (await once(p.stdout!, "data")) as [Buffer];
  return Number(chunk.toString().trim());
}

describe("the guards with real processes", () => {
  for (const platform of ["linux", "darwin"] as const) {
    it(`${platform}: the guarded process dies when its Node parent is SIGKILLed, and keeps its pid`, async () => {
      const g = guardAgainstOrphans("/bin/sleep", ["600"], platform);
      expect(g.guard).toBe(platform === "linux" ? "pdeathsig" : "stdin-watch");
      const p = parent(g.command, g.args, g.stdinPipe);
      const pid = await childPid(p);
      // the spawned pid becomes the stand-in itself (exec), so signalling it by pid reaches "QEMU"
      let comm = "";
      for (let i = 0; i < 100 && comm !== "sleep"; i++) {
        comm = (await import("node:fs")).readFileSync(`/proc/${pid}/comm`, "utf8").trim();
        if (comm !== "sleep") await new Promise((r) => setTimeout(r, 10));
      }
      expect(comm).toBe("sleep");
      p.kill("SIGKILL");
      await once(p, "exit");
      expect(await gone(pid)).toBe(true);
    });
  }

  it("darwin watcher: exits by itself once the guarded process is gone and the pipe is ended", async () => {
    const g = guardAgainstOrphans("/bin/sleep", ["0.2"], "darwin");
    const c = spawn(g.command, g.args, { stdio: ["pipe", "ignore", "inherit"] });
    await once(c, "exit");
    c.stdin?.end();
    // the watcher (a subshell reading our pipe) must not linger
    const { execFileSync } = await import("node:child_process");
    const end = Date.now() + 10_000;
    let left = "";
    do {
      left = execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" })
        .split("\n")
        .filter((l) => l.includes("supermachine-qemu") && l.includes("sleep 0.2"))
        .join("\n");
      if (!left) break;
      await new Promise((r) => setTimeout(r, 20));
    } while (Date.now() < end);
    expect(left).toBe("");
  });
});
