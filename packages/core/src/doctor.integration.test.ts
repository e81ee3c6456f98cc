import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { doctor } from "./doctor.js";

const run = promisify(execFile);
const bin = join(__dirname, "..", "dist", "bin.js");
const work = mkdtempSync(join(tmpdir(), "sm-doctor-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("doctor", () => {
  it("passes on a host set up by the README's commands, naming each check", async () => {
    const r = await doctor({ snapshotsDir: join(work, "snaps") });
    expect(r.checks.map((c) => c.id)).toEqual([
      "qemu",
      "guest",
      "e2fsprogs",
      "accelerator",
      "setpriv",
      "confinement",
      "run-dir",
      "cgroup",
      "network",
      "snapshots",
    ]);
    const failed = r.checks.filter((c) => c.status === "fail");
    expect(failed).toEqual([]);
    expect(r.ok).toBe(true);
    // the accelerator line says what runs the VMs, and why when it is TCG
    const accel = r.checks.find((c) => c.id === "accelerator");
    expect(accel?.summary).toMatch(/^(kvm|hvf) \(cpu host\)|TCG/);
  });

  it("the CLI prints fixes, supports --json, and exits 1 when the main job cannot run", async () => {
    // no mke2fs on PATH: root file systems cannot be built
    const env = { ...process.env, PATH: "/nonexistent" };
    const failed = await run(process.execPath, [bin, "doctor", "--snapshots-dir", join(work, "s")], {
      env,
    }).then(
      () => ({ code: 0, stdout: "" }),
      (e: { code: number; stdout: string }) => e,
    );
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/^FAIL {2}root fs encoder: mke2fs is not installed$/m);
    expect(failed.stdout).toMatch(/^ {6}fix: apt-get install -t bookworm-backports e2fsprogs/m);

    const ok = await run(process.execPath, [bin, "doctor", "--json", "--snapshots-dir", join(work, "s")]);
    const report = JSON.parse(ok.stdout);
    expect(report.ok).toBe(true);
    expect(report.checks.find((c: { id: string }) => c.id === "e2fsprogs").status).toBe("ok");
  });
});
