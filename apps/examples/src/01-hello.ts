// 01 hello: bake the default image (or reuse the cached bake), acquire a VM
// from a pool restored from the snapshot, and exec in it.
import { Image } from "@supermachine/core";
import { defaultImageRef, since, snapshotsDir } from "./default-image.js";

const t0 = performance.now();
const image = await Image.build({
  ref: defaultImageRef(),
  snapshotsDir,
  onProgress: (p) => {
    if (p.phase === "pull" || p.phase === "download" || p.phase === "upload") return;
    console.log(
      `[build] ${p.phase}: ${"message" in p ? p.message : "snapshotPath" in p ? p.snapshotPath : p.ref}`,
    );
  },
});
console.log(`image ready in ${since(t0)}: ${image.snapshotPath}`);

const t1 = performance.now();
const pool = await image.pool({ min: 1, max: 1 });
const vm = await pool.acquire();
console.log(`VM acquired in ${since(t1)}`);

const t2 = performance.now();
const r = await vm.exec({ argv: ["uname", "-a"] });
console.log(`exec in ${since(t2)}: exit ${r.exitCode}\n${r.stdout.toString().trim()}`);
const who = await vm.exec({
  argv: ["sh", "-c", "echo hello from $(hostname), uptime $(cut -d' ' -f1 /proc/uptime)s"],
});
console.log(who.stdout.toString().trim());

await vm.release();
await pool.shutdown();
if (r.exitCode !== 0) process.exit(1);
