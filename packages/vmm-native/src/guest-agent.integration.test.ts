import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { resolveGuestAssets } from "./guest-assets.js";
import { Machine } from "./machine.js";
import { makeBusyboxRootfs } from "./test-support/busybox-rootfs.js";

const work = mkdtempSync(join(tmpdir(), "sm-agent-vm-"));
const e2e = fileURLToPath(new URL("../guest/agent/tests/e2e.mjs", import.meta.url));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/**
 * Every message of the agent protocol against the real agent as PID 1 of a
 * real guest: the agent's own end-to-end suite (exec, stdin, chain, timeout,
 * signal, tty + resize, flow control, files, tcp, workload, malformed input,
 * 500 concurrent streams, session reset) over the VM's virtio-serial port.
 */
describe("guest agent in a VM", () => {
  it("passes the agent end-to-end suite over virtio-serial", async () => {
    const a = resolveGuestAssets();
    await using m = await Machine.boot({
      kernel: a.kernel,
      initrd: a.initrd,
      memoryMib: 256,
      vcpus: 1,
      rootfs: makeBusyboxRootfs(work),
    });
    const child = spawn(process.execPath, [e2e, "--socket", m.agentSocketPath], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.stderr.on("data", (d) => {
      out += d;
    });
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    // Every check the suite has ran and passed: its list, its "ok" lines and its summary agree.
    const names = execFileSync(process.execPath, [e2e, "--list"], { encoding: "utf8" }).trim().split("\n");
    expect(names.length).toBeGreaterThan(20);
    const lines = out.trim().split("\n");
    const passed = lines.filter((l) => l.startsWith("ok   ")).map((l) => l.slice(5).split(" — ")[0]);
    expect(passed, out).toEqual(names);
    expect(
      lines.filter((l) => l.startsWith("FAIL")),
      out,
    ).toEqual([]);
    expect(lines.at(-1), out).toBe(`${names.length} passed, 0 failed`);
    expect(code, out).toBe(0);
  });
});
