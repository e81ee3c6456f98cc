#!/usr/bin/env node
// `npm test`: builds every package, then runs the unit project, the
// integration project (real QEMU, real registry) and the guest agent's C tests
// (packages/vmm-native/guest/test-agent.sh), and ends with one plain summary
// line across all three: "N passed, N failed, N skipped". Exits non-zero on
// any failure.
//
// Skips are never silent: every skipped test is listed before the summary.
// With CI=true a skipped test fails the run unless test-support/allowed-skips.json
// lists it (by "file > test name") with the reason, which the summary prints.
//
// Usage: node scripts/run-tests.mjs [--projects=unit,integration,c] [TEST_FILE ...]
//   TEST_FILE arguments go to the project they belong to (`*.integration.test.ts`
//   to integration, other files to unit); a project given no file runs whole.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const ci = process.env.CI === "true" || process.env.CI === "1";

let projects = ["unit", "integration", "c"];
const files = { unit: [], integration: [] };
for (const arg of process.argv.slice(2)) {
  if (arg.startsWith("--projects=")) {
    projects = arg.slice("--projects=".length).split(",").filter(Boolean);
    const unknown = projects.filter((p) => !["unit", "integration", "c"].includes(p));
    if (unknown.length) throw new Error(`unknown project(s) ${unknown.join(", ")}`);
  } else if (arg.startsWith("-")) {
    throw new Error(`unknown option ${arg}`);
  } else {
    files[arg.includes(".integration.test.") ? "integration" : "unit"].push(arg);
  }
}

for (const p of ["unit", "integration"]) {
  if (files[p].length && !projects.includes(p))
    throw new Error(`${files[p].join(", ")} belong to the ${p} project, which --projects leaves out`);
}

const run = (cmd, args, opts = {}) => spawnSync(cmd, args, { stdio: "inherit", cwd: root, ...opts });

/** Allowed skips: [{ "test": "path/to/file.test.ts > suite > test", "reason": "..." }]. */
function allowedSkips() {
  const file = join(root, "test-support", "allowed-skips.json");
  const list = JSON.parse(readFileSync(file, "utf8"));
  if (!Array.isArray(list)) throw new Error(`${file} must hold a JSON array`);
  for (const e of list) {
    if (typeof e?.test !== "string" || typeof e?.reason !== "string" || !e.reason.trim())
      throw new Error(`${file}: every entry needs "test" and a non-empty "reason": ${JSON.stringify(e)}`);
  }
  return new Map(list.map((e) => [e.test, e.reason]));
}

const totals = { passed: 0, failed: 0, skipped: 0 };
const problems = [];
/** Skipped tests, as "file > name". */
const skippedTests = [];

function finish() {
  const allowed = allowedSkips();
  const notAllowed = [];
  if (skippedTests.length) {
    console.log("\nskipped tests:");
    for (const t of skippedTests) {
      const reason = allowed.get(t);
      console.log(
        `  ${t}${reason ? `  [allowed: ${reason}]` : "  [NOT in test-support/allowed-skips.json]"}`,
      );
      if (!reason) notAllowed.push(t);
    }
  }
  if (ci && notAllowed.length) {
    // under CI an unlisted skip is a failure: counted as failed, not as skipped
    problems.push(`CI: ${notAllowed.length} skipped test(s) not listed in test-support/allowed-skips.json`);
    totals.failed += notAllowed.length;
    totals.skipped -= notAllowed.length;
  }
  for (const p of problems) console.log(`problem: ${p}`);
  console.log(`${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
  process.exit(totals.failed > 0 || problems.length > 0 ? 1 : 0);
}

const build = run("npx", ["turbo", "run", "build", "--output-logs=errors-only"]);
if (build.status !== 0) {
  problems.push("the build failed");
  totals.failed += 1;
  finish();
}

const out = mkdtempSync(join(tmpdir(), "sm-tests-"));
try {
  for (const project of projects.filter((p) => p !== "c")) {
    const file = join(out, `${project}.json`);
    const code = run("npx", [
      "vitest",
      "run",
      "--project",
      project,
      "--reporter=default",
      "--reporter=json",
      `--outputFile.json=${file}`,
      ...files[project],
    ]).status;
    let report;
    try {
      report = JSON.parse(readFileSync(file, "utf8"));
    } catch {
      problems.push(`${project}: vitest wrote no report (exit ${code})`);
      totals.failed += 1;
      continue;
    }
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const suite of report.testResults ?? []) {
      const rel = relative(root, suite.name);
      for (const t of suite.assertionResults ?? []) {
        if (t.status === "passed") passed++;
        else if (t.status === "failed") failed++;
        else {
          skipped++;
          skippedTests.push([rel, ...(t.ancestorTitles ?? []), t.title].join(" > "));
        }
      }
      // A file that failed to load (or threw outside a test) has no failed test of its own.
      if (suite.status === "failed" && !(suite.assertionResults ?? []).some((t) => t.status === "failed")) {
        failed++;
        problems.push(
          `${project}: ${rel} failed outside its tests: ${String(suite.message ?? "").split("\n")[0]}`,
        );
      }
    }
    if (code !== 0 && failed === 0) {
      failed++;
      problems.push(`${project}: vitest exited ${code} with no failed test (unhandled error?)`);
    }
    if (passed + failed + skipped === 0) {
      failed++;
      problems.push(`${project}: no tests ran`);
    }
    totals.passed += passed;
    totals.failed += failed;
    totals.skipped += skipped;
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}

if (projects.includes("c")) {
  // The agent's C tests print their own "N passed, N failed, N skipped" last.
  const r = run("bash", ["packages/vmm-native/guest/test-agent.sh"], {
    stdio: ["ignore", "pipe", "inherit"],
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
  process.stdout.write(r.stdout ?? "");
  const m = /^(\d+) passed, (\d+) failed, (\d+) skipped$/m.exec(
    (r.stdout ?? "").trim().split("\n").at(-1) ?? "",
  );
  if (!m) {
    problems.push(`c: test-agent.sh ended without a summary line (exit ${r.status})`);
    totals.failed += 1;
  } else {
    const [passed, failed, skipped] = [Number(m[1]), Number(m[2]), Number(m[3])];
    totals.passed += passed;
    totals.failed += failed;
    totals.skipped += skipped;
    for (let i = 0; i < skipped; i++) skippedTests.push("packages/vmm-native/guest/test-agent.sh");
    if (r.status !== 0 && failed === 0) {
      problems.push(`c: test-agent.sh exited ${r.status} with no failed test`);
      totals.failed += 1;
    }
    if (passed + failed === 0) {
      problems.push("c: no tests ran");
      totals.failed += 1;
    }
  }
}
finish();
