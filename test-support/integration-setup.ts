// vitest globalSetup of the integration project: everything the integration
// tests need is made current before the first file runs, however the run was
// started (npm test, npm run test:integration, npx vitest ... FILE):
// - the packages' dist/ (child-process tests import it): turbo build, cached;
// - the guest kernels and agents of this checkout, x86_64 and aarch64
//   (build-assets.sh [aarch64]: cached by the hash of their sources, so a
//   changed agent is rebuilt, never tested stale);
// - every test OCI layout, each checked and rebuilt when stale or incomplete;
// - the built-in default image the examples bake.
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureTestImages } from "./test-images.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

export default function setup(): void {
  execFileSync("npx", ["turbo", "run", "build", "--output-logs=errors-only"], {
    cwd: root,
    stdio: ["ignore", "inherit", "inherit"],
  });
  for (const arch of ["x86_64", "aarch64"]) {
    execFileSync("bash", [join(root, "packages", "vmm-native", "guest", "build-assets.sh"), arch], {
      stdio: ["ignore", "ignore", "inherit"],
    });
  }
  ensureTestImages();
  execFileSync("bash", [join(root, "scripts", "test-images", "default-image.sh")], {
    stdio: ["ignore", "ignore", "inherit"],
  });
}
