import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { acceleratorArchProblem, hardwareAccelerator } from "./accelerator.js";
import { chooseEngine, resetEngineMemo } from "./engine.js";
import type { VmmError } from "./errors.js";
import { guestArchOfNode, machineModel, parseGuestArch } from "./machine-model.js";
import { buildQemuArgs, kernelCmdline, type MachineSpec, qemuRequirements } from "./qemu-args.js";
import { findQemu, qemuCandidates } from "./qemu-binary.js";
import { after, testProcess } from "./test-support/qemu-args-fixture.js";

const arm: MachineSpec = {
  arch: "aarch64",
  kernel: "/k/Image",
  initrd: "/k/initrd.cpio.gz",
  memoryMib: 256,
  vcpus: 2,
  rootfs: "/store/root.ext4",
};
const proc = testProcess;

function all(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1] as string] : []));
}

describe("machine models", () => {
  it("keeps x86_64 on microvm and puts aarch64 on virt with GICv3", () => {
    expect(machineModel("x86_64").machineType).toBe("microvm");
    expect(machineModel().machineType).toBe("microvm");
    expect(machineModel("aarch64")).toMatchObject({
      machineType: "virt",
      console: "ttyAMA0",
      kernelFile: "Image",
    });
  });

  it("reads architecture names and aliases, refusing others with UNSUPPORTED_ARCH", () => {
    expect(parseGuestArch("arm64")).toBe("aarch64");
    expect(parseGuestArch("AARCH64")).toBe("aarch64");
    expect(parseGuestArch("amd64")).toBe("x86_64");
    expect(() => parseGuestArch("riscv64")).toThrow(
      expect.objectContaining({
        code: "UNSUPPORTED_ARCH",
        message: expect.stringMatching(/x86_64, aarch64/),
      }),
    );
    expect(() => machineModel("mips" as never)).toThrow(
      expect.objectContaining({ code: "UNSUPPORTED_ARCH" }),
    );
    expect(guestArchOfNode("arm64")).toBe("aarch64");
    expect(guestArchOfNode("x64")).toBe("x86_64");
    expect(guestArchOfNode("ppc64")).toBeUndefined();
  });
});

describe("aarch64 argument vectors", () => {
  it("boots virt directly (no firmware) with the same virtio-mmio devices and file-backed RAM", () => {
    const args = buildQemuArgs(arm, proc);
    expect(after(args, "-M")).toBe("virt,gic-version=3,memory-backend=mem");
    expect(after(args, "-accel")).toBe("tcg");
    expect(after(args, "-cpu")).toBe("max");
    expect(after(args, "-object")).toBe(
      "memory-backend-file,id=mem,size=256M,mem-path=/snap/memory.bin,share=off,readonly=on,rom=off",
    );
    expect(after(args, "-kernel")).toBe("/k/Image");
    expect(args).not.toContain("-bios");
    expect(args).not.toContain("-pflash");
    expect(all(args, "-device")).toEqual([
      "virtio-serial-device",
      "virtserialport,chardev=agent,name=sm.agent",
      "virtio-rng-device",
      "virtio-blk-device,drive=root",
      "virtio-net-device,netdev=net0",
    ]);
    expect(after(args, "-serial")).toBe("chardev:con0");
    expect(args.slice(-3)).toEqual(["-S", "-incoming", "defer"]);
  });

  it("uses the PL011 console and no x86 timer options on the kernel command line", () => {
    expect(kernelCmdline(arm)).toBe("console=ttyAMA0 quiet panic=-1 sm.root=/dev/vda");
    expect(kernelCmdline({ ...arm, arch: "x86_64" })).toBe(
      "console=ttyS0 quiet panic=-1 reboot=t tsc=reliable no_timer_check sm.root=/dev/vda",
    );
    // a record without arch (written before aarch64) is x86_64
    const { arch: _, ...legacy } = arm;
    expect(kernelCmdline(legacy)).toContain("console=ttyS0");
    expect(after(buildQemuArgs(legacy, proc), "-M")).toMatch(/^microvm,/);
  });

  it("runs with the host CPU under HVF on macOS and KVM on Arm Linux (untested here: argv only)", () => {
    for (const accel of ["hvf", "kvm"] as const) {
      const args = buildQemuArgs(arm, { ...proc, accel, cpuModel: "host", incoming: false });
      expect(after(args, "-accel")).toBe(accel);
      expect(after(args, "-cpu")).toBe("host");
      expect(after(args, "-M")).toBe("virt,gic-version=3,memory-backend=mem");
      expect(args).not.toContain("-incoming");
    }
  });

  it("asks the QEMU binary for virt and the same devices", () => {
    expect(qemuRequirements(arm, "tcg")).toEqual({
      arch: "aarch64",
      accel: "tcg",
      machine: "virt",
      netdevs: ["user"],
      devices: [
        "virtio-serial-device",
        "virtserialport",
        "virtio-rng-device",
        "virtio-blk-device",
        "virtio-net-device",
      ],
    });
  });
});

