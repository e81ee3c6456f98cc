import { randomBytes } from "node:crypto";
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ByteRing, ConsoleSink, textTail } from "./console-tail.js";
import { makeFifo } from "./fifo-stock.js";

describe("ByteRing", () => {
  it("keeps exactly the newest capacity bytes whatever the chunking", () => {
    const all = randomBytes(10_000);
    for (const chunk of [1, 7, 99, 100, 101, 4096, 10_000]) {
      const r = new ByteRing(100);
      for (let i = 0; i < all.length; i += chunk) r.write(all.subarray(i, i + chunk));
      expect(r.length).toBe(100);
      expect(r.totalBytes).toBe(10_000);
      expect(r.contents().equals(all.subarray(all.length - 100))).toBe(true);
      expect(r.contents(10).equals(all.subarray(all.length - 10))).toBe(true);
    }
  });

  it("holds less than capacity until full", () => {
    const r = new ByteRing(8);
    r.write(Buffer.from("abc"));
    expect(r.contents().toString()).toBe("abc");
    r.write(Buffer.from("defgh"));
    expect(r.contents().toString()).toBe("abcdefgh");
    r.write(Buffer.from("ij"));
    expect(r.contents().toString()).toBe("cdefghij");
    expect(r.contents(0).length).toBe(0);
    expect(r.contents(100).toString()).toBe("cdefghij");
  });
});

describe("textTail", () => {
  it("returns the last lines", () => {
    const text = Array.from({ length: 100 }, (_, i) => `line ${i}`).join("\n");
    expect(textTail(Buffer.from(text), 3)).toBe("line 96\nline 97\nline 98\nline 99");
  });
});

describe("ConsoleSink", () => {
  it("keeps a bounded tail of what is written to its pipe, readable after close", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sm-con-"));
    try {
      mkdirSync(join(dir, "run"));
      const sink = await ConsoleSink.open(join(dir, "run", "c.pipe"), 1024);
      expect(statSync(join(dir, "run", "c.pipe")).isFIFO()).toBe(true);
      expect(statSync(join(dir, "run", "c.pipe")).mode & 0o777).toBe(0o600);
      const fd = openSync(join(dir, "run", "c.pipe"), "w");
      // one byte per write, as QEMU's UART does
      let text = "";
      for (let i = 0; i < 300; i++) text += `console line ${i}\n`;
      for (const ch of text) writeSync(fd, ch);
      closeSync(fd);
      await new Promise((r) => setTimeout(r, 100));
      expect(sink.totalBytes).toBe(text.length);
      sink.close();
      expect(sink.bytes().length).toBe(1024);
      expect(sink.bytes().toString()).toBe(text.slice(-1024));
      expect(sink.tail(2)).toBe("console line 298\nconsole line 299\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("close() collects bytes still in the pipe", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sm-con-"));
    try {
      mkdirSync(join(dir, "run"));
      const sink = await ConsoleSink.open(join(dir, "run", "c.pipe"));
      const fd = openSync(join(dir, "run", "c.pipe"), "w");
      writeSync(fd, "Kernel panic - not syncing: test\n");
      closeSync(fd);
      sink.close(); // no event-loop turn in between
      expect(sink.tail()).toBe("Kernel panic - not syncing: test\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("FIFO stock", () => {
  it("takes FIFOs made ahead and removes the stocks of processes that are gone", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sm-con-"));
    try {
      // a stock left by a process that no longer exists (pid 2^22 + 1 is above pid_max's default)
      mkdirSync(join(dir, "fifos-4194305-abc"));
      writeFileSync(join(dir, "fifos-4194305-abc", "f0"), "");
      mkdirSync(join(dir, "vm-1"));
      await makeFifo(join(dir, "vm-1", "console.pipe"));
      expect(statSync(join(dir, "vm-1", "console.pipe")).isFIFO()).toBe(true);
      const stocks = readdirSync(dir).filter((n) => n.startsWith("fifos-"));
      expect(stocks).toHaveLength(1);
      expect(stocks[0]).toMatch(new RegExp(`^fifos-${process.pid}-`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
