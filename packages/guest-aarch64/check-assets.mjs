// Refuses to pack this package without its guest assets (they are build
// outputs, not sources): `npm pack` / `npm publish` then fail with the fix.

import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";

const dir = new URL("./assets/", import.meta.url);
const fail = (msg) => {
  console.error(
    `@supermachine/guest-aarch64: ${msg}; build it with: bash packages/vmm-native/guest/build-assets.sh aarch64`,
  );
  process.exit(1);
};
if (!existsSync(new URL("manifest.json", dir))) fail("assets/manifest.json is missing");
const m = JSON.parse(readFileSync(new URL("manifest.json", dir), "utf8"));
for (const key of ["kernel", "initrd"]) {
  const file = new URL(m[key], dir);
  if (!existsSync(file)) fail(`assets/${m[key]} is missing`);
  const sha = createHash("sha256").update(readFileSync(file)).digest("hex");
  if (sha !== m[`${key}Sha256`]) fail(`assets/${m[key]} does not match its manifest sha256`);
}
