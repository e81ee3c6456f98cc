import type { Socket } from "node:net";
import { join } from "node:path";
import { AgentSession } from "@supermachine/agent-protocol";
import type { Accelerator } from "./accelerator.js";
import { type LaunchPlan, planQemuLaunch } from "./confine/launch.js";
import type { ConfineOptions } from "./confine/options.js";
import { ConsoleSink } from "./console-tail.js";
import type { GuestArch } from "./machine-model.js";
import { buildQemuArgs } from "./qemu-args.js";
import type { QemuBinary } from "./qemu-binary.js";
import { QemuProcess } from "./qemu-process.js";
import { RunDir } from "./run-dir.js";
import { connectWhenListening } from "./unix-connect.js";

/** The outcome of booting the real guest under one accelerator. */
export interface ProbeResult {
  /** True when the guest's agent completed its handshake in time. */
  ok: boolean;
  /** Why it failed (QEMU's own words where it said something), or "" when ok. */
  reason: string;
  /** Wall time of the probe. */
  durationMs: number;
}

/** What a probe boots and how. */
export interface ProbeTarget {
  /** Guest architecture (default x86_64). */
  arch?: GuestArch;
  accel: Accelerator;
  cpuModel: string;
  qemu: QemuBinary;
  kernel: string;
  initrd: string;
  /** Give up after this long (ms). */
  timeoutMs: number;
  /** Parent of the probe's private run directory. */
  runDirParent?: string;
  /** How the probe's QEMU is confined (default: like every VM's; `false`: not at all). */
  confine?: ConfineOptions | false;
}

function firstLines(text: string, n = 3): string {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-n)
    .join(" | ");
}

/**
 * Proves an accelerator by booting the real guest kernel and agent (128 MiB,
 * one vCPU, no disk, no network) and waiting for the agent's handshake. A
 * `/dev/kvm` that opens but cannot run a normal guest (e.g. a nested PVM
 * hypervisor) fails here: QEMU aborts, or the guest never answers. QEMU runs
 * confined like any VM's (its own uid, namespaces, seccomp, rlimits, cgroup),
 * since a hypervisor nobody has proven yet is exactly where a QEMU or kernel
 * bug would show. The QEMU process is always killed before this returns.
 */
export async function probeAccelerator(t: ProbeTarget): Promise<ProbeResult> {
  const started = Date.now();
  const deadline = started + t.timeoutMs;
  const runDir = new RunDir(t.runDirParent);
  const memoryFile = join(runDir.path, "memory.bin");
  const spec = { arch: t.arch, kernel: t.kernel, initrd: t.initrd, memoryMib: 128, vcpus: 1, network: false };
  const args = buildQemuArgs(spec, {
    accel: t.accel,
    cpuModel: t.cpuModel,
    memoryFile,
    memoryShared: true,
    qmpSocket: runDir.qmpSocket,
    agentSocket: runDir.agentSocket,
    consolePipe: runDir.consolePipe,
    incoming: false,
  });
  let consoleSink: ConsoleSink;
  try {
    consoleSink = await ConsoleSink.open(runDir.consolePipe);
  } catch (err) {
    runDir.remove();
    return { ok: false, reason: `console pipe: ${(err as Error).message}`, durationMs: Date.now() - started };
  }
  let launch: LaunchPlan;
  try {
    launch = planQemuLaunch({
      qemu: t.qemu.path,
      args,
      files: {
        kernel: t.kernel,
        initrd: t.initrd,
        memoryFile,
        memoryWritable: true,
        runDir,
        consolePipe: runDir.consolePipe,
      },
      accel: t.accel,
      memoryMib: spec.memoryMib,
      vcpus: spec.vcpus,
      confine: t.confine,
    });
  } catch (err) {
    consoleSink.close();
    runDir.remove();
    return {
      ok: false,
      reason: `cannot confine the probe's QEMU: ${(err as Error).message}`,
      durationMs: Date.now() - started,
    };
  }
  const proc = new QemuProcess(t.qemu.path, args, consoleSink, launch);
  let timer: NodeJS.Timeout | undefined;
  let socket: Socket | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the guest did not answer within ${t.timeoutMs} ms`)),
        t.timeoutMs,
      );
    });
    const died = proc.exited.then((info) => {
      const how = info.signal ? `killed by ${info.signal}` : `exit status ${info.exitCode}`;
      const said = firstLines(info.stderrTail) || firstLines(info.consoleTail) || "nothing";
      throw new Error(`QEMU exited (${how}): ${said}`);
    });
    died.catch(() => {}); // we kill QEMU ourselves once the race is decided
    await Promise.race([
      (async () => {
        socket = await connectWhenListening(runDir.agentSocket, deadline, {
          intervalMs: 10,
          stop: () => (proc.hasExited ? Promise.reject(new Error("QEMU exited")) : undefined),
        });
        launch.afterStart();
        const session = await AgentSession.open(socket, {
          handshakeTimeoutMs: Math.max(1, deadline - Date.now()),
        });
        await session.close().catch(() => {});
      })(),
      died,
      timeout,
    ]);
    return { ok: true, reason: "", durationMs: Date.now() - started };
  } catch (err) {
    return { ok: false, reason: (err as Error).message, durationMs: Date.now() - started };
  } finally {
    clearTimeout(timer);
    socket?.destroy();
    await proc.kill();
    runDir.remove();
  }
}
