import { describe, expect, it } from "vitest";
import { VmmError } from "./errors.js";
import {
  buildQemuArgs,
  kernelCmdline,
  type MachineSpec,
  optionValue,
  qemuRequirements,
} from "./qemu-args.js";
import { after, testProcess } from "./test-support/qemu-args-fixture.js";

const spec: MachineSpec = {
  kernel: "/k/bzImage",
  initrd: "/k/initrd.cpio",
  memoryMib: 256,
  vcpus: 2,
  rootfs: "/store/root.ext4",
};
const proc = testProcess;

describe("buildQemuArgs", () => {
  it("builds the microvm device model from the spec and process", () => {
    const args = buildQemuArgs(spec, proc);
    expect(after(args, "-M")).toBe("microvm,acpi=off,pit=on,pic=on,rtc=on,memory-backend=mem");
    expect(after(args, "-accel")).toBe("tcg");
    expect(after(args, "-cpu")).toBe("max");
    expect(after(args, "-smp")).toBe("2");
    expect(after(args, "-m")).toBe("256M");
    expect(after(args, "-object")).toBe(
      "memory-backend-file,id=mem,size=256M,mem-path=/snap/memory.bin,share=off,readonly=on,rom=off",
    );
    expect(after(args, "-kernel")).toBe("/k/bzImage");
    expect(after(args, "-initrd")).toBe("/k/initrd.cpio");
    expect(after(args, "-qmp")).toBe("unix:/run/q.sock,server=on,wait=off");
    expect(after(args, "-drive")).toBe(
      "file=/store/root.ext4,if=none,id=root,format=raw,readonly=on,cache=unsafe",
    );
    expect(args).toContain("-nodefaults");
    expect(args.slice(-3)).toEqual(["-S", "-incoming", "defer"]);
  });

  it("uses the CPU model it is given (KVM's is chosen by the engine, never assumed)", () => {
    const args = buildQemuArgs(spec, { ...proc, accel: "kvm", cpuModel: "host", incoming: false });
    expect(after(args, "-accel")).toBe("kvm");
    expect(after(args, "-cpu")).toBe("host");
    expect(args).not.toContain("-incoming");
  });

  it("maps guest RAM shared for a bake, and private from a file opened read-only for a restore", () => {
    expect(after(buildQemuArgs(spec, { ...proc, memoryShared: true }), "-object")).toMatch(/,share=on$/);
    expect(after(buildQemuArgs(spec, proc), "-object")).toMatch(/,share=off,readonly=on,rom=off$/);
  });

  it("attaches a network card only when the spec has one", () => {
    const on = buildQemuArgs(spec, proc);
    expect(after(on, "-netdev")).toBe("user,id=net0");
    const off = buildQemuArgs({ ...spec, network: false }, proc);
    expect(off).not.toContain("-netdev");
    expect(off.join(" ")).not.toContain("virtio-net");
  });

  it("doubles commas so a path cannot add QEMU options", () => {
    const evil = "/snap/x,share=on,mem-path=/etc/shadow";
    const args = buildQemuArgs(
      { ...spec, rootfs: "/r,readonly=off" },
      { ...proc, memoryFile: evil, consolePipe: "/run/c,append=on" },
    );
    expect(after(args, "-object")).toBe(
      "memory-backend-file,id=mem,size=256M,mem-path=/snap/x,,share=on,,mem-path=/etc/shadow,share=off,readonly=on,rom=off",
    );
    expect(after(args, "-drive")).toMatch(/^file=\/r,,readonly=off,if=none,/);
    expect(after(args, "-chardev")).toBe("file,id=con0,path=/run/c,,append=on");
  });

  it("refuses control characters in any path with INVALID_PATH", () => {
    for (const bad of [
      { s: { ...spec, kernel: "/k/bz\nImage" }, p: proc },
      { s: spec, p: { ...proc, agentSocket: "/run/a\u0000.sock" } },
      { s: { ...spec, rootfs: "/r\t" }, p: proc },
    ]) {
      let caught: unknown;
      try {
        buildQemuArgs(bad.s, bad.p);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(VmmError);
      expect((caught as VmmError).code).toBe("INVALID_PATH");
    }
  });
});

describe("optionValue", () => {
  it("leaves plain values alone and doubles every comma", () => {
    expect(optionValue("/a/b", "x")).toBe("/a/b");
    expect(optionValue(",a,,b,", "x")).toBe(",,a,,,,b,,");
  });
});

describe("kernelCmdline", () => {
  it("names the root device only when there is a root fs, and appends extra arguments", () => {
    expect(kernelCmdline({ ...spec, rootfs: undefined })).not.toContain("sm.root");
    expect(kernelCmdline({ ...spec, cmdline: "sm.debug=1" })).toMatch(/sm\.root=\/dev\/vda sm\.debug=1$/);
  });
});

describe("qemuRequirements", () => {
  it("needs the user backend and virtio-net only with a network card", () => {
    const net = qemuRequirements({}, "kvm");
    expect(net).toMatchObject({ accel: "kvm", machine: "microvm", netdevs: ["user"] });
    expect(net.devices).toContain("virtio-net-device");
    const none = qemuRequirements({ network: false }, "tcg");
    expect(none.netdevs).toEqual([]);
    expect(none.devices).not.toContain("virtio-net-device");
    expect(none.devices).toEqual(expect.arrayContaining(["virtio-serial-device", "virtserialport"]));
  });
});
