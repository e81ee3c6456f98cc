#!/usr/bin/env node
// Runs every benchmark part in sequence (they share 2 cores; running them in
// parallel would measure contention). Each part prints its table and writes
// bench-results/<part>.json. `npm run bench -- engine pool` runs a subset.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const parts = {
  engine: "packages/vmm-native/bench/engine.bench.mjs",
  arch: "packages/vmm-native/bench/arch.bench.mjs",
  network: "packages/vmm-native/bench/network.bench.mjs",
  kernel: "packages/vmm-native/bench/kernel.bench.mjs",
  agent: "packages/agent-protocol/bench/agent.bench.mjs",
  oci: "packages/oci/bench/oci.bench.mjs",
  bake: "packages/core/bench/bake.bench.mjs",
  pool: "packages/core/bench/pool.bench.mjs",
  perf: "packages/core/bench/perf.bench.mjs",
  rootfs: "packages/core/bench/rootfs.bench.mjs",
  share: "packages/core/bench/share.bench.mjs",
};
const wanted = process.argv.slice(2).filter((a) => a in parts);
mkdirSync(join(root, "bench-results"), { recursive: true });
let failed = 0;
for (const [name, file] of Object.entries(parts)) {
  if (wanted.length && !wanted.includes(name)) continue;
  const path = join(root, file);
  if (!existsSync(path)) {
    console.log(`\n## ${name}: no benchmark at ${file}`);
    continue;
  }
  console.log(`\n## ${name}`);
  const r = spawnSync(process.execPath, [path], { cwd: root, stdio: "inherit" });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
