import { spawn } from "node:child_process";
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
    const summary = out.trim().split("\n").pop() ?? "";
    expect(summary, out).toMatch(/^\d+ passed, 0 failed$/);
    expect(code, out).toBe(0);
  });
});
