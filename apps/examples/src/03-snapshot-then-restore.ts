// 03 snapshot then restore: change a VM, snapshot it, and start new VMs from
// that state.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Image } from "@supermachine/core";
import { defaultImageRef, since, snapshotsDir } from "./default-image.js";

const image = await Image.build({ ref: defaultImageRef(), snapshotsDir });
const pool = await image.pool();
const vm = await pool.acquire();
await vm.exec({ argv: ["sh", "-c", "mkdir -p /work && echo 'state from the first VM' > /work/note.txt"] });

const dest = mkdtempSync(join(tmpdir(), "sm-example-snap-"));
const t0 = performance.now();
const derived = await vm.snapshot(join(dest, "snap"));
console.log(`snapshot in ${since(t0)} at ${derived.snapshotPath}`);
await vm.release();
await pool.shutdown();

const again = await Image.fromSnapshot(derived.snapshotPath);
const pool2 = await again.pool({ min: 2, max: 2 });
const [a, b] = await Promise.all([pool2.acquire(), pool2.acquire()]);
for (const v of [a, b]) console.log((await v.readFile("/work/note.txt")).toString().trim());
await a.release();
await b.release();
await pool2.shutdown();
rmSync(dest, { recursive: true, force: true });
