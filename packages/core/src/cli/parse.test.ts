import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import {
  asUser,
  parseDuration,
  parseEnvEntries,
  parseEnvFile,
  parseMemoryMib,
  parsePort,
  parseVolume,
  shellQuote,
} from "./parse.js";

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return "no error";
};

describe("CLI option parsing", () => {
  it("reads -e entries like docker: KEY=VALUE, and KEY alone from the host", () => {
    expect(parseEnvEntries(["A=1", "B==2", "C=", "HOSTONLY", "MISSING"], { HOSTONLY: "h" })).toEqual({
      A: "1",
      B: "=2",
      C: "",
      HOSTONLY: "h",
    });
    expect(code(() => parseEnvEntries(["=x"]))).toBe("INVALID_OPTIONS");
    expect(code(() => parseEnvEntries(["A B=1"]))).toBe("INVALID_OPTIONS");
  });

  it("reads env files: comments and blank lines skipped, values kept verbatim", () => {
    expect(parseEnvFile("# c\n\nA=1\r\n  B=two words\nC\n")).toEqual(["A=1", "B=two words", "C"]);
  });

  it("parses -p as HOST:GUEST, GUEST or 127.0.0.1:HOST:GUEST", () => {
    expect(parsePort("8080:80")).toEqual({ hostPort: 8080, guestPort: 80 });
    expect(parsePort("80")).toEqual({ hostPort: 0, guestPort: 80 });
    expect(parsePort("127.0.0.1:0:80/tcp")).toEqual({ hostPort: 0, guestPort: 80 });
    for (const bad of ["0.0.0.0:80:80", "80:0", "x:80", "70000:80", "1:2:3:4"]) {
      expect(
        code(() => parsePort(bad)),
        bad,
      ).toBe("INVALID_OPTIONS");
    }
  });

  it("parses -v HOST:GUEST with an absolute guest path", () => {
    expect(parseVolume("./a:b:/srv/x")).toEqual({ hostPath: "./a:b", guestPath: "/srv/x" });
    expect(code(() => parseVolume("./a:rel"))).toBe("INVALID_OPTIONS");
    expect(code(() => parseVolume(":/x"))).toBe("INVALID_OPTIONS");
  });

  it("parses durations and memory sizes", () => {
    expect(parseDuration("30")).toBe(30_000);
    expect(parseDuration("500ms")).toBe(500);
    expect(parseDuration("1.5m")).toBe(90_000);
    expect(parseDuration("7d")).toBe(7 * 86_400_000);
    expect(code(() => parseDuration("soon"))).toBe("INVALID_OPTIONS");
    expect(parseMemoryMib("512")).toBe(512);
    expect(parseMemoryMib("512m")).toBe(512);
    expect(parseMemoryMib("1G")).toBe(1024);
    expect(code(() => parseMemoryMib("1.5g"))).toBe("INVALID_OPTIONS");
  });

  it("wraps a command for another user so a shell runs it word for word", () => {
    const argv = ["printf", "%s|", "it's", "$HOME", "a b", ""];
    const wrapped = asUser("www", argv);
    expect(wrapped.slice(0, 5)).toEqual(["su", "-s", "/bin/sh", "www", "-c"]);
    // the -c string, run by a real shell, gives back the same argv
    const out = execFileSync("sh", ["-c", (wrapped[5] as string).replace(/^exec /, "")], {
      encoding: "utf8",
    });
    expect(out).toBe("it's|$HOME|a b||");
    expect(shellQuote("plain-word_1.txt")).toBe("plain-word_1.txt");
    expect(code(() => asUser("bad user", ["id"]))).toBe("INVALID_OPTIONS");
  });
});
