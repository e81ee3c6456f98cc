import { describe, expect, it } from "vitest";
import {
  missingCapabilities,
  parseDevices,
  parseMachines,
  parseNameList,
  parseVersion,
  type QemuCapabilities,
  readCapabilities,
} from "./qemu-capabilities.js";

// Output as QEMU 10.0.2 (Debian) prints it.
const NETDEV_HELP = "Available netdev backend types:\nsocket\nstream\ndgram\nhubport\ntap\nbridge\n";
const ACCEL_HELP = "Accelerators supported in QEMU binary:\nkvm\n";
const MACHINE_HELP =
  "Supported machines are:\nmicrovm              microvm (i386)\npc                   Standard PC (alias of pc-i440fx-10.0)\n";
const DEVICE_HELP =
  'Storage devices:\nname "virtio-blk-device", bus virtio-bus\n\nMisc devices:\nname "virtio-serial-device", bus virtio-bus\nname "virtserialport", bus virtio-serial-bus\n';

describe("QEMU help parsers", () => {
  it("read the names each list holds, not its heading", () => {
    expect(parseNameList(NETDEV_HELP)).toEqual(["socket", "stream", "dgram", "hubport", "tap", "bridge"]);
    expect(parseNameList(ACCEL_HELP)).toEqual(["kvm"]);
    expect(parseMachines(MACHINE_HELP)).toEqual(["microvm", "pc"]);
    expect(parseDevices(DEVICE_HELP)).toEqual([
      "virtio-blk-device",
      "virtio-serial-device",
      "virtserialport",
    ]);
    expect(parseVersion("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)\n")).toBe("10.0.2");
    expect(parseVersion("garbage")).toBe("unknown");
  });
});

describe("missingCapabilities", () => {
  // the minimal KVM-only build: no `user` network backend, no TCG
  const microvmBuild: QemuCapabilities = {
    version: "10.0.2",
    accels: parseNameList(ACCEL_HELP),
    machines: parseMachines(MACHINE_HELP),
    netdevs: parseNameList(NETDEV_HELP),
    devices: parseDevices(DEVICE_HELP),
  };

  it("names everything a binary lacks for a machine", () => {
    expect(
      missingCapabilities(microvmBuild, {
        accel: "tcg",
        machine: "microvm",
        netdevs: ["user"],
        devices: ["virtio-serial-device", "virtio-net-device"],
      }),
    ).toEqual(["accelerator tcg", "network backend user", "device virtio-net-device"]);
  });

  it("is empty when the binary has it all", () => {
    expect(
      missingCapabilities(microvmBuild, {
        accel: "kvm",
        machine: "microvm",
        netdevs: ["stream"],
        devices: ["virtserialport"],
      }),
    ).toEqual([]);
  });
});

describe("readCapabilities on the installed QEMU (setup installs it)", () => {
  it("finds what the engine needs in the full build", () => {
    const caps = readCapabilities("/usr/bin/qemu-system-x86_64");
    expect(caps.version).toMatch(/^\d+\.\d+/);
    expect(caps.accels).toContain("tcg");
    expect(caps.machines).toContain("microvm");
    expect(caps.netdevs).toContain("user");
    expect(caps.devices).toEqual(expect.arrayContaining(["virtio-serial-device", "virtserialport"]));
  });
});
