// Relocatable snapshots: machine.json and metadata.json name the guest by its
// build hashes and the root fs by its digest, never by a host path, so a
// snapshot directory moved to another path, or copied to another host (its
// own cache, no root fs), still restores. A root fs the host lacks is
// rebuilt from the image's layers and checked byte for byte.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BuildProgress, Image } from "./index.js";
import { type CoreFixture, coreFixture, rejection } from "./test-support/fixture.js";
import { type SimulatedHost, simulatedHost } from "./test-support/hosts.js";
import { qemuPids, watchQemuStarts } from "./test-support/procs.js";

let fx: CoreFixture;
let root: string;
let hostA: SimulatedHost;
let hostB: SimulatedHost;
const ARGV = ["sh", "-c", "echo relocated $((6*7)); cat /etc/hostname"];

beforeAll(async () => {
  fx = await coreFixture("relocatable");
  root = mkdtempSync(join(tmpdir(), "sm-relocatable-"));
  hostA = simulatedHost(root, "a");
  hostB = simulatedHost(root, "b");
}, 120_000);
afterAll(async () => {
  await fx?.close();
  rmSync(root, { recursive: true, force: true });
  expect(qemuPids()).toEqual([]);
});

async function execIn(image: Image): Promise<string> {
  await using pool = await image.pool({ min: 0, max: 1 });
  await using vm = await pool.acquire();
  const out = await vm.exec({ argv: ARGV });
  expect(out.exitCode).toBe(0);
  return out.stdout.toString();
}

describe("a snapshot directory is relocatable", () => {
  let baked: Image;
  let expected: string;
  let moved: string;

  it("names no host path in its metadata or machine record", async () => {
    baked = await hostA.run(() =>
      Image.build({ ref: fx.busyboxRef, insecureRegistries: fx.insecureRegistries }),
    );
    expect(baked.snapshotPath.startsWith(hostA.snapshotsDir)).toBe(true);
    for (const f of ["metadata.json", "machine.json"]) {
      const text = readFileSync(join(baked.snapshotPath, f), "utf8");
      expect(text, f).not.toContain(root);
      expect(text, f).not.toContain("/.cache/");
    }
    const machine = JSON.parse(readFileSync(join(baked.snapshotPath, "machine.json"), "utf8"));
    expect(machine.engineFormat).toBe(2);
    expect(machine.guest).toEqual(baked.metadata.assets);
    expect(machine.rootfs).toEqual({ digest: baked.metadata.rootfs.digest });
    expected = await hostA.run(() => execIn(baked));
    expect(expected).toMatch(/^relocated 42\n/);
  }, 300_000);

  it("restores after the directory moved to another path", async () => {
    moved = join(root, "elsewhere", "moved-snapshot");
    mkdirSync(join(root, "elsewhere"));
    renameSync(baked.snapshotPath, moved);
    const image = await hostA.run(() => Image.fromSnapshot(moved));
    expect(image.snapshotPath).toBe(moved);
    expect(image.rootfsPath.startsWith(hostA.cache)).toBe(true);
    const { result, started } = await watchQemuStarts(() => hostA.run(() => execIn(image)));
    expect(result).toBe(expected);
    expect(started.length).toBeGreaterThan(0);
  }, 120_000);

  it("restores on another host, rebuilding the missing root fs from the image's layers", async () => {
    const copy = join(hostB.snapshotsDir, "copied");
    mkdirSync(hostB.snapshotsDir, { recursive: true });
    cpSync(moved, copy, { recursive: true });
    const events: BuildProgress[] = [];
    const image = await hostB.run(() =>
      Image.fromSnapshot(copy, {
        insecureRegistries: fx.insecureRegistries,
        onProgress: (p) => events.push(p),
      }),
    );
    expect(image.rootfsPath.startsWith(hostB.cache)).toBe(true);
    expect(
      readFileSync(image.rootfsPath).equals(
        readFileSync(join(hostA.cache, "oci", "rootfs", image.rootfsPath.split("/").at(-1)!)),
      ),
    ).toBe(true);
    expect(events.some((e) => e.phase === "rootfs" && /rebuilding/.test(e.message))).toBe(true);
    expect(events.some((e) => e.phase === "boot")).toBe(false);
    expect(await hostB.run(() => execIn(image))).toBe(expected);
  }, 300_000);

  it("names the missing root fs in a typed error when it may not be rebuilt", async () => {
    const hostC = simulatedHost(root, "c");
    const copy = join(hostC.snapshotsDir, "copied");
    mkdirSync(hostC.snapshotsDir, { recursive: true });
    cpSync(moved, copy, { recursive: true });
    const err = await hostC.run(() => rejection(() => Image.fromSnapshot(copy, { rebuildRootfs: false })));
    expect(err.code).toBe("SNAPSHOT_ROOTFS_MISSING");
    expect(err.details?.digest).toBe(baked.metadata.rootfs.digest);
    expect(existsSync(join(hostC.cache, "oci", "rootfs"))).toBe(false);
  }, 60_000);

  it("Image.build on another host finds the copied snapshot, rebuilds its root fs and does not boot", async () => {
    const hostD = simulatedHost(root, "d");
    mkdirSync(hostD.snapshotsDir, { recursive: true });
    cpSync(moved, join(hostD.snapshotsDir, baked.snapshotPath.split("/").at(-1)!), { recursive: true });
    const events: BuildProgress[] = [];
    const { result: image, started } = await watchQemuStarts(() =>
      hostD.run(() =>
        Image.build({
          ref: fx.busyboxRef,
          insecureRegistries: fx.insecureRegistries,
          onProgress: (p) => events.push(p),
        }),
      ),
    );
    expect(events.some((e) => e.phase === "cached")).toBe(true);
    expect(events.some((e) => e.phase === "rootfs" && /rebuilding/.test(e.message))).toBe(true);
    expect(events.some((e) => e.phase === "boot")).toBe(false);
    expect(started).toEqual([]);
    expect(image.rootfsPath.startsWith(hostD.cache)).toBe(true);
    expect(await hostD.run(() => execIn(image))).toBe(expected);
  }, 300_000);
});
