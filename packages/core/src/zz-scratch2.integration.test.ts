import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { it } from "vitest";
import { Image } from "./index.js";
import { buildFidelityTools } from "./test-support/fidelity.js";

it("scratch vm", async () => {
  const t = buildFidelityTools();
  const snaps = mkdtempSync("/tmp/guest-scratch/snaps-");
  for (const [name, tag] of [
    ["busybox", "latest"],
    ["debian", "bookworm"],
  ]) {
    const image = await Image.build({
      ref: `oci:${process.env.HOME}/.cache/supermachine/test-images/${name}:${tag}`,
      snapshotsDir: snaps,
    });
    const pool = await image.pool({ min: 1, max: 1 });
    const vm = await pool.acquire();
    await vm.writeFile("/sm-probe", readFileSync(t.probe), 0o755);
    const r = await vm.exec({ argv: ["/sm-probe"] });
    writeFileSync(`/tmp/guest-scratch/vm-${name}.txt`, r.stdout.toString() + r.stderr.toString());
    await vm.release();
    await pool.shutdown();
  }
});
