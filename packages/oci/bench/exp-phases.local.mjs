import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { startRegistry } from "../../../test-support/registry.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const { pullImage, buildRootfs } = await import(join(here, "..", "dist", "index.js"));
const work = mkdtempSync(join(tmpdir(), "exp-oci-"));
const reg = await startRegistry();
try {
  const ref = await reg.pushLayout(
    join(process.env.HOME, ".cache/supermachine/test-images/debian"),
    "bench/debian:bookworm",
  );
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const log = (m) => console.log(`${(performance.now() - t0).toFixed(0).padStart(5)} ${m.slice(0, 90)}`);
    const img = await pullImage(ref, { cacheDir: join(work, `c${i}`) });
    log("pulled");
    await buildRootfs(img, { onProgress: log });
    log("done");
  }
} finally {
  await reg.close();
}
