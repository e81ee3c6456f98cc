import { describe, expect, it } from "vitest";
import { joinOptionString, rewriteQemuPaths, splitOptionString } from "./qemu-opts.js";

const map = (p: string) =>
  ({ "/snap/memory.bin": "/vm/memory.bin", "/k/bz": "/vm/kernel", "/r/root,x.ext4": "/dev/fdset/1" })[p] ??
  (p.startsWith("/run/x/q/") ? `/run/vm/${p.slice("/run/x/q/".length)}` : undefined);
const allowed = ["/vm/", "/run/vm", "/dev/fdset/"];

describe("QEMU option strings", () => {
  it("split at single commas and keep doubled ones as literal commas", () => {
    expect(splitOptionString("file=/a,,b,if=none")).toEqual(["file=/a,b", "if=none"]);
    expect(joinOptionString(["file=/a,b", "if=none"])).toBe("file=/a,,b,if=none");
  });

  it("rewrite whole-argument paths, option values and unix:/file: URIs", () => {
    const out = rewriteQemuPaths(
      [
        "-kernel",
        "/k/bz",
        "-object",
        "memory-backend-file,id=mem,mem-path=/snap/memory.bin,share=off",
        "-drive",
        "file=/r/root,,x.ext4,if=none,readonly=on",
        "-qmp",
        "unix:/run/x/q/qmp.sock,server=on,wait=off",
        "-chardev",
        "file,id=c,path=/run/x/q/console.log",
        "-append",
        "console=ttyS0 sm.root=/dev/vda",
      ],
      map,
      allowed,
    );
    expect(out).toEqual([
      "-kernel",
      "/vm/kernel",
      "-object",
      "memory-backend-file,id=mem,mem-path=/vm/memory.bin,share=off",
      "-drive",
      "file=/dev/fdset/1,if=none,readonly=on",
      "-qmp",
      "unix:/run/vm/qmp.sock,server=on,wait=off",
      "-chardev",
      "file,id=c,path=/run/vm/console.log",
      "-append",
      "console=ttyS0 sm.root=/dev/vda",
    ]);
  });

  it("refuse a host path the sandbox would not show, naming the option", () => {
    expect(() => rewriteQemuPaths(["-drive", "file=/etc/shadow,if=none"], map, allowed)).toThrow(
      /-drive file=\/etc\/shadow,if=none names \/etc\/shadow/,
    );
    expect(() => rewriteQemuPaths(["-initrd", "/home/u/initrd"], map, allowed)).toThrow(
      /CONFINEMENT|sandbox/,
    );
  });
});
