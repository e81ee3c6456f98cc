// Small helpers shared by the benchmark scripts: percentiles, tables, JSON
// output, and process memory (RSS and PSS) read from /proc.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
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

/** Which part of a QEMU process a mapping of /proc/PID/smaps holds. */
function qemuPart(name, perms) {
  if (/memory\.bin( \(deleted\))?$/.test(name)) return "guest RAM written since restore";
  if (name.includes("tcg") || (name === "" && perms.includes("x"))) return "TCG translation buffer";
  if (name.startsWith("/")) return "QEMU binary and libraries";
  return "QEMU heap, arenas and stacks";
}

/**
 * PSS and private memory (KiB) of a QEMU process, in total and by part:
 * guest RAM pages written since the restore (private copies of the
 * snapshot's file), the TCG translation buffer, QEMU's binary and libraries
 * (relocated data), and QEMU's heap, thread arenas and stacks.
 */
export function memoryBreakdownKib(pid) {
  const parts = {};
  for (const p of [
    "guest RAM written since restore",
    "TCG translation buffer",
    "QEMU heap, arenas and stacks",
    "QEMU binary and libraries",
  ])
    parts[p] = { private: 0, pss: 0 };
  let cur;
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const m = /^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) {
      cur = parts[qemuPart(m[2], m[1])];
      continue;
    }
    const k = /^(Pss|Private_Clean|Private_Dirty):\s+(\d+) kB/.exec(line);
    if (!k || !cur) continue;
    if (k[1] === "Pss") cur.pss += Number(k[2]);
    else cur.private += Number(k[2]);
  }
  const sum = (f) => Object.values(parts).reduce((a, p) => a + p[f], 0);
  return { pid, pss: sum("pss"), private: sum("private"), parts };
}

/**
 * CPU time a process has used so far, in milliseconds: the sum over its
 * threads of /proc/<pid>/task/<tid>/schedstat (nanosecond resolution, unlike
 * the 10 ms ticks of /proc/<pid>/stat). Threads that already exited are not
 * counted. 0 when the process is gone.
 */
export function cpuMs(pid) {
  let ns = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
      } catch {
        // the thread ended meanwhile
      }
    }
  } catch {
    return 0;
  }
  return ns / 1e6;
}
