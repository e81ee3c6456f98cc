import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const cliDir = dirname(fileURLToPath(import.meta.url));
const srcDir = dirname(cliDir);

/** Module specifiers a file imports: `import ... from`, `export ... from`, bare `import "x"`, `import("x")`, `require("x")`. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const patterns = [
    /^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"/gms,
    /^\s*import\s+"([^"]+)"/gm,
    /\b(?:import|require)\(\s*"([^"]+)"\s*\)/g,
  ];
  return patterns.flatMap((re) => [...text.matchAll(re)].map((m) => m[1] as string));
}

describe("the CLI is a client of the public API", () => {
  const files = [
    join(srcDir, "cli.ts"),
    join(srcDir, "bin.ts"),
    ...readdirSync(cliDir)
      .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
      .map((f) => join(cliDir, f)),
  ];

  it("imports only node builtins, commander, its own files and the package's index", () => {
    expect(files.length).toBeGreaterThan(5);
    const offending: string[] = [];
    for (const file of files) {
      const inCli = dirname(file) === cliDir;
      for (const spec of importsOf(file)) {
        const ok =
          spec.startsWith("node:") ||
          spec === "commander" ||
          (inCli
            ? spec === "../index.js" || /^\.\/[a-z-]+\.js$/.test(spec)
            : spec === "./index.js" || spec === "./cli.js" || /^\.\/cli\/[a-z-]+\.js$/.test(spec));
        if (!ok) offending.push(`${file.slice(srcDir.length + 1)} imports ${spec}`);
      }
    }
    expect(offending).toEqual([]);
  });

  it("sees every import (the check above is not vacuous)", () => {
    const specs = importsOf(join(cliDir, "bake-commands.ts"));
    expect(specs).toContain("commander");
    expect(specs).toContain("../index.js");
    expect(specs).toContain("./run.js");
    expect(importsOf(join(srcDir, "cli.ts"))).toContain("./cli/bake-commands.js");
  });
});