describe("QEMU binaries per architecture", () => {
  const saved = { ...process.env };
  let cache: string;
  beforeEach(() => {
    cache = mkdtempSync(join(tmpdir(), "sm-qemu-arch-"));
    process.env.SUPERMACHINE_CACHE = cache;
    delete process.env.SUPERMACHINE_QEMU;
    delete process.env.SUPERMACHINE_QEMU_AARCH64;
  });
  afterEach(() => {
    process.env = { ...saved };
    rmSync(cache, { recursive: true, force: true });
  });

  it("looks for qemu-system-aarch64 in Debian's and Homebrew's directories", () => {
    expect(qemuCandidates("hvf", "aarch64")).toEqual([
      "/usr/bin/qemu-system-aarch64",
      "/usr/local/bin/qemu-system-aarch64",
      "/opt/homebrew/bin/qemu-system-aarch64",
    ]);
    process.env.SUPERMACHINE_QEMU_AARCH64 = "/x/qemu-arm";
    process.env.SUPERMACHINE_QEMU = "/x/qemu-x86";
    expect(qemuCandidates("tcg", "aarch64")).toEqual(["/x/qemu-arm"]);
    expect(qemuCandidates("tcg", "x86_64")).toEqual(["/x/qemu-x86"]);
  });

  it("finds the installed qemu-system-aarch64 (it has virt and TCG)", () => {
    const q = findQemu(qemuRequirements(arm, "tcg"));
    expect(q.path).toBe("/usr/bin/qemu-system-aarch64");
    expect(q.version).toMatch(/^10\./);
  });

  it("names the package to install when no binary can run the guest", () => {
    process.env.SUPERMACHINE_QEMU_AARCH64 = "/usr/bin/qemu-system-x86_64"; // has no virt machine
    let err: VmmError | undefined;
    try {
      findQemu(qemuRequirements(arm, "tcg"));
    } catch (e) {
      err = e as VmmError;
    }
    expect(err?.code).toBe("QEMU_NOT_FOUND");
    expect(err?.message).toMatch(/aarch64 virt guest under tcg/);
    expect(err?.message).toMatch(/lacks machine virt/);
    expect(err?.message).toMatch(/qemu-system-arm/);
  });
});

describe("accelerator per architecture", () => {
  it("offers hardware acceleration only for a guest of the host's architecture", () => {
    expect(hardwareAccelerator("aarch64", "darwin", "arm64")).toBe("hvf");
    expect(hardwareAccelerator("x86_64", "darwin", "arm64")).toBeUndefined();
    expect(hardwareAccelerator("x86_64", "darwin", "x64")).toBe("hvf");
    expect(hardwareAccelerator("aarch64", "linux", "x64")).toBeUndefined();
    expect(hardwareAccelerator("aarch64", "win32", "arm64")).toBeUndefined();
  });

  it("says why KVM/HVF cannot run a foreign guest", () => {
    expect(acceleratorArchProblem("kvm", "aarch64", "linux", "x64")).toMatch(
      /host's own architecture \(x86_64\)/,
    );
    expect(acceleratorArchProblem("hvf", "aarch64", "linux", "arm64")).toMatch(/HVF needs macOS/);
    expect(acceleratorArchProblem("hvf", "aarch64", "darwin", "arm64")).toBeUndefined();
    expect(acceleratorArchProblem("kvm", "aarch64", "linux", "arm64")).toBeUndefined();
  });

  it("chooses TCG for an aarch64 guest on this x86_64 host without probing, and refuses explicit KVM", async () => {
    resetEngineMemo();
    const probeMarker = mkdtempSync(join(tmpdir(), "sm-noprobe-"));
    const saved = process.env.SUPERMACHINE_CACHE;
    process.env.SUPERMACHINE_CACHE = probeMarker;
    try {
      const req = { arch: "aarch64" as const, kernel: "/nonexistent/Image", initrd: "/nonexistent/initrd" };
      const e = await chooseEngine({ ...req, accel: "auto" });
      expect(e.accel).toBe("tcg");
      expect(e.qemu.path).toBe("/usr/bin/qemu-system-aarch64");
      expect(e.fallbackReason).toBeUndefined(); // no probe ran, so nothing fell back
      await expect(chooseEngine({ ...req, accel: "kvm" })).rejects.toMatchObject({
        code: "ACCEL_UNAVAILABLE",
        message: expect.stringMatching(/host's own architecture/),
      });
    } finally {
      if (saved === undefined) delete process.env.SUPERMACHINE_CACHE;
      else process.env.SUPERMACHINE_CACHE = saved;
      rmSync(probeMarker, { recursive: true, force: true });
    }
  });
});
