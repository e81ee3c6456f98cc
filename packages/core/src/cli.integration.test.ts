import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const bin = fileURLToPath(new URL("../dist/bin.js", import.meta.url));
const snaps = mkdtempSync(join(tmpdir(), "sm-cli-"));
const ref = `oci:${join(process.env.SUPERMACHINE_CACHE ?? join(homedir(), ".cache", "supermachine"), "images", "default")}:latest`;
afterAll(() => rmSync(snaps, { recursive: true, force: true }));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", timeout: 240_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe("supermachine CLI", () => {
  it("runs a command in a VM and passes its exit code through", () => {
    const r = cli("run", ref, "--snapshots-dir", snaps, "--", "sh", "-c", "uname -s; echo oops >&2; exit 3");
    expect(r.out).toBe("Linux\n");
    expect(r.err).toContain("oops");
    expect(r.err).toMatch(/snapshot: capturing snapshot/);
    expect(r.code).toBe(3);
  });

  it("lists, re-finds and prunes snapshots", () => {
    const ls = cli("ls", "--snapshots-dir", snaps);
    expect(ls.code).toBe(0);
    expect(ls.out).toMatch(/default_latest-[0-9a-f]+\t[\d.]+ MB\toci:.* pre-exec/);
    const build = cli("build", ref, "--snapshots-dir", snaps);
    expect(build.code).toBe(0);
    expect(build.err).toMatch(/cached: /);
    expect(build.out.trim()).toContain(snaps);
    const prune = cli("prune", "--snapshots-dir", snaps, "--older-than-days", "0");
    expect(prune.out).toMatch(/removed 1 snapshots/);
    expect(cli("ls", "--snapshots-dir", snaps).out).toBe("");
  });

  it("rejects a malformed reference with its typed error code", () => {
    const r = cli("build", "UPPER/Case:@@", "--snapshots-dir", snaps);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^supermachine: \[OCI_INVALID_REFERENCE\]/);
  });
});
