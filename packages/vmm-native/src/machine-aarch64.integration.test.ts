import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { arm64BusyboxPath } from "../../../test-support/test-images.js";
import { openAgentSession } from "./agent-channel.js";
import { resolveGuestAssets } from "./guest-assets.js";
import { Machine } from "./machine.js";
import type { MachineSpec } from "./qemu-args.js";
import { openSnapshotFiles } from "./snapshot-files.js";
import { makeBusyboxRootfs } from "./test-support/busybox-rootfs.js";
import { machineTracker, sh } from "./test-support/machine-harness.js";

// aarch64 guests on this x86_64 host: QEMU `virt` under TCG, the cross-built kernel and agent
// (packages/guest-aarch64 or the user cache), Debian's arm64 busybox as the root fs.
const work = mkdtempSync(join(tmpdir(), "sm-arm-engine-"));
const snapDir = join(work, "snap");
let spec: MachineSpec;
const { track, closeAll } = machineTracker();

beforeAll(() => {
  const assets = resolveGuestAssets("aarch64");
  expect(assets.arch).toBe("aarch64");
  spec = {
    arch: "aarch64",
    kernel: assets.kernel,
    initrd: assets.initrd,
    memoryMib: 256,
    vcpus: 1,
    rootfs: makeBusyboxRootfs(work, arm64BusyboxPath()),
  };
});

afterAll(async () => {
  await closeAll();
  rmSync(work, { recursive: true, force: true });
});

describe("aarch64 Machine under QEMU virt (TCG)", () => {
  it("boots the arm64 guest, execs through the agent and snapshots; machine.json names the arch", async () => {
    const m = await track(Machine.boot(spec, { memoryFile: join(snapDir, "memory.bin") }));
    expect(m.engine.accel).toBe("tcg");
    expect(m.engine.qemu.path).toMatch(/qemu-system-aarch64$/);
    const session = await openAgentSession(m, 120_000);
    const r = await session.run({ argv: ["uname", "-m"] });
    expect(r.stdout.toString()).toBe("aarch64\n");
    expect((await sh(session, "cat /proc/cpuinfo | grep -c ^processor")).out).toBe("1\n");
    const fail = await sh(session, "echo oops >&2; exit 7");
    expect(fail).toEqual({ out: "", err: "oops\n", code: 7 });
    await sh(session, "echo baked-on-arm > /baked.txt");
    await session.close();
    const files = await m.captureSnapshot(snapDir);
    expect(files.record.arch).toBe("aarch64");
    expect(files.record.spec.arch).toBe("aarch64");
    const onDisk = JSON.parse(readFileSync(join(snapDir, "machine.json"), "utf8"));
    expect(onDisk.arch).toBe("aarch64");
    await m.stop();
  });

  it("restores two VMs copy-on-write from the snapshot, each isolated, with its own random stream", async () => {
    const vms = await Promise.all([0, 1].map(() => track(Machine.restore(snapDir))));
    for (const vm of vms) expect(vm.engine.qemu.path).toMatch(/qemu-system-aarch64$/);
    const sessions = await Promise.all(vms.map((m) => openAgentSession(m)));
    for (const s of sessions) expect((await sh(s, "cat /baked.txt")).out).toBe("baked-on-arm\n");
    await sh(sessions[0]!, "echo mine > /only-in-0.txt");
    const seen = await Promise.all(
      sessions.map((s) => sh(s, "cat /only-in-0.txt 2>/dev/null || echo absent")),
    );
    expect(seen.map((s) => s.out)).toEqual(["mine\n", "absent\n"]);
    const rand = await Promise.all(sessions.map((s) => sh(s, "head -c 16 /dev/urandom | od -An -tx1")));
    expect(rand[0]!.out).not.toBe(rand[1]!.out);
    await Promise.all(sessions.map((s) => s.close()));
    await Promise.all(vms.map((m) => m.close()));
  });

  it("snapshots a restored VM (full state replayed into a fresh memory file) and restores that", async () => {
    const m = await track(Machine.restore(snapDir));
    const s = await openAgentSession(m);
    await sh(s, "echo second-generation > /gen2.txt");
    await s.close();
    const snap2 = join(work, "snap2");
    await m.captureSnapshot(snap2, { resume: true });
    expect(openSnapshotFiles(snap2).record.spec.arch).toBe("aarch64");
    const r = await track(Machine.restore(snap2));
    const s2 = await openAgentSession(r);
    expect((await sh(s2, "cat /gen2.txt /baked.txt; uname -m")).out).toBe(
      "second-generation\nbaked-on-arm\naarch64\n",
    );
    await Promise.all([s2.close(), m.close(), r.close()]);
  });

  it("refuses to restore the aarch64 snapshot under KVM (a foreign architecture)", async () => {
    await expect(Machine.restore(snapDir, { accel: "kvm" })).rejects.toMatchObject({
      code: "ACCEL_MISMATCH",
    });
  });
});
