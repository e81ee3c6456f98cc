#!/usr/bin/env node
// `npm test`: builds every package, runs the unit project and then the
// integration project (real QEMU, real registry), and ends with one plain
// summary line, "N passed, N failed", across both. Exits non-zero on failure.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const run = (cmd, args) => spawnSync(cmd, args, { stdio: "inherit" }).status ?? 1;
if (run("npx", ["turbo", "run", "build", "--output-logs=errors-only"]) !== 0) {
  console.log("0 passed, 1 failed");
  process.exit(1);
}
const out = mkdtempSync(join(tmpdir(), "sm-tests-"));
let passed = 0;
let failed = 0;
let status = 0;
for (const project of ["unit", "integration"]) {
  const file = join(out, `${project}.json`);
  const extra = process.argv.slice(2);
  const code = run("npx", [
    "vitest",
    "run",
    "--project",
    project,
    "--reporter=default",
    "--reporter=json",
    `--outputFile.json=${file}`,
    ...extra,
  ]);
  try {
    const r = JSON.parse(readFileSync(file, "utf8"));
    passed += r.numPassedTests;
    failed += r.numFailedTests;
    if (code !== 0 && r.numFailedTests === 0) failed += 1; // a suite that failed to load, or unhandled errors
  } catch {
    failed += 1;
  }
  if (code !== 0) status = 1;
}
rmSync(out, { recursive: true, force: true });
console.log(`${passed} passed, ${failed} failed`);
process.exit(status);
