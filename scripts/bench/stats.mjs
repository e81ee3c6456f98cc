// Small helpers shared by the benchmark scripts: percentiles, tables, JSON
// output, and process memory (RSS and PSS) read from /proc.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export function summarize(xs) {
  return {
    n: xs.length,
    p50: percentile(xs, 50),
    p99: percentile(xs, 99),
    min: Math.min(...xs),
    max: Math.max(...xs),
  };
}

/** RSS and PSS (KiB) of a process, from /proc/PID/smaps_rollup. */
export function memoryKib(pid) {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const get = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? Number.NaN);
  return { rssKib: get("Rss"), pssKib: get("Pss"), anonKib: get("Anonymous") };
}

export function printTable(title, rows) {
  console.log(`\n${title}`);
  const cols = ["metric", "value", "unit", "note"];
  const w = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? "").length)));
  const line = (vals) => vals.map((v, i) => String(v ?? "").padEnd(w[i])).join(" | ");
  console.log(line(cols));
  console.log(w.map((n) => "-".repeat(n)).join("-|-"));
  for (const r of rows) console.log(line(cols.map((c) => (typeof r[c] === "number" ? fmt(r[c]) : r[c]))));
}

function fmt(n) {
  return Number.isInteger(n) ? String(n) : n.toFixed(n < 10 ? 2 : 1);
}

export function writeResults(name, data) {
  const dir = join(process.cwd(), "bench-results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.json`);
  writeFileSync(file, `${JSON.stringify({ name, at: new Date().toISOString(), ...data }, null, 2)}\n`);
  console.log(`\nwrote ${file}`);
}
