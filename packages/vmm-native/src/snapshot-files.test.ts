import { mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { VmmError } from "./errors.js";
import type { GuestAssets } from "./guest-assets.js";
import { machineRecordFor, openSnapshotFiles, writeMachineRecord } from "./snapshot-files.js";

let dir: string;
const DIGEST = `sha256:${"ab".repeat(32)}`;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "sm-snapfiles-"));
  writeFileSync(join(dir, "restore.snap"), Buffer.from("QEVM\0\0\0\x03"));
  writeFileSync(join(dir, "memory.bin"), "");
  truncateSync(join(dir, "memory.bin"), 1024 * 1024);
  writeFileSync(join(dir, "kernel"), "k");
  writeFileSync(join(dir, "initrd"), "i");
  writeFileSync(join(dir, "root.ext4"), "r");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const guest = (over: Partial<GuestAssets> = {}): GuestAssets => ({
  arch: "x86_64",
  kernel: join(dir, "kernel"),
  initrd: join(dir, "initrd"),
  kernelHash: "k1",
  agentHash: "a1",
  source: "override",
  manifest: join(dir, "manifest.json"),
  ...over,
});

function record(over: { rootfsDigest?: string } = {}) {
  return machineRecordFor(
    {
      kernel: join(dir, "kernel"),
      initrd: join(dir, "initrd"),
      kernelHash: "k1",
      agentHash: "a1",
      memoryMib: 1,
      vcpus: 1,
      rootfs: join(dir, "root.ext4"),
      rootfsDigest: over.rootfsDigest ?? DIGEST,
    },
    { qemuVersion: "10.0.2", accel: "tcg", cpuModel: "max" },
  );
}

function codeOf(fn: () => unknown): { code: string; details: Record<string, unknown> } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(VmmError);
    return err as VmmError;
  }
  throw new Error("expected a throw");
}

describe("machine.json names its inputs by hash, not by host path", () => {
  it("records hashes and a digest only, and resolves them on this host", () => {
    const r = record();
    writeMachineRecord(dir, r);
    const text = JSON.stringify(r);
    expect(text).not.toContain(dir);
    expect(r).toMatchObject({
      engineFormat: 2,
      guest: { kernelHash: "k1", agentHash: "a1" },
      rootfs: { digest: DIGEST },
    });
    const files = openSnapshotFiles(dir, { guest: guest(), rootfs: join(dir, "root.ext4") });
    expect(files.spec).toMatchObject({
      kernel: join(dir, "kernel"),
      initrd: join(dir, "initrd"),
      rootfs: join(dir, "root.ext4"),
      rootfsDigest: DIGEST,
      memoryMib: 1,
    });
  });

  it("names the input this host lacks in a typed error", () => {
    writeMachineRecord(dir, record());
    const g = codeOf(() =>
      openSnapshotFiles(dir, { guest: guest({ agentHash: "a2" }), rootfs: join(dir, "root.ext4") }),
    );
    expect(g.code).toBe("SNAPSHOT_INPUT_MISSING");
    expect(g.details).toMatchObject({ input: "guest", kernelHash: "k1", agentHash: "a1" });
    const r = codeOf(() => openSnapshotFiles(dir, { guest: guest(), rootfs: join(dir, "absent.ext4") }));
    expect(r.code).toBe("SNAPSHOT_INPUT_MISSING");
    expect(r.details).toMatchObject({ input: "rootfs", digest: DIGEST });
  });

  it("refuses engine format 1 and a root fs digest that is not sha256:<64 hex>", () => {
    writeFileSync(join(dir, "machine.json"), JSON.stringify({ ...record(), engineFormat: 1 }));
    expect(codeOf(() => openSnapshotFiles(dir, { guest: guest() })).code).toBe("SNAPSHOT_INVALID");
    writeFileSync(
      join(dir, "machine.json"),
      JSON.stringify({ ...record(), rootfs: { digest: "sha256:../../etc" } }),
    );
    expect(codeOf(() => openSnapshotFiles(dir, { guest: guest() })).code).toBe("SNAPSHOT_INVALID");
    expect(() => record({ rootfsDigest: "sha256:x" })).toThrow(/not sha256/);
    // by path: fine for the engine alone, refused where snapshots may come from elsewhere
    writeFileSync(
      join(dir, "machine.json"),
      JSON.stringify({ ...record(), guest: { kernel: join(dir, "kernel"), initrd: join(dir, "initrd") } }),
    );
    expect(openSnapshotFiles(dir, { rootfs: join(dir, "root.ext4") }).spec.kernel).toBe(join(dir, "kernel"));
    const byPath = codeOf(() => openSnapshotFiles(dir, { rootfs: join(dir, "root.ext4"), byHashOnly: true }));
    expect(byPath.code).toBe("SNAPSHOT_INVALID");
  });
});
