import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { FrameDecoder } from "./decoder.js";
import { describeBytes, describeFrame, quoteCanonical } from "./describe.js";
import { encodeFrame } from "./encoder.js";
import { ProtocolError } from "./errors.js";

function readVectors(rel: string): Array<{ name: string; hex: string; canonical: string }> {
  const text = readFileSync(fileURLToPath(new URL(rel, import.meta.url)), "utf8");
  return text
    .split("\n")
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const [name, hex, canonical] = l.split("\t");
      return { name: name as string, hex: hex as string, canonical: canonical as string };
    });
}

const vectors = readVectors("../vectors/frames.txt");

describe("shared test vectors", () => {
  it("cover every message type and every rejection reason", () => {
    const names = new Set(vectors.map((v) => v.canonical.split(" ")[0]));
    for (const t of [
      "HELLO",
      "HELLO_OK",
      "PING",
      "PONG",
      "EVENT",
      "EXEC",
      "STARTED",
      "STDIN",
      "STDOUT",
      "STDERR",
      "RESIZE",
      "SIGNAL",
      "EXIT",
      "WRITE_FILE",
      "FILE_DATA",
      "READ_FILE",
      "FILE_INFO",
      "TCP_CONNECT",
      "CONNECTED",
      "TCP_DATA",
      "WINDOW",
      "RESET",
      "OK",
      "ERROR",
      "WORKLOAD_CONFIG",
      "WORKLOAD_START",
      "WORKLOAD_SIGNAL",
      "WORKLOAD_LOGS",
      "!BAD_FRAME",
      "!FRAME_TOO_LARGE",
      "!UNKNOWN_TYPE",
      "!BAD_PAYLOAD",
    ]) {
      expect(names.has(t), t).toBe(true);
    }
  });

  for (const v of vectors) {
    it(v.name, () => {
      const raw = Buffer.from(v.hex, "hex");
      expect(describeBytes(raw)).toBe(v.canonical);
      if (!v.canonical.startsWith("!")) {
        const [frame] = new FrameDecoder().decode(raw);
        if (!frame) throw new Error("no frame");
        // Re-encoding gives the same bytes, except where trailing bytes were ignored.
        if (v.name !== "trailing_bytes_ignored") expect(encodeFrame(frame).toString("hex")).toBe(v.hex);
      }
    });
  }

  it("agrees with the C agent's extra vectors", () => {
    // The guest package lives in this repository: a missing file is a failure, not a skip.
    const extra = readVectors("../../vmm-native/guest/agent/tests/extra-vectors.txt");
    expect(extra.length).toBeGreaterThan(10);
    for (const v of extra) expect(describeBytes(Buffer.from(v.hex, "hex")), v.name).toBe(v.canonical);
  });
});

describe("encoder (hand-checked bytes)", () => {
  it("encodes PING as header + u64 LE", () => {
    const b = encodeFrame({ type: "PING", stream: 0, flags: 0, token: 0x0102030405060708n });
    expect(b.toString("hex")).toBe("534d0300" + "00000000" + "08000000" + "0807060504030201");
  });

  it("encodes EXEC with str / strlist length prefixes", () => {
    const b = encodeFrame({
      type: "EXEC",
      stream: 5,
      flags: 0,
      execFlags: 1,
      timeoutMs: 1000,
      cols: 80,
      rows: 24,
      argv: ["ls", "é"],
      env: [],
      cwd: "/",
      chain: [],
    });
    const expected = [
      "534d1000",
      "05000000",
      "29000000", // magic, type, flags; stream 5; len 41
      "01000000",
      "e8030000",
      "5000",
      "1800", // flags, timeout, cols, rows
      "02000000",
      "02000000",
      "6c73",
      "02000000",
      "c3a9", // argv = ["ls","é"]
      "00000000", // env = []
      "01000000",
      "2f", // cwd "/"
      "00000000", // chain = []
    ].join("");
    expect(b.toString("hex")).toBe(expected);
  });

  it("encodes EXIT with a negative i32 and sets END", () => {
    const b = encodeFrame({
      type: "EXIT",
      stream: 1,
      flags: 1,
      exitCode: -1,
      termSignal: 9,
      timedOut: 1,
      peakRssKib: 0n,
    });
    expect(b.toString("hex")).toBe(
      "534d1701" + "01000000" + "11000000" + "ffffffff" + "09000000" + "01" + "0000000000000000",
    );
  });

  it("rejects out-of-range fields and oversized payloads", () => {
    expect(() => encodeFrame({ type: "SIGNAL", stream: 1, flags: 0, signum: -1 })).toThrow(ProtocolError);
    expect(() => encodeFrame({ type: "RESIZE", stream: 1, flags: 0, cols: 70000, rows: 1 })).toThrow(/cols/);
    expect(() => encodeFrame({ type: "STDIN", stream: 1, flags: 0, data: Buffer.alloc(5000) }, 4096)).toThrow(
      expect.objectContaining({ reason: "FRAME_TOO_LARGE" }),
    );
  });
});

describe("canonical form", () => {
  it("quotes like the spec", () => {
    expect(quoteCanonical('a"b\\c\n\u007f\u0001é☃')).toBe('"a\\"b\\\\c\\u000a\\u007f\\u0001é☃"');
    expect(quoteCanonical("")).toBe('""');
  });

  it("renders empty bytes as nothing after '='", () => {
    expect(describeFrame({ type: "STDOUT", stream: 3, flags: 1, data: Buffer.alloc(0) })).toBe(
      "STDOUT stream=3 flags=1 data=",
    );
  });
});
