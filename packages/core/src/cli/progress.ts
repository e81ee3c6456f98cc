import type { BuildProgress } from "../index.js";
import { formatBytes, formatDuration, type Style, visibleLength } from "./style.js";

/** Receives `Image.build` / `pullRootfs` progress and shows it; `finish` draws the final state. */
export interface ProgressView {
  update(p: BuildProgress): void;
  /** Marks the running phase done (or failed) and stops redrawing. */
  finish(ok: boolean): void;
}

interface LayerState {
  digest: string;
  done: number;
  total: number;
  start: number;
  end?: number;
  cached: boolean;
  /** The plain renderer already printed its completion. */
  logged?: boolean;
}

type PhaseName = Exclude<BuildProgress["phase"], "pull">;

interface PhaseState {
  name: PhaseName;
  message: string;
  start: number;
  end?: number;
  failed?: boolean;
}

const PHASE_LABEL: Record<PhaseName, string> = {
  rootfs: "root fs",
  boot: "boot",
  snapshot: "snapshot",
  cached: "snapshot",
  waiting: "waiting",
  registry: "registry",
  download: "download",
  restored: "snapshot",
  upload: "push",
  pushed: "push",
};

/** Phases that are over as soon as they are reported. */
const INSTANT: ReadonlySet<PhaseName> = new Set(["cached", "restored", "pushed"]);

/** The one-line message of a non-pull progress event. */
function messageOf(p: Exclude<BuildProgress, { phase: "pull" }>): string {
  switch (p.phase) {
    case "cached":
      return "cached: no pull, no boot";
    case "download":
      return `${formatBytes(p.bytesDone)}/${formatBytes(p.bytesTotal)}`;
    case "restored":
      return `pulled ${p.ref} (${formatBytes(p.bytes)}): no boot`;
    case "upload":
      return p.step === "pack"
        ? "compressing guest memory (zero pages left out)"
        : `${formatBytes(p.bytesDone)}/${formatBytes(p.bytesTotal)}`;
    case "pushed":
      return `pushed ${p.ref} (${formatBytes(p.bytes)})`;
    default:
      return p.message;
  }
}

/** The state shared by the renderers: layers in first-seen order, then phases. */
class BuildState {
  readonly layers = new Map<string, LayerState>();
  readonly phases: PhaseState[] = [];
  readonly start = Date.now();

  /** Applies an event; returns the phase that ended because of it, if any. */
  apply(p: BuildProgress): { layer?: LayerState; ended?: PhaseState; started?: PhaseState } {
    const now = Date.now();
    if (p.phase === "pull") {
      let l = this.layers.get(p.layer);
      if (!l) {
        l = {
          digest: p.layer,
          done: 0,
          total: p.bytesTotal,
          start: now,
          cached: p.bytesDone >= p.bytesTotal,
        };
        this.layers.set(p.layer, l);
      }
      l.done = p.bytesDone;
      l.total = p.bytesTotal;
      if (l.done >= l.total && l.end === undefined) l.end = now;
      return { layer: l };
    }
    const message = messageOf(p);
    const current = this.phases.at(-1);
    if (current && current.name === p.phase && current.end === undefined) {
      current.message = message;
      return {};
    }
    let ended: PhaseState | undefined;
    if (current && current.end === undefined) {
      current.end = now;
      ended = current;
    }
    const started: PhaseState = { name: p.phase, message, start: now };
    if (INSTANT.has(p.phase)) started.end = now;
    this.phases.push(started);
    return { ended, started };
  }

  /** Ends the running phase. */
  close(ok: boolean): PhaseState | undefined {
    const current = this.phases.at(-1);
    if (current && current.end === undefined) {
      current.end = Date.now();
      current.failed = !ok;
      return current;
    }
    return undefined;
  }

  pullTotals(): { done: number; total: number } {
    let done = 0;
    let total = 0;
    for (const l of this.layers.values()) {
      done += l.done;
      total += l.total;
    }
    return { done, total };
  }
}

const shortDigest = (d: string) => (d.includes(":") ? d.slice(d.indexOf(":") + 1) : d).slice(0, 12);

function bar(done: number, total: number, width: number): string {
  const frac = total > 0 ? Math.min(1, done / total) : 0;
  const full = Math.floor(frac * width);
  if (full >= width) return `[${"=".repeat(width)}]`;
  return `[${"=".repeat(full)}>${" ".repeat(width - full - 1)}]`;
}

/**
 * Live progress on a terminal, like `docker pull`: one line per layer with a
 * bar, bytes and rate, then one line per bake phase with its duration.
 * Redraws in place at most every 100 ms.
 */
