import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

/** Running and not a zombie (a reparented zombie waits for init to reap it). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

describe("no orphan QEMU processes", () => {
  it("kills QEMU when the owning Node process is SIGKILLed", async () => {
    const script = `
      import { Machine, resolveGuestAssets } from ${JSON.stringify(new URL("../dist/index.js", import.meta.url).pathname)};
      const a = resolveGuestAssets();
      const ms = await Promise.all([0, 1].map(() => Machine.boot({ kernel: a.kernel, initrd: a.initrd, memoryMib: 128, vcpus: 1 })));
      console.log(JSON.stringify(ms.map((m) => m.pid)));
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const pids: number[] = await new Promise((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (d) => {
        out += d;
        if (out.includes("\n")) resolve(JSON.parse(out));
      });
      child.once("exit", (code) => reject(new Error(`child exited early (${code})`)));
    });
    expect(pids).toHaveLength(2);
    for (const pid of pids) expect(alive(pid)).toBe(true);
    child.kill("SIGKILL");
    const deadline = Date.now() + 10_000;
    while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(pids.filter(alive)).toEqual([]);
  });
});
