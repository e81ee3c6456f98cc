import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { layoutPath } from "./images.js";
import { startRegistry, type TestRegistry } from "./registry.js";

/** The busybox test image pushed to a fresh local registry, and a private snapshots dir. */
export interface CoreFixture {
  registry: TestRegistry;
  /** `127.0.0.1:PORT/busybox:1` */
  busyboxRef: string;
  /** Registries reached over plain HTTP (the local one). */
  insecureRegistries: string[];
  /** This test file's own snapshots directory. */
  snapshotsDir: string;
  /** A fresh scratch directory (removed by `close`). */
  scratch(prefix: string): string;
  close(): Promise<void>;
}

/** Starts a registry, pushes busybox and makes a private snapshots dir. */
export async function coreFixture(name: string): Promise<CoreFixture> {
  const busybox = layoutPath("busybox");
  const registry = await startRegistry();
  const busyboxRef = await registry.push(busybox, "busybox", "1");
  const root = mkdtempSync(join(tmpdir(), `sm-core-${name}-`));
  const snapshotsDir = join(root, "snapshots");
  // QEMU run directories of this file's VMs (and its child processes'): watchQemuStarts watches them
  process.env.SUPERMACHINE_RUN_DIR = join(root, "run");
  mkdirSync(process.env.SUPERMACHINE_RUN_DIR);
  let n = 0;
  return {
    registry,
    busyboxRef,
    insecureRegistries: [registry.host],
    snapshotsDir,
    scratch: (prefix) => mkdtempSync(join(root, `${prefix}-${n++}-`)),
    async close() {
      await registry.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Directory entries of a snapshots dir that are directories (snapshots, `.tmp.`/`.old.` build dirs). */
export function snapshotDirs(snapshotsDir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(snapshotsDir);
  } catch {
    return [];
  }
  return names.filter((n) => statSync(join(snapshotsDir, n)).isDirectory()).sort();
}

/** Entries of a snapshots dir that are lock files (`.lock.*`). */
export function lockFiles(snapshotsDir: string): string[] {
  try {
    return readdirSync(snapshotsDir).filter((n) => n.startsWith(".lock."));
  } catch {
    return [];
  }
}

/** Runs `fn`, expecting it to reject; returns the error (fails the test when it resolves). */
export async function rejection(
  fn: () => Promise<unknown>,
): Promise<Error & { code?: string; details?: Record<string, unknown> }> {
  try {
    await fn();
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error("expected a rejection, but it resolved");
}
