import type { Command } from "commander";
import { CoreError, doctor } from "../index.js";
import { bashCompletion, zshCompletion } from "./completion.js";
import { type CommonOpts, common, examples, styleOf } from "./shared.js";

/** The host commands: doctor, completion. */
export function addHostCommands(program: Command, setExit: (code: number) => void): void {
  const doc = program
    .command("doctor")
    .summary("check this host (QEMU, accelerator, guest, directories) and print fixes")
    .description(
      "Checks that this host can bake and run VMs and prints a fix for each problem; exit 1 when VMs cannot run.",
    )
    .option("--json", "print the report as JSON");
  common(doc).addHelpText("after", examples(["supermachine doctor", "supermachine doctor --json"]));
  doc.action(async (o: CommonOpts & { json?: boolean }) => {
    const report = await doctor(o.snapshotsDir ? { snapshotsDir: o.snapshotsDir } : {});
    if (o.json) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    } else {
      const s = styleOf(o, process.stdout);
      const mark = { ok: s.green("ok  "), warn: s.yellow("WARN"), fail: s.red("FAIL") } as const;
      for (const c of report.checks) {
        process.stdout.write(`${mark[c.status]}  ${c.title}: ${c.summary}\n`);
        if (c.fix && c.status !== "ok") process.stdout.write(`      fix: ${c.fix}\n`);
      }
      process.stdout.write(
        report.ok
          ? "supermachine can run VMs on this host\n"
          : "supermachine cannot run VMs on this host: see FAIL above\n",
      );
    }
    setExit(report.ok ? 0 : 1);
  });

  const completion = program
    .command("completion")
    .summary("print a shell completion script (bash or zsh)")
    .argument("<shell>", "bash or zsh")
    .addHelpText(
      "after",
      examples([
        'eval "$(supermachine completion bash)"     # in ~/.bashrc',
        'eval "$(supermachine completion zsh)"      # in ~/.zshrc, after compinit',
      ]),
    );
  completion.action((shell: string) => {
    if (shell === "bash") process.stdout.write(bashCompletion(program));
    else if (shell === "zsh") process.stdout.write(zshCompletion(program));
    else
      throw new CoreError("INVALID_OPTIONS", `no completion for ${JSON.stringify(shell)}: use bash or zsh`);
    setExit(0);
  });
}
