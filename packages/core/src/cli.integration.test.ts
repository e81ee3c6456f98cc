// The `supermachine` CLI (dist/bin.js) as a child process on real VMs. Every
// test has its own snapshots directory and its own cache (blobs, root fs
// images), so none depends on another's state and `prune --rootfs` touches
// nothing outside the test.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { resolveGuestAssets } from "@supermachine/vmm-native";
import { afterAll, describe, expect, it } from "vitest";
import { layoutPath } from "./test-support/images.js";

const bin = fileURLToPath(new URL("../dist/bin.js", import.meta.url));
const root = mkdtempSync(join(tmpdir(), "sm-cli-"));
const ref = `oci:${layoutPath("busybox")}:latest`;
// the CLI runs with a private cache, so it is told which guest this process uses
const guestAssets = resolveGuestAssets().manifest;
afterAll(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
/** A fresh snapshots dir and cache dir, and a CLI runner bound to them. */
function sandbox() {
  const dir = join(root, `t${n++}`);
  const snaps = join(dir, "snapshots");
  const cache = join(dir, "cache");
  mkdirSync(dir);
  const cli = (...args: string[]) => {
    const r = spawnSync(process.execPath, [bin, ...args], {
      encoding: "utf8",
      timeout: 240_000,
      env: { ...process.env, SUPERMACHINE_CACHE: cache, SUPERMACHINE_GUEST_ASSETS: guestAssets },
    });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  return { snaps, cache, rootfsDir: join(cache, "oci", "rootfs"), cli };
}

/** The root fs images (`*.ext4`) in a cache's root fs directory. */
function rootfsImages(dir: string): string[] {
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith(".ext4"))
        .sort()
    : [];
}

describe("supermachine CLI", () => {
  it("runs a command in a VM and passes its exit code through", () => {
    const { snaps, cli } = sandbox();
    const r = cli("run", ref, "--snapshots-dir", snaps, "--", "sh", "-c", "uname -s; echo oops >&2; exit 3");
    expect(r.out).toBe("Linux\n");
    expect(r.err).toContain("oops");
    expect(r.err).toMatch(/snapshot: capturing snapshot/);
    expect(r.code).toBe(3);
  });

  it("builds, lists, re-finds and prunes snapshots (root fs images untouched without --rootfs)", () => {
    const { snaps, rootfsDir, cli } = sandbox();
    const cold = cli("build", ref, "--snapshots-dir", snaps);
    expect(cold.code, cold.err).toBe(0);
    expect(cold.err).toMatch(/snapshot: capturing snapshot/);
    const path = cold.out.trim();
    expect(path.startsWith(`${snaps}/`)).toBe(true);
    const ls = cli("ls", "--snapshots-dir", snaps);
    expect(ls.code).toBe(0);
    expect(ls.out).toMatch(/^\S*busybox_latest-[0-9a-f]{16}\t[\d.]+ MB\toci:\S+ pre-exec\n$/);
    expect(ls.out.split("\t")[0]).toBe(path.slice(snaps.length + 1));
    const again = cli("build", ref, "--snapshots-dir", snaps);
    expect(again.code).toBe(0);
    expect(again.err).toMatch(/cached: /);
    expect(again.err).not.toMatch(/snapshot: capturing snapshot/);
    expect(again.out.trim()).toBe(path);
    const images = rootfsImages(rootfsDir);
    expect(images).toHaveLength(1);
    const prune = cli("prune", "--snapshots-dir", snaps, "--older-than-days", "0");
    expect(prune.code).toBe(0);
    expect(prune.out).toMatch(/^removed 1 snapshots, 0 root fs images; freed [\d.]+ MB\n$/);
    expect(cli("ls", "--snapshots-dir", snaps).out).toBe("");
    expect(existsSync(path)).toBe(false);
    expect(rootfsImages(rootfsDir)).toEqual(images);
  });

  it("prune --rootfs removes the root fs images no snapshot uses, past the grace period, and only those", () => {
    const { snaps, rootfsDir, cli } = sandbox();
    expect(cli("build", ref, "--snapshots-dir", snaps).code).toBe(0);
    const [used] = rootfsImages(rootfsDir) as [string];
    const hourAgo = new Date(Date.now() - 3_600_000);
    const orphan = `${"0".repeat(63)}1.ext4`; // another image's, no longer referenced
    const fresh = `${"0".repeat(63)}2.ext4`; // just built by someone: inside the 10-minute grace
    writeFileSync(join(rootfsDir, orphan), Buffer.alloc(64 * 1024, 1));
    writeFileSync(join(rootfsDir, fresh), Buffer.alloc(4096, 2));
    for (const f of [used, orphan]) utimesSync(join(rootfsDir, f), hourAgo, hourAgo);

    const first = cli("prune", "--snapshots-dir", snaps, "--rootfs");
    expect(first.code, first.err).toBe(0);
    expect(first.out).toMatch(/^removed 0 snapshots, 1 root fs images; freed [\d.]+ MB\n$/);
    expect(rootfsImages(rootfsDir)).toEqual([fresh, orphan, used].filter((f) => f !== orphan).sort());
    // the snapshot still restores with its root fs
    const run = cli("run", ref, "--snapshots-dir", snaps, "--", "echo", "still-baked");
    expect(run.out).toBe("still-baked\n");
    expect(run.err).toMatch(/cached: /);

    // once its snapshot is gone, the image it used goes too; the fresh one stays
    utimesSync(join(rootfsDir, used), hourAgo, hourAgo);
    const second = cli("prune", "--snapshots-dir", snaps, "--older-than-days", "0", "--rootfs");
    expect(second.code, second.err).toBe(0);
    expect(second.out).toMatch(/^removed 1 snapshots, 1 root fs images; freed [\d.]+ MB\n$/);
    expect(rootfsImages(rootfsDir)).toEqual([fresh]);
  });

  it("rejects a malformed reference with its typed error code", () => {
    const { snaps, cli } = sandbox();
    const r = cli("build", "UPPER/Case:@@", "--snapshots-dir", snaps);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^supermachine: \[OCI_INVALID_REFERENCE\]/);
  });
});
