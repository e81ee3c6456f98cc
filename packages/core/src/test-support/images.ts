import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Root of the monorepo. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");

/** Where the test OCI layouts are built once and shared by every integration test file. */
export const layoutsDir =
  process.env.SUPERMACHINE_TEST_IMAGES ?? join(tmpdir(), "supermachine-core-test-images");

/**
 * Returns the directory holding the OCI layouts of `scripts/test-images/build.sh`
 * (`busybox`, `multilayer`, `multiarch`, `debian`), building them on first use.
 */
export function testLayouts(): string {
  if (existsSync(join(layoutsDir, "busybox", "index.json"))) return layoutsDir;
  const script = join(repoRoot, "scripts", "test-images", "build.sh");
  if (!existsSync(script)) throw new Error(`${script} is missing: the test images cannot be built`);
  const tmp = `${layoutsDir}.tmp.${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  execFileSync("bash", [script, tmp], { stdio: ["ignore", "inherit", "inherit"] });
  if (!existsSync(join(layoutsDir, "busybox", "index.json"))) {
    rmSync(layoutsDir, { recursive: true, force: true });
    renameSync(tmp, layoutsDir);
  } else {
    rmSync(tmp, { recursive: true, force: true });
  }
  return layoutsDir;
}

/** Path of one test layout (`busybox`, `debian`, ...), or undefined when it was not built. */
export function layoutPath(name: string): string | undefined {
  const p = join(testLayouts(), name);
  return existsSync(join(p, "index.json")) ? p : undefined;
}
