import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { VmmError } from "./errors.js";
import { qemuRequirements } from "./qemu-args.js";
import { findQemu, qemuCandidates } from "./qemu-binary.js";

let cache: string;
const saved = { ...process.env };
beforeEach(() => {
  cache = mkdtempSync(join(tmpdir(), "sm-qemu-bin-"));
  process.env.SUPERMACHINE_CACHE = cache;
  delete process.env.SUPERMACHINE_QEMU;
});
afterEach(() => {
  process.env = { ...saved };
  rmSync(cache, { recursive: true, force: true });
});

function thrown(f: () => unknown): VmmError {
  try {
    f();
  } catch (err) {
    return err as VmmError;
  }
  throw new Error("did not throw");
}

describe("findQemu (the binaries setup installs)", () => {
  it("prefers the minimal microvm build for KVM, and only the full one for TCG", () => {
    expect(qemuCandidates("kvm")[0]).toBe("/usr/bin/qemu-system-x86_64-microvm");
    expect(qemuCandidates("tcg").every((p) => p.endsWith("/qemu-system-x86_64"))).toBe(true);
  });

  it("skips the microvm build when the machine needs the user network backend", () => {
    // Debian's qemu-system-x86_64-microvm has no `user` backend (and no TCG)
    expect(findQemu(qemuRequirements({}, "kvm")).path).toBe("/usr/bin/qemu-system-x86_64");
    expect(findQemu(qemuRequirements({ network: false }, "kvm")).path).toBe(
      "/usr/bin/qemu-system-x86_64-microvm",
    );
    expect(findQemu(qemuRequirements({}, "tcg")).path).toBe("/usr/bin/qemu-system-x86_64");
  });

  it("fails with QEMU_NOT_FOUND naming what the only candidate lacks", () => {
    process.env.SUPERMACHINE_QEMU = "/usr/bin/qemu-system-x86_64-microvm";
    const err = thrown(() => findQemu(qemuRequirements({}, "tcg")));
    expect(err.code).toBe("QEMU_NOT_FOUND");
    expect(err.message).toContain("accelerator tcg");
    expect(err.message).toContain("network backend user");
    expect(err.message).toContain("doctor");
  });

  it("fails with QEMU_NOT_FOUND when no candidate is installed", () => {
    process.env.SUPERMACHINE_QEMU = join(cache, "no-such-qemu");
    const err = thrown(() => findQemu(qemuRequirements({}, "tcg")));
    expect(err.code).toBe("QEMU_NOT_FOUND");
    expect(err.message).toContain("none installed");
  });
});
