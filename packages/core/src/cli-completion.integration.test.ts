// Shell completion scripts, exercised by real shells: bash through its
// completion function, zsh interactively in a terminal (tmux). No VMs.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { TmuxTerminal } from "./test-support/tmux.js";

const bin = fileURLToPath(new URL("../dist/bin.js", import.meta.url));
const root = mkdtempSync(join(tmpdir(), "sm-cli-completion-"));
// `supermachine` on PATH, as after `npm install -g`: the real CLI
const pathDir = join(root, "bin");
mkdirSync(pathDir);
symlinkSync(bin, join(pathDir, "supermachine"));
const env = { ...process.env, PATH: `${pathDir}:${process.env.PATH}` };
// two snapshot-like directories for name completion (ls lists invalid ones too)
const snaps = join(root, "snaps");
mkdirSync(join(snaps, "alpha-snap"), { recursive: true });
mkdirSync(join(snaps, "beta-snap"), { recursive: true });

let term: TmuxTerminal | undefined;
afterEach(() => {
  term?.close();
  term = undefined;
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Runs bash's completion for a command line (words, cursor on the last) and returns COMPREPLY. */
function bashComplete(words: string[]): string[] {
  const script = execFileSync(process.execPath, [bin, "completion", "bash"], { encoding: "utf8" });
  const file = join(root, "complete.bash");
  writeFileSync(file, script);
  const q = words.map((w) => `'${w}'`).join(" ");
  const out = execFileSync(
    "bash",
    [
      "-c",
      `source ${file}; COMP_WORDS=(${q}); COMP_CWORD=${words.length - 1}; _supermachine; printf '%s\\n' "\${COMPREPLY[@]}"`,
    ],
    { encoding: "utf8", env },
  );
  return out.split("\n").filter(Boolean).sort();
}

describe("supermachine completion", () => {
  it("bash completes commands, options, choices and snapshot names", () => {
    expect(bashComplete(["supermachine", "b"])).toEqual(["build"]);
    expect(bashComplete(["supermachine", ""])).toEqual(
      [
        "--help",
        "--version",
        "build",
        "completion",
        "doctor",
        "inspect",
        "logs",
        "ls",
        "prune",
        "pull",
        "push",
        "run",
      ].sort(),
    );
    expect(bashComplete(["supermachine", "run", "--t"])).toEqual(["--timeout", "--tty"]);
    expect(bashComplete(["supermachine", "build", "--pull", ""])).toEqual(["always", "missing", "never"]);
    expect(bashComplete(["supermachine", "completion", ""])).toEqual(["bash", "zsh"]);
    expect(bashComplete(["supermachine", "inspect", "--snapshots-dir", snaps, "a"])).toEqual(["alpha-snap"]);
  });

  it("zsh completes commands and options at a real prompt", async () => {
    const rc = join(root, "zdotdir");
    mkdirSync(rc, { recursive: true });
    writeFileSync(
      join(rc, ".zshrc"),
      `PS1='zsh> '\nautoload -U compinit && compinit -u\neval "$(supermachine completion zsh)"\n`,
    );
    term = new TmuxTerminal("zsh -i", { cols: 200, env: { ZDOTDIR: rc, PATH: env.PATH as string } });
    await term.waitFor(/^zsh>/m, 30_000);
    term.type("supermachine insp");
    term.send("Tab");
    // capture-pane drops trailing spaces; the typed text was `insp`
    await term.waitFor(/zsh> supermachine inspect ?$/m);
    term.type(`--snapshots-dir ${snaps} be`);
    term.send("Tab");
    await term.waitFor(/snaps beta-snap ?$/m);
    term.send("C-u");
    term.type("supermachine run --ti");
    term.send("Tab");
    await term.waitFor(/zsh> supermachine run --timeout ?$/m);
  });
});
