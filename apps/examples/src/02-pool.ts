// 02 pool: many concurrent acquires against a small pool; stats as it goes.
import { Image } from "@supermachine/core";
import { defaultImageRef, since, snapshotsDir } from "./default-image.js";

const image = await Image.build({ ref: defaultImageRef(), snapshotsDir });
await using pool = await image.pool({ min: 2, max: 3 });
console.log("after start:", pool.stats());

const t0 = performance.now();
const jobs = Array.from({ length: 8 }, async (_, i) => {
  await using vm = await pool.acquire();
  const r = await vm.exec({
    argv: ["sh", "-c", `echo job ${i}: $(cat /proc/sys/kernel/random/boot_id | cut -c1-8)`],
  });
  return r.stdout.toString().trim();
});
const poll = setInterval(() => console.log("stats:", pool.stats()), 500);
const out = await Promise.all(jobs);
clearInterval(poll);
console.log(out.join("\n"));
console.log(`8 jobs on max 3 VMs in ${since(t0)}; final stats:`, pool.stats());
