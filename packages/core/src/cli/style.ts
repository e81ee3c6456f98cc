/**
 * Terminal styling for the CLI: colors only on a terminal, never when
 * `NO_COLOR` is set (https://no-color.org), `TERM=dumb` or `--no-color`.
 */

/** Whether a stream should get ANSI colors. */
export function colorFor(stream: NodeJS.WriteStream, disabled = false): boolean {
  if (disabled) return false;
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== "") return false;
  if (process.env.FORCE_COLOR !== undefined && process.env.FORCE_COLOR !== "0") return true;
  return stream.isTTY === true && process.env.TERM !== "dumb";
}

/** A palette that is either ANSI or plain text. */
export interface Style {
  readonly color: boolean;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
  dim(s: string): string;
  bold(s: string): string;
}

/** A palette for `stream`. */
export function styleFor(stream: NodeJS.WriteStream, disabled = false): Style {
  const color = colorFor(stream, disabled);
  const wrap = (open: number, close: number) => (s: string) =>
    color ? `\x1b[${open}m${s}\x1b[${close}m` : s;
  return {
    color,
    red: wrap(31, 39),
    green: wrap(32, 39),
    yellow: wrap(33, 39),
    cyan: wrap(36, 39),
    dim: wrap(2, 22),
    bold: wrap(1, 22),
  };
}

/** `1.5 kB`, `12.3 MB`, `1.2 GB` (decimal units, like `docker pull`). */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return "?";
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let v = n / 1000;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** `340ms`, `2.4s`, `3m05s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}

/** Visible length of a string (ANSI escapes not counted). */
export function visibleLength(s: string): number {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI escapes
  return s.replace(/\x1b\[[0-9;]*m/g, "").length;
}

/** Aligns rows into columns separated by two spaces (the last column is not padded). */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, visibleLength(c));
    });
  }
  return rows
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c + " ".repeat((widths[i] ?? 0) - visibleLength(c))))
        .join("  ")
        .trimEnd(),
    )
    .map((l) => `${l}\n`)
    .join("");
}
