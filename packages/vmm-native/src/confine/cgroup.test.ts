import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cgroupLimits, createVmCgroup, delegatedParent, ownCgroupPath, unifiedHierarchy } from "./cgroup.js";

// mountinfo lines as the kernel writes them
const V1_HYBRID = [
  "30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
  "31 30 0:27 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
  "32 30 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
].join("\n");
const V2 =
  "30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate";

describe("cgroup v2 detection", () => {
  it("tells the unified hierarchy from cgroup v1 and hybrid layouts", () => {
    expect(unifiedHierarchy(V2)).toBe(true);
    expect(unifiedHierarchy(V1_HYBRID)).toBe(false);
    expect(unifiedHierarchy(readFileSync("/proc/self/mountinfo", "utf8"))).toBe(
      readFileSync("/proc/self/mountinfo", "utf8")
        .split("\n")
        .some((l) => l.includes(" /sys/fs/cgroup ") && l.includes(" - cgroup2 ")),
    );
  });

  it("reads the process's v2 path from /proc/self/cgroup", () => {
    expect(ownCgroupPath("12:memory:/x\n0::/user.slice/app.service\n")).toBe("/user.slice/app.service");
    expect(ownCgroupPath("4:memory:/x\n")).toBeUndefined();
  });

  it("needs memory, pids and cpu enabled for children and a writable parent; writes the VM's limits", () => {
    const dir = mkdtempSync(join(tmpdir(), "sm-cg-"));
    try {
      writeFileSync(join(dir, "cgroup.subtree_control"), "cpu memory\n");
      expect(delegatedParent(dir)).toMatch(/does not enable pids/);
      writeFileSync(join(dir, "cgroup.subtree_control"), "cpuset cpu io memory pids\n");
      expect(delegatedParent(dir)).toBeUndefined();
      const limits = cgroupLimits(256, 2, "tcg");
      expect(limits).toEqual({ memoryMax: (256 + 1280) * 1024 * 1024, pidsMax: 512, cpuQuotaUs: 200_000 });
      const vm = createVmCgroup(dir, "vm1", limits);
      expect(readFileSync(join(vm, "memory.max"), "utf8")).toBe(String(limits.memoryMax));
      expect(readFileSync(join(vm, "pids.max"), "utf8")).toBe("512");
      expect(readFileSync(join(vm, "cpu.max"), "utf8")).toBe("200000 100000");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
