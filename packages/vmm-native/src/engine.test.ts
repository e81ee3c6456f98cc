import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { cpuModelFor } from "./accelerator.js";
import { chooseEngine, resetEngineMemo, verdictDir } from "./engine.js";
import type { VmmError } from "./errors.js";

// These cases need no guest boot: TCG is never probed, and a missing KVM
// device is a verdict by itself. The probe's boots are in engine.integration.test.ts.
let cache: string;
const saved = { ...process.env };
const guest = { kernel: "/nonexistent/bzImage", initrd: "/nonexistent/initrd" };
beforeEach(() => {
  cache = mkdtempSync(join(tmpdir(), "sm-engine-unit-"));
  process.env.SUPERMACHINE_CACHE = cache;
  process.env.SUPERMACHINE_KVM_DEVICE = join(cache, "no-kvm");
  delete process.env.SUPERMACHINE_ACCEL;
  delete process.env.SUPERMACHINE_QEMU;
  resetEngineMemo();
});
afterEach(() => {
  process.env = { ...saved };
  rmSync(cache, { recursive: true, force: true });
});

describe("chooseEngine without a KVM device", () => {
  it("auto picks TCG with the max CPU model (x86_64: without ERMS/FSRM) and the full QEMU, and tried nothing", async () => {
    const e = await chooseEngine(guest);
    expect(e).toEqual({
      accel: "tcg",
      cpuModel: "max,-erms,-fsrm",
      qemu: { path: "/usr/bin/qemu-system-x86_64", version: expect.stringMatching(/^\d+\.\d+/) },
    });
    expect(existsSync(verdictDir())).toBe(false);
  });

  it("an explicit kvm fails with ACCEL_UNAVAILABLE naming the missing device", async () => {
    const err = (await chooseEngine({ ...guest, accel: "kvm" }).catch((e) => e)) as VmmError;
    expect(err.code).toBe("ACCEL_UNAVAILABLE");
    expect(err.message).toContain("no-kvm does not exist");
  });

  it("SUPERMACHINE_ACCEL=kvm is an explicit request too; an explicit tcg beats it", async () => {
    process.env.SUPERMACHINE_ACCEL = "kvm";
    const err = (await chooseEngine(guest).catch((e) => e)) as VmmError;
    expect(err.code).toBe("ACCEL_UNAVAILABLE");
    expect((await chooseEngine({ ...guest, accel: "tcg" })).accel).toBe("tcg");
  });

  it("refuses an unknown accelerator name", async () => {
    const err = (await chooseEngine({ ...guest, accel: "xen" as "kvm" }).catch((e) => e)) as VmmError;
    expect(err.code).toBe("ACCEL_UNAVAILABLE");
    expect(err.message).toContain('"xen"');
    expect(readdirSync(cache)).not.toContain("accel-probe");
  });
});

describe("cpuModelFor", () => {
  it("hides the fast-rep-movsb flags from x86_64 guests under TCG only", () => {
    expect(cpuModelFor("tcg", "x86_64")).toBe("max,-erms,-fsrm");
    expect(cpuModelFor("tcg", "aarch64")).toBe("max");
    expect(cpuModelFor("kvm", "x86_64")).toBe("host");
    expect(cpuModelFor("hvf", "aarch64")).toBe("host");
  });
});
