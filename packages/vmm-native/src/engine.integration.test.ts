import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { openAgentSession } from "./agent-channel.js";
import { chooseEngine, resetEngineMemo, verdictDir } from "./engine.js";
import type { VmmError } from "./errors.js";
import { resolveGuestAssets } from "./guest-assets.js";
import { Machine } from "./machine.js";
import { makeBusyboxRootfs } from "./test-support/busybox-rootfs.js";

// The accelerator probe against real guest boots. The host's own /dev/kvm may
// be missing or unusable (this project's machines have both kinds), so the
// tests point the engine at a stand-in device node and at a QEMU wrapper:
// - `broken-kvm`: QEMU fails as a PVM host's does when asked for KVM;
// - `kvm-as-tcg`: `-accel kvm -cpu host` runs as TCG, so a probe that boots
//   the real guest to its handshake passes and auto mode picks "kvm".
// Every other invocation (help queries, TCG) goes to the real QEMU.
const REAL_QEMU = "/usr/bin/qemu-system-x86_64";
const work = mkdtempSync(join(tmpdir(), "sm-accel-"));
const log = join(work, "invocations.log");
const saved = { ...process.env };
let guest: { kernel: string; initrd: string };

function wrapper(name: string, onKvm: string): string {
  const path = join(work, name);
  writeFileSync(
    path,
    `#!/bin/bash
kvm=0
for a in "$@"; do [ "$a" = kvm ] && kvm=1; done
help=0
for a in "$@"; do [ "$a" = help ] || [ "$a" = --version ] && help=1; done
if [ $kvm = 1 ] && [ $help = 0 ]; then
  echo "kvm-boot $$" >> ${log}
  ${onKvm}
fi
exec ${REAL_QEMU} "$@"
`,
  );
  chmodSync(path, 0o755);
  return path;
}

const BROKEN = `echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x0" >&2; exit 1`;
const AS_TCG = `args=(); for a in "$@"; do case "$a" in kvm) args+=(tcg);; host) args+=(max);; *) args+=("$a");; esac; done; exec ${REAL_QEMU} "\${args[@]}"`;

const kvmBoots = () =>
  readFileSync(log, { encoding: "utf8", flag: "a+" })
    .split("\n")
    .filter((l) => l.startsWith("kvm-boot")).length;

beforeAll(() => {
  const a = resolveGuestAssets();
  guest = { kernel: a.kernel, initrd: a.initrd };
});
beforeEach(() => {
  process.env.SUPERMACHINE_CACHE = mkdtempSync(join(work, "cache-"));
  process.env.SUPERMACHINE_KVM_DEVICE = "/dev/null"; // exists and opens read-write: only a boot can tell
  process.env.SUPERMACHINE_CONFINE = "off"; // the QEMU wrapper scripts below cannot run inside QEMU's sandbox
  delete process.env.SUPERMACHINE_ACCEL;
  rmSync(log, { force: true });
  resetEngineMemo();
});
afterEach(() => {
  process.env = { ...saved };
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("a KVM that cannot run the guest", () => {
  beforeEach(() => {
    process.env.SUPERMACHINE_QEMU = wrapper("broken-kvm", BROKEN);
  });

  it("auto falls back to TCG once, says why, and caches the verdict", async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }) => {
      if (w.code === "SUPERMACHINE_ACCEL_FALLBACK") warnings.push(w.message);
    };
    process.on("warning", onWarning);
    try {
      const e = await chooseEngine(guest);
      expect(e.accel).toBe("tcg");
      expect(e.cpuModel).toBe("max,-erms,-fsrm");
      expect(e.fallbackReason).toContain("failed to set MSR 0x10a");
      expect(kvmBoots()).toBe(1);
      // the same process asks again: no new probe, no second warning
      expect((await chooseEngine(guest)).accel).toBe("tcg");
      await new Promise((r) => setImmediate(r));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain("using TCG");
      // a new process (memo gone) reads the verdict from disk: still no new probe
      resetEngineMemo();
      expect((await chooseEngine(guest)).fallbackReason).toContain("MSR 0x10a");
      expect(kvmBoots()).toBe(1);
      const files = readdirSync(verdictDir());
      expect(files).toHaveLength(1);
      const verdict = JSON.parse(readFileSync(join(verdictDir(), files[0] as string), "utf8"));
      expect(verdict).toMatchObject({ accel: "kvm", ok: false, cpuModel: "host" });
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("an explicit kvm fails with ACCEL_UNAVAILABLE carrying the reason", async () => {
    const err = (await chooseEngine({ ...guest, accel: "kvm" }).catch((e) => e)) as VmmError;
    expect(err.code).toBe("ACCEL_UNAVAILABLE");
    expect(err.message).toContain("failed to set MSR 0x10a");
  });

  it("a VM booted in auto mode runs under TCG", async () => {
    const m = await Machine.boot({ ...guest, memoryMib: 128, vcpus: 1, network: false });
    try {
      expect(m.accel).toBe("tcg");
      const s = await openAgentSession(m);
      expect(typeof (await s.ping())).toBe("number"); // a round trip through the guest agent
      await s.close();
    } finally {
      await m.close();
    }
  });
});

describe("a KVM that boots the guest", () => {
  beforeEach(() => {
    process.env.SUPERMACHINE_QEMU = wrapper("kvm-as-tcg", AS_TCG);
  });

  it("auto picks it after a real boot to the agent handshake; the snapshot keeps it", async () => {
    const e = await chooseEngine(guest);
    expect(e).toMatchObject({ accel: "kvm", cpuModel: "host" });
    expect(e.fallbackReason).toBeUndefined();
    expect(kvmBoots()).toBe(1);

    const snap = join(work, "snap-kvm");
    const rootfs = makeBusyboxRootfs(work);
    const m = await Machine.boot(
      { ...guest, memoryMib: 128, vcpus: 1, rootfs, network: false },
      { memoryFile: join(snap, "memory.bin") },
    );
    const files = await (async () => {
      try {
        expect(m.accel).toBe("kvm");
        await (await openAgentSession(m)).close();
        return await m.captureSnapshot(snap);
      } finally {
        await m.close();
      }
    })();
    expect(files.record).toMatchObject({ accel: "kvm", cpuModel: "host" });

    // device state baked under one accelerator never restores under another
    const mismatch = (await Machine.restore(snap, { accel: "tcg" }).catch((err) => err)) as VmmError;
    expect(mismatch.code).toBe("ACCEL_MISMATCH");
    expect(mismatch.message).toContain("baked under kvm");

    // and once this host's KVM stops working, the snapshot says so instead of hanging
    process.env.SUPERMACHINE_QEMU = wrapper("broken-kvm", BROKEN);
    process.env.SUPERMACHINE_CACHE = mkdtempSync(join(work, "cache-"));
    resetEngineMemo();
    const gone = (await Machine.restore(snap).catch((err) => err)) as VmmError;
    expect(gone.code).toBe("ACCEL_UNAVAILABLE");
    expect(gone.message).toContain("Bake the image again");
  });
});
