import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openAgentSession } from "./agent-channel.js";
import { isVmExited, VmmError } from "./errors.js";
import { resolveGuestAssets } from "./guest-assets.js";
import { Machine } from "./machine.js";
import type { MachineSpec } from "./qemu-args.js";
import { openSnapshotFiles } from "./snapshot-files.js";
import { makeBusyboxRootfs } from "./test-support/busybox-rootfs.js";
import { machineTracker, sh } from "./test-support/machine-harness.js";
import { WARMUP_RUNS, warmTranslation } from "./translation-warmup.js";

const work = mkdtempSync(join(tmpdir(), "sm-engine-"));
const snapDir = join(work, "snap");
let spec: MachineSpec;
const { track, closeAll } = machineTracker();

beforeAll(() => {
  const assets = resolveGuestAssets();
  spec = {
    kernel: assets.kernel,
    initrd: assets.initrd,
    memoryMib: 256,
    vcpus: 1,
    rootfs: makeBusyboxRootfs(work),
  };
});

afterAll(async () => {
  await closeAll();
  rmSync(work, { recursive: true, force: true });
});

describe("Machine under QEMU", () => {
  it("boots, execs uname -a through the agent, and snapshots", async () => {
    const m = await track(Machine.boot(spec, { memoryFile: join(snapDir, "memory.bin") }));
    const session = await openAgentSession(m);
    const r = await session.run({ argv: ["uname", "-a"] });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.toString()).toMatch(/^Linux supermachine 6\.1\.\d+ .* x86_64/);
    const fail = await sh(session, "echo oops >&2; exit 7");
    expect(fail).toEqual({ out: "", err: "oops\n", code: 7 });
    // cgroup2 favours moving processes (each exec joins its own group): no RCU wait per exec
    expect((await sh(session, "grep -c ' /sys/fs/cgroup cgroup2 .*favordynmods' /proc/mounts")).out).toBe(
      "1\n",
    );
    if (m.engine.accel === "tcg") {
      // TCG runs `rep movsb` a byte per iteration: the guest must not be told it is the fast copy
      const flags = (await sh(session, "grep -m1 ^flags /proc/cpuinfo")).out.split(/\s+/);
      expect(flags).toContain("sse2");
      expect(flags).not.toContain("erms");
      expect(flags).not.toContain("fsrm");
    }
    // the agent (pid 1) runs SCHED_BATCH so it never preempts a writer; what it starts runs normally
    expect((await sh(session, "cut -d' ' -f41 /proc/self/stat /proc/1/stat")).out).toBe("0\n3\n");
    await sh(session, "echo baked > /baked.txt");
    await session.close();
    const files = await m.captureSnapshot(snapDir);
    expect(files.record.spec.memoryMib).toBe(256);
    await m.stop();
    expect((await m.exited).signal).toBeNull();
  });

  it("restores three VMs at once from the snapshot, isolated from each other", async () => {
    const vms = await Promise.all([0, 1, 2].map(() => track(Machine.restore(snapDir))));
    const sessions = await Promise.all(vms.map((m) => openAgentSession(m)));
    for (const s of sessions) expect((await sh(s, "cat /baked.txt")).out).toBe("baked\n");
    await sh(sessions[0]!, "echo mine > /only-in-0.txt");
    const seen = await Promise.all(
      sessions.map((s) => sh(s, "cat /only-in-0.txt 2>/dev/null || echo absent")),
    );
    expect(seen.map((s) => s.out)).toEqual(["mine\n", "absent\n", "absent\n"]);
    const boots = await Promise.all(sessions.map((s) => sh(s, "cat /proc/sys/kernel/random/uuid")));
    expect(new Set(boots.map((b) => b.out)).size).toBe(3);
    // the snapshot's memory file is untouched by the restored VMs' writes
    const again = await track(Machine.restore(snapDir));
    const s4 = await openAgentSession(again);
    expect((await sh(s4, "cat /only-in-0.txt 2>/dev/null || echo absent")).out).toBe("absent\n");
    await Promise.all([...sessions, s4].map((s) => s.close()));
    await Promise.all([...vms, again].map((m) => m.close()));
  });

  // processes that run a program (kernel threads have none; counted with shell builtins only,
  // so the count holds no process of its own but the shell), the names in / and /tmp, the forks since boot
  const USER_PROCS_FILES_LASTPID =
    'n=0; for e in /proc/[0-9]*/exe; do [ -e "$e" ] && n=$((n+1)); done; echo $n; ls -A / /tmp; while read k v; do [ "$k" = processes ] && echo $v; done < /proc/stat';
  it("warms a restored machine's translation under TCG and leaves no process or file behind", async () => {
    const m = await track(Machine.restore(snapDir));
    const s = await openAgentSession(m);
    const state = async () => {
      const lines = (await sh(s, USER_PROCS_FILES_LASTPID)).out.trim().split("\n");
      return { seen: lines.slice(0, -1), forks: Number(lines.at(-1)) };
    };
    // pids a look uses: the fewest of three (kernel threads started meanwhile use pids too)
    let s1 = await state();
    let forksPerLook = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 3; i++) {
      const next = await state();
      forksPerLook = Math.min(forksPerLook, next.forks - s1.forks);
      s1 = next;
    }
    const ms = await warmTranslation(m, s);
    expect(ms > 0).toBe(m.accel === "tcg"); // hardware accelerators translate nothing
    const s2 = await state();
    expect(s2.seen).toEqual(s1.seen); // same number of processes, same files
    // it really ran: a process per warm-up exec
    if (m.accel === "tcg") expect(s2.forks - s1.forks - forksPerLook).toBeGreaterThanOrEqual(WARMUP_RUNS);
    await s.close();
    await m.close();
  });

  it("does not wait twice for an image shell that hangs, and warms with the agent's binary when there is none", async () => {
    const m = await track(Machine.restore(snapDir));
    const s = await openAgentSession(m);
    const bb = (script: string) => s.run({ argv: ["/bin/busybox", "sh", "-c", script] });
    // a shell that records each start and hangs
    await bb(
      "rm /bin/sh && printf '#!/bin/busybox sh\\necho x >> /tmp/sh-starts\\nexec /bin/busybox sleep 1000\\n' > /bin/sh && chmod 755 /bin/sh",
    );
    await warmTranslation(m, s, 1_000);
    if (m.accel === "tcg") {
      expect((await bb("cat /tmp/sh-starts")).stdout.toString()).toBe("x\n"); // started once, not three times
      expect((await bb("ps | grep -c '[s]leep 1000'")).stdout.toString()).toBe("0\n"); // and killed
    }
    // no shell at all: the agent's own binary is run instead
    await bb("rm /bin/sh");
    const forks = async () => Number((await bb("grep '^processes' /proc/stat | cut -d' ' -f2")).stdout);
    const before = await forks();
    const look = (await forks()) - before;
    const start = await forks();
    await warmTranslation(m, s);
    const ran = (await forks()) - start - look;
    if (m.accel === "tcg") expect(ran).toBeGreaterThanOrEqual(WARMUP_RUNS - 1); // the agent, after the missing sh
    expect((await bb("ls /tmp")).stdout.toString()).toBe("sh-starts\n");
    await s.close();
    await m.close();
  });

  it("gives every restored VM the current clock and its own random stream", async () => {
    const vms = await Promise.all([0, 1].map(() => track(Machine.restore(snapDir))));
    const sessions = await Promise.all(vms.map((m) => openAgentSession(m)));
    const rand = await Promise.all(sessions.map((s) => sh(s, "head -c 16 /dev/urandom | od -An -tx1")));
    expect(rand[0]!.out).not.toBe(rand[1]!.out);
    const clocks = await Promise.all(sessions.map((s) => sh(s, "date +%s")));
    for (const c of clocks) expect(Math.abs(Number(c.out.trim()) - Date.now() / 1000)).toBeLessThan(120);
    await Promise.all(sessions.map((s) => s.close()));
    await Promise.all(vms.map((m) => m.close()));
  });

  it("snapshots a restored VM and restores from that snapshot; the VM keeps running", async () => {
    const m = await track(Machine.restore(snapDir));
    const s = await openAgentSession(m);
    await sh(s, "echo second-generation > /gen2.txt");
    await s.close();
    const snap2 = join(work, "snap2");
    await m.captureSnapshot(snap2, { resume: true });
    const s1 = await openAgentSession(m);
    expect((await sh(s1, "cat /gen2.txt")).out).toBe("second-generation\n");
    const r = await track(Machine.restore(snap2));
    const s2 = await openAgentSession(r);
    expect((await sh(s2, "cat /gen2.txt /baked.txt")).out).toBe("second-generation\nbaked\n");
    await Promise.all([s1.close(), s2.close(), m.close(), r.close()]);
  });

  it("reports a QEMU killed from outside as VM_EXITED with the console tail", async () => {
    const m = await track(Machine.restore(snapDir));
    const s = await openAgentSession(m);
    const pending = s.run({ argv: ["sleep", "30"] }).then(
      () => "finished",
      (e: unknown) => e,
    );
    process.kill(m.pid, "SIGKILL");
    const info = await m.exited;
    expect(info.signal).toBe("SIGKILL");
    expect(await pending).toMatchObject({ code: "SESSION_CLOSED" });
    const err = await m.pause().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isVmExited(err)).toBe(true);
    expect((err as VmmError).message).toMatch(/killed by SIGKILL/);
    await m.close();
  });

  it("rejects missing or corrupt snapshot files with a clear error", async () => {
    const bad = join(work, "bad");
    const copy = (name: string) => writeFileSync(join(bad, name), readFileSync(join(snapDir, name)));
    const { mkdirSync, copyFileSync } = await import("node:fs");
    mkdirSync(bad);
    await expect(Machine.restore(join(work, "nope"))).rejects.toMatchObject({ code: "SNAPSHOT_INVALID" });
    copy("machine.json");
    expect(() => openSnapshotFiles(bad)).toThrow(/restore.snap.*missing/);
    copy("restore.snap");
    expect(() => openSnapshotFiles(bad)).toThrow(/memory.bin.*missing/);
    copyFileSync(join(snapDir, "memory.bin"), join(bad, "memory.bin"));
    truncateSync(join(bad, "memory.bin"), 1024 * 1024);
    expect(() => openSnapshotFiles(bad)).toThrow(/memory.bin is 1048576 bytes, expected 268435456/);
    truncateSync(join(bad, "memory.bin"), 256 * 1024 * 1024);
    writeFileSync(join(bad, "restore.snap"), "garbage");
    expect(() => openSnapshotFiles(bad)).toThrow(/not a QEMU device-state stream/);
    writeFileSync(join(bad, "machine.json"), "{");
    expect(() => openSnapshotFiles(bad)).toThrow(/machine.json is not valid JSON/);
    // a state file that passes the magic check but is cut short fails the restore itself, and kills its QEMU
    copy("machine.json");
    const state = readFileSync(join(snapDir, "restore.snap"));
    writeFileSync(join(bad, "restore.snap"), state.subarray(0, Math.floor(state.length / 2)));
    const err = await Machine.restore(bad, { timeoutMs: 20_000 }).then(
      async (m) => {
        await track(Promise.resolve(m));
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(VmmError);
    expect((err as VmmError).code, (err as Error).message).toBe("RESTORE_FAILED");
  });

  it("speaks QMP with a real QEMU: typed results, typed errors, events", async () => {
    const m = await track(Machine.restore(snapDir));
    expect(await m.qmp.execute("query-status", {})).toMatchObject({ running: true, status: "running" });
    const bad = await m.qmp.execute("migrate-incoming", { uri: "file:/nonexistent" }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(bad).toBeInstanceOf(VmmError);
    expect((bad as VmmError).code).toBe("QMP_ERROR");
    expect((bad as VmmError).details).toMatchObject({
      command: "migrate-incoming",
      errorClass: "GenericError",
    });
    const stopped = m.qmp.waitForEvent("STOP");
    await m.pause();
    expect((await stopped).event).toBe("STOP");
    expect(await m.qmp.execute("query-status", {})).toMatchObject({ running: false, status: "paused" });
    const resumed = m.qmp.waitForEvent("RESUME");
    await m.resume();
    expect((await resumed).event).toBe("RESUME");
    await m.close();
  });
});