export class TtyProgress implements ProgressView {
  private readonly state = new BuildState();
  private drawn = 0;
  private timer: NodeJS.Timeout | undefined;
  private dirty = false;
  private finished = false;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly style: Style,
    private readonly title: string,
  ) {
    this.timer = setInterval(() => this.dirty && this.draw(), 100);
    this.timer.unref();
    this.draw();
  }

  update(p: BuildProgress): void {
    if (this.finished) return;
    const r = this.state.apply(p);
    this.dirty = true;
    // phase changes and finished layers show at once; byte counts on the next tick
    if (r.started || r.ended || (r.layer && r.layer.end !== undefined)) this.draw();
  }

  finish(ok: boolean): void {
    if (this.finished) return;
    this.state.close(ok);
    this.draw();
    this.finished = true;
    clearInterval(this.timer);
  }

  private layerLine(l: LayerState, now: number): string {
    const s = this.style;
    const id = s.cyan(shortDigest(l.digest));
    if (l.cached && l.end !== undefined) return `${id}: ${s.dim("already in the cache")}`;
    if (l.end !== undefined) {
      return `${id}: ${s.green("pull complete")}  ${formatBytes(l.total)}  ${s.dim(formatDuration(l.end - l.start))}`;
    }
    const secs = Math.max(0.001, (now - l.start) / 1000);
    const rate = l.done / secs;
    return `${id}: downloading ${bar(l.done, l.total, 24)} ${formatBytes(l.done)}/${formatBytes(l.total)}  ${s.dim(`${formatBytes(rate)}/s`)}`;
  }

  private phaseLine(p: PhaseState, now: number): string {
    const s = this.style;
    const label = PHASE_LABEL[p.name].padEnd(8);
    if (p.name === "cached") return `${label}  ${s.green("cached")}: no pull, no boot`;
    if (INSTANT.has(p.name)) return `${label}  ${s.green(p.name)}: ${p.message}`;
    if (p.end === undefined) return `${label}  ${p.message}... ${s.dim(formatDuration(now - p.start))}`;
    if (p.failed) return `${label}  ${s.red("failed")} after ${formatDuration(p.end - p.start)}`;
    return `${label}  ${s.green("done")}  ${s.dim(formatDuration(p.end - p.start))}`;
  }

  private draw(): void {
    this.dirty = false;
    const now = Date.now();
    const lines = [this.style.bold(this.title)];
    for (const l of this.state.layers.values()) lines.push(this.layerLine(l, now));
    for (const p of this.state.phases) lines.push(this.phaseLine(p, now));
    const cols = this.out.columns || 80;
    let buf = this.drawn > 0 ? `\x1b[${this.drawn}A` : "";
    for (const line of lines) {
      // never wrap: a wrapped line would break the cursor-up redraw
      const fitted = visibleLength(line) > cols - 1 ? fit(line, cols - 1) : line;
      buf += `\r\x1b[2K${fitted}\n`;
    }
    this.drawn = lines.length;
    this.out.write(buf);
  }
}

/** Cuts a styled line to `width` visible characters (drops its styling when it must cut). */
function fit(line: string, width: number): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI escapes
  const plain = line.replace(/\x1b\[[0-9;]*m/g, "");
  return plain.slice(0, Math.max(0, width));
}

/**
 * Progress for logs and pipes: a line when a layer completes, a pull total
 * every 10% or so, and one line per phase start and end with its duration.
 */
export class PlainProgress implements ProgressView {
  private readonly state = new BuildState();
  private lastPct = 0;
  private finished = false;

  constructor(private readonly out: NodeJS.WritableStream) {}

  update(p: BuildProgress): void {
    if (this.finished) return;
    const r = this.state.apply(p);
    if (r.layer) {
      const l = r.layer;
      if (l.end !== undefined && !l.logged) {
        l.logged = true;
        this.out.write(
          l.cached
            ? `pull: ${shortDigest(l.digest)} already in the cache (${formatBytes(l.total)})\n`
            : `pull: ${shortDigest(l.digest)} complete, ${formatBytes(l.total)} in ${formatDuration(l.end - l.start)}\n`,
        );
      }
      const t = this.state.pullTotals();
      const pct = t.total ? Math.floor((100 * t.done) / t.total) : 0;
      if (pct >= this.lastPct + 10 && pct < 100) {
        this.lastPct = pct - (pct % 10);
        this.out.write(`pull: ${formatBytes(t.done)}/${formatBytes(t.total)} (${pct}%)\n`);
      }
      return;
    }
    if (r.ended) this.ended(r.ended);
    if (r.started) {
      const s = r.started;
      this.out.write(
        s.name === "cached"
          ? `cached: ${(p as { snapshotPath?: string }).snapshotPath}\n`
          : s.name === "restored"
            ? `restored: ${s.message}: ${(p as { snapshotPath?: string }).snapshotPath}\n`
            : `${s.name}: ${s.message}\n`,
      );
    }
  }

  private ended(p: PhaseState): void {
    if (INSTANT.has(p.name) || p.end === undefined) return;
    this.out.write(
      `${p.name}: ${p.failed ? "failed after" : "done in"} ${formatDuration(p.end - p.start)}\n`,
    );
  }

  finish(ok: boolean): void {
    if (this.finished) return;
    this.finished = true;
    const ended = this.state.close(ok);
    if (ended) this.ended(ended);
  }
}

/**
 * One JSON object per line: `{"event":"pull","layer",...,"bytesDone","bytesTotal","elapsedMs"}`,
 * `{"event":"rootfs"|"boot"|"snapshot","message","elapsedMs"}`, `{"event":"cached","snapshotPath"}`.
 * Byte counts of a layer are sent at most every 100 ms, and always at its end.
 */
export class JsonProgress implements ProgressView {
  private readonly start = Date.now();
  private readonly lastSent = new Map<string, number>();

  constructor(private readonly out: NodeJS.WritableStream) {}

  update(p: BuildProgress): void {
    const now = Date.now();
    if (p.phase === "pull") {
      const last = this.lastSent.get(p.layer);
      if (last !== undefined && now - last < 100 && p.bytesDone < p.bytesTotal) return;
      this.lastSent.set(p.layer, now);
    }
    const { phase, ...rest } = p;
    this.emit({ event: phase, ...rest });
  }

  /** Writes one event line. */
  emit(event: Record<string, unknown>): void {
    this.out.write(`${JSON.stringify({ ...event, elapsedMs: Date.now() - this.start })}\n`);
  }

  finish(): void {}
}

/** A view that shows nothing (`--quiet`). */
export const silentProgress: ProgressView = { update() {}, finish() {} };
