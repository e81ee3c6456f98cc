import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import type { SnapshotMetadataDraft } from "../metadata.js";

/** A temp directory tree for one test: a snapshots dir and a root fs dir. */
export interface TestDirs {
  root: string;
  snapshots: string;
  /** `<root>/cache/oci/rootfs`: the default root fs store while `$SUPERMACHINE_CACHE` is `<root>/cache`. */
  rootfs: string;
  cleanup(): Promise<void>;
}

/**
 * Creates fresh temp directories for a test and points `$SUPERMACHINE_CACHE`
 * at `<root>/cache` (restored by `cleanup`), so the store's default root fs
 * store is the test's `rootfs` directory (child processes inherit it).
 */
export async function makeTestDirs(): Promise<TestDirs> {
  const root = await mkdtemp(join(tmpdir(), "sm-snapshot-test-"));
  const snapshots = join(root, "snapshots");
  const rootfs = join(root, "cache", "oci", "rootfs");
  await mkdir(rootfs, { recursive: true });
  const saved = process.env.SUPERMACHINE_CACHE;
  process.env.SUPERMACHINE_CACHE = join(root, "cache");
  return {
    root,
    snapshots,
    rootfs,
    cleanup: async () => {
      if (saved === undefined) delete process.env.SUPERMACHINE_CACHE;
      else process.env.SUPERMACHINE_CACHE = saved;
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** The root fs digest the fixtures use for `label`: `sha256:` + sha256 of the label. */
export function rootfsDigestOf(label: string): string {
  return `sha256:${createHash("sha256").update(label).digest("hex")}`;
}

/** Writes a root fs image file of `size` bytes for `label` (named `<hex>.ext4` of {@link rootfsDigestOf}), returns its path. */
export async function writeRootfs(rootfsDir: string, label: string, size = 4096): Promise<string> {
  const path = join(rootfsDir, `${rootfsDigestOf(label).slice(7)}.ext4`);
  await writeFile(path, randomBytes(size));
  return path;
}

/** Guest asset hashes used by the tests. */
export const ASSETS = { kernelHash: "kernel-aaaa", agentHash: "agent-bbbb" };

/**
 * Writes the engine's files the way a bake leaves them: a small device
 * state stream and a sparse memory file of `memoryMib` MiB.
 */
export async function writeEngineFiles(dir: string, memoryMib: number): Promise<void> {
  await writeFile(join(dir, "restore.snap"), Buffer.concat([Buffer.from("QEVM"), randomBytes(2048)]));
  await writeFile(join(dir, "memory.bin"), "");
  await truncate(join(dir, "memory.bin"), memoryMib * 1024 * 1024);
  await writeFile(join(dir, "machine.json"), `${JSON.stringify({ engineFormat: 1 })}\n`);
}

/** A complete draft as a build callback would return it. */
export function draft(rootfsPath: string, over: Partial<SnapshotMetadataDraft> = {}): SnapshotMetadataDraft {
  return {
    image: {
      ref: "127.0.0.1:5000/library/busybox:latest",
      manifestDigest: `sha256:${"ab".repeat(32)}`,
      config: {
        entrypoint: undefined,
        cmd: ["sh"],
        env: ["PATH=/usr/bin:/bin"],
        workingDir: "",
        user: "",
        exposedPorts: ["80/tcp"],
      },
    },
    memoryMib: 8,
    vcpus: 1,
    guestPort: 80,
    listenerRequired: false,
    trigger: "pre-exec",
    workload: { argv: ["sh"], env: ["PATH=/usr/bin:/bin"], cwd: "/", user: "" },
    engine: { qemuVersion: "10.0.2", machine: "microvm", accel: "tcg" },
    assets: { ...ASSETS },
    rootfs: { path: rootfsPath, digest: `sha256:${basename(rootfsPath, ".ext4")}` },
    ...over,
  };
}

/** A build callback that writes engine files for `memoryMib` and returns {@link draft}. */
export function fakeBuild(rootfsPath: string, over: Partial<SnapshotMetadataDraft> = {}) {
  return async (tmpDir: string): Promise<SnapshotMetadataDraft> => {
    const d = draft(rootfsPath, over);
    await writeEngineFiles(tmpDir, d.memoryMib);
    return d;
  };
}

/** A valid-looking fingerprint made of one repeated hex digit pair. */
export function fp(byte: string): string {
  return byte.repeat(32);
}
