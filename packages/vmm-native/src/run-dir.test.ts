import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { currentOwner, ownerIsDead, RunDir, reapRunDirs, runRoot } from "./run-dir.js";

const made: string[] = [];
function base(): string {
  const d = mkdtempSync(join(tmpdir(), "sm-rundir-"));
  made.push(d);
  return d;
}
afterEach(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The owner record of a process that has exited. */
function deadOwner() {
  const r = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], {
    encoding: "utf8",
  });
  return { ...currentOwner(), pid: Number(r.stdout), startTime: "1" };
}

describe("run directories", () => {
  it("live under a private per-user root that is refused when unsafe", () => {
    const b = base();
    const root = runRoot(b);
    expect(root).toBe(join(b, `supermachine-${process.getuid!()}`));
    const rd = new RunDir(b);
    expect(rd.path.startsWith(`${root}/vm-`)).toBe(true);
    expect(rd.qmpSocket).toBe(join(rd.path, "qemu", "qmp.sock"));
    chmodSync(root, 0o755);
    expect(() => runRoot(b)).toThrow(/has mode 755/);
    const b2 = base();
    mkdirSync(join(b2, "elsewhere"));
    symlinkSync(join(b2, "elsewhere"), join(b2, `supermachine-${process.getuid!()}`));
    expect(() => runRoot(b2)).toThrow(expect.objectContaining({ code: "RUN_DIR_UNSAFE" }));
  });

  it("judge owners: this process lives, an exited one is dead, another pid namespace is never judged", () => {
    expect(ownerIsDead(currentOwner())).toBe(false);
    expect(ownerIsDead({ ...currentOwner(), startTime: "1" })).toBe(true); // pid reused by someone else
    expect(ownerIsDead(deadOwner())).toBe(true);
    expect(ownerIsDead({ ...deadOwner(), pidNamespace: "pid:[1]" })).toBe(false);
    expect(ownerIsDead({ ...currentOwner(), bootId: "another-boot" })).toBe(true);
  });

  it("reaps dead owners' directories and old ownerless ones, and keeps the rest", () => {
    const b = base();
    const live = new RunDir(b);
    const root = runRoot(b);
    const dead = join(root, "vm-dead01");
    mkdirSync(join(dead, "qemu"), { recursive: true });
    writeFileSync(join(dead, "owner.json"), JSON.stringify(deadOwner()));
    const young = join(root, "vm-young1");
    mkdirSync(young);
    const old = join(root, "vm-old001");
    mkdirSync(old);
    utimesSync(old, new Date(Date.now() - 3600_000), new Date(Date.now() - 3600_000));
    const other = join(root, "not-a-vm");
    mkdirSync(other);
    expect(reapRunDirs(root, true).sort()).toEqual([dead, old].sort());
    for (const d of [live.path, young, other]) expect(existsSync(d)).toBe(true);
    live.remove();
  });
});
