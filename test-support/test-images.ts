import { execFileSync } from "node:child_process";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Where the test OCI layouts live (`$SUPERMACHINE_TEST_IMAGES` or `~/.cache/supermachine/test-images`). */
export function testImagesDir(): string {
  return (
    process.env.SUPERMACHINE_TEST_IMAGES ??
    join(process.env.SUPERMACHINE_CACHE ?? join(homedir(), ".cache", "supermachine"), "test-images")
  );
}

/**
 * Builds (idempotently) the test layouts and returns their paths. `debian`
 * takes minutes the first time (debootstrap), then seconds.
 */
export function ensureTestImages(opts: { debian?: boolean } = {}): {
  busybox: string;
  multilayer: string;
  multiarch: string;
  debian?: string;
} {
  const out = testImagesDir();
  const script = join(dirname(fileURLToPath(import.meta.url)), "..", "scripts", "test-images", "build.sh");
  execFileSync("bash", [script, out, ...(opts.debian ? [] : ["--no-debian"])], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  return {
    busybox: join(out, "busybox"),
    multilayer: join(out, "multilayer"),
    multiarch: join(out, "multiarch"),
    ...(opts.debian ? { debian: join(out, "debian") } : {}),
  };
}
