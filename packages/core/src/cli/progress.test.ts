import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import type { BuildProgress } from "../index.js";
import { JsonProgress, PlainProgress, TtyProgress } from "./progress.js";
import { styleFor } from "./style.js";

/** A terminal-like sink: collects what is written; `columns` like a tty's. */
function sink(columns = 80) {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  }) as Writable & { columns: number; isTTY: boolean };
  stream.columns = columns;
  stream.isTTY = false;
  return { stream, text: () => chunks.join("") };
}

/** The screen a terminal shows after the writes: applies CR, erase-line and cursor-up. */
function screen(out: string): string[] {
  const lines: string[] = [""];
  let row = 0;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: terminal escapes
  for (const tok of out.match(/\x1b\[\d*[A-Za-z]|\r|\n|[^\x1b\r\n]+/g) ?? []) {
    if (tok === "\n") {
      row++;
      lines[row] ??= "";
    } else if (tok === "\r") {
      /* column 0: lines are rewritten whole after an erase */
    } else if (tok.endsWith("A")) row -= Number(tok.slice(2, -1));
    else if (tok.endsWith("K")) lines[row] = "";
    else if (!tok.startsWith("\x1b")) lines[row] = (lines[row] ?? "") + tok;
  }
  return lines.filter((l, i) => i < row || l !== "");
}

const pull = (layer: string, bytesDone: number, bytesTotal: number): BuildProgress => ({
  phase: "pull",
  layer,
  bytesDone,
  bytesTotal,
});

describe("build progress", () => {
  it("draws one line per layer and per phase on a terminal, redrawn in place", () => {
    const s = sink(100);
    const view = new TtyProgress(
      s.stream as unknown as NodeJS.WriteStream,
      styleFor(process.stdout, true),
      "build x",
    );
    view.update(pull("sha256:aaaaaaaaaaaa1111", 2_000_000, 2_000_000));
    view.update(pull("sha256:bbbbbbbbbbbb2222", 0, 50_000_000));
    view.update(pull("sha256:bbbbbbbbbbbb2222", 20_000_000, 50_000_000));
    view.finish(true); // draws the current state once more
    let shown = screen(s.text());
    expect(shown[0]).toBe("build x");
    expect(shown[1]).toBe("aaaaaaaaaaaa: already in the cache");
    expect(shown[2]).toMatch(
      /^bbbbbbbbbbbb: downloading \[=========> {14}\] 20\.0 MB\/50\.0 MB {2}[\d.]+ [kMG]?B\/s$/,
    );
    expect(shown).toHaveLength(3);

    const s2 = sink(100);
    const v2 = new TtyProgress(
      s2.stream as unknown as NodeJS.WriteStream,
      styleFor(process.stdout, true),
      "build y",
    );
    v2.update(pull("sha256:cccccccccccc", 0, 1000));
    v2.update(pull("sha256:cccccccccccc", 1000, 1000));
    v2.update({ phase: "rootfs", message: "building root file system" });
    v2.update({ phase: "rootfs", message: "merging layers" });
    v2.update({ phase: "boot", message: "booting guest" });
    shown = screen(s2.text());
    expect(shown[1]).toMatch(/^cccccccccccc: pull complete {2}1\.0 kB {2}\d+ms$/);
    expect(shown[2]).toMatch(/^root fs {3}done {2}\d+ms$/);
    expect(shown[3]).toMatch(/^boot {6}booting guest\.\.\. \d+ms$/);
    v2.update({ phase: "snapshot", message: "capturing snapshot" });
    v2.finish(false);
    shown = screen(s2.text());
    expect(shown[3]).toMatch(/^boot {6}done {2}\d+ms$/);
    expect(shown[4]).toMatch(/^snapshot {2}failed after \d+ms$/);
    expect(shown).toHaveLength(5);
  });

  it("never writes a line wider than the terminal", () => {
    const s = sink(40);
    const view = new TtyProgress(
      s.stream as unknown as NodeJS.WriteStream,
      styleFor(process.stdout, true),
      "t",
    );
    view.update(pull("sha256:dddddddddddd", 5, 100_000_000));
    view.finish(true);
    for (const line of screen(s.text())) expect(line.length).toBeLessThan(40);
  });

  it("prints plain lines for logs: layer completions, totals, phases with durations", () => {
    const s = sink();
    const view = new PlainProgress(s.stream);
    view.update(pull("sha256:eeeeeeeeeeee", 0, 100));
    for (let i = 1; i <= 100; i++) view.update(pull("sha256:eeeeeeeeeeee", i, 100));
    view.update({ phase: "rootfs", message: "building root file system" });
    view.update({ phase: "boot", message: "booting guest" });
    view.finish(true);
    const lines = s.text().trimEnd().split("\n");
    expect(lines.filter((l) => /^pull: [\d.]+ B\/100 B \(\d+%\)$/.test(l)).length).toBe(9);
    expect(lines).toContain("rootfs: building root file system");
    expect(lines.some((l) => /^pull: eeeeeeeeeeee complete, 100 B in \d+ms$/.test(l))).toBe(true);
    expect(lines.some((l) => /^rootfs: done in \d+ms$/.test(l))).toBe(true);
    expect(lines.at(-1)).toMatch(/^boot: done in \d+ms$/);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: no escapes in plain output
    expect(s.text()).not.toMatch(/\x1b|\r/);
  });

  it("emits one JSON object per line, byte counts throttled but each layer's end kept", () => {
    const s = sink();
    const view = new JsonProgress(s.stream);
    for (let i = 0; i <= 1000; i++) view.update(pull("sha256:ffff", i, 1000));
    view.update({ phase: "boot", message: "booting guest" });
    view.emit({ event: "done", snapshotPath: "/x" });
    const events = s
      .text()
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const pulls = events.filter((e) => e.event === "pull");
    expect(pulls.length).toBeLessThan(1001);
    expect(pulls.at(-1)).toMatchObject({ layer: "sha256:ffff", bytesDone: 1000, bytesTotal: 1000 });
    expect(events.at(-2)).toMatchObject({ event: "boot", message: "booting guest" });
    expect(events.at(-1)).toMatchObject({ event: "done", snapshotPath: "/x" });
    for (const e of events) expect(typeof e.elapsedMs).toBe("number");
  });

  it("shows a build restored from the registry: lookup, root fs, download, restored (no boot)", () => {
    const s = sink();
    const view = new PlainProgress(s.stream);
    const ref = "127.0.0.1:5000/debian:supermachine-snapshot-ab";
    view.update({
      phase: "registry",
      action: "lookup",
      ref,
      message: `looking for a published snapshot ${ref}`,
    });
    view.update({ phase: "rootfs", message: "building root file system" });
    view.update({ phase: "download", bytesDone: 1024, bytesTotal: 4096 });
    view.update({ phase: "download", bytesDone: 4096, bytesTotal: 4096 });
    view.update({ phase: "restored", snapshotPath: "/snaps/x", ref, bytes: 4096 });
    view.finish(true);
    const lines = s.text().trimEnd().split("\n");
    expect(lines[0]).toBe(`registry: looking for a published snapshot ${ref}`);
    expect(lines).toContain("download: 1.0 kB/4.1 kB");
    expect(lines.at(-1)).toBe(`restored: pulled ${ref} (4.1 kB): no boot: /snaps/x`);
    expect(lines.some((l) => l.startsWith("boot"))).toBe(false);
  });
});
