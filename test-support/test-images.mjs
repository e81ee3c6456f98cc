// The test OCI layouts of scripts/test-images/build.sh (busybox, multilayer,
// multiarch, debian, busybox-multiarch, debian-arm64), shared by the integration tests and the benchmarks.
// Plain JS so both vitest (through test-images.ts) and node scripts import it.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The layouts build.sh makes, every one of them, always. */
export const TEST_IMAGE_NAMES = [
  "busybox",
  "multilayer",
  "multiarch",
  "debian",
  "busybox-multiarch",
  "debian-arm64",
];

/** Where the test OCI layouts live (`$SUPERMACHINE_TEST_IMAGES` or `<cache>/test-images`). */
export function testImagesDir() {
  return (
    process.env.SUPERMACHINE_TEST_IMAGES ??
    join(process.env.SUPERMACHINE_CACHE ?? join(homedir(), ".cache", "supermachine"), "test-images")
  );
}

/**
 * Makes every test layout current and returns their paths. build.sh checks
 * each layout on its own (a stamp of its inputs and every blob present) and
 * rebuilds what is stale or incomplete, whatever else the directory holds, so
 * a directory left by an older or partial build is completed, not trusted.
 * Debian's debootstrap takes minutes the first time, then seconds. Runs once
 * per process tree: vitest's integration setup runs it and marks the
 * environment its workers inherit.
 */
export function ensureTestImages() {
  const out = testImagesDir();
  if (process.env.SUPERMACHINE_TEST_IMAGES_CHECKED !== out) {
    const script = join(dirname(fileURLToPath(import.meta.url)), "..", "scripts", "test-images", "build.sh");
    execFileSync("bash", [script, out], { stdio: ["ignore", "ignore", "inherit"] });
    process.env.SUPERMACHINE_TEST_IMAGES_CHECKED = out;
  }
  const paths = {};
  for (const name of TEST_IMAGE_NAMES) {
    const dir = join(out, name);
    if (!existsSync(join(dir, "index.json"))) throw new Error(`test layout ${dir} is missing after build.sh`);
    paths[name] = dir;
  }
  return paths;
}

/**
 * Debian's arm64 busybox-static binary that build.sh fetched for the
 * busybox-multiarch layout (for engine tests that make their own aarch64 root
 * fs). Makes the layouts current first.
 */
export function arm64BusyboxPath() {
  ensureTestImages();
  const cache = join(
    process.env.SUPERMACHINE_CACHE ?? join(homedir(), ".cache", "supermachine"),
    "test-images",
  );
  const dirs = readdirSync(cache).filter((d) => d.startsWith("arm64-debs-"));
  for (const d of dirs) {
    const p = join(cache, d, "busybox");
    if (existsSync(p)) return p;
  }
  throw new Error(`no arm64 busybox under ${cache} after build.sh`);
}
