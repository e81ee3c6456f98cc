import { createRequire } from "node:module";
import { Command, CommanderError } from "commander";
import { addBakeCommands } from "./cli/bake-commands.js";
import { addHostCommands } from "./cli/host-commands.js";
import { formatError } from "./cli/report-error.js";
import { type CommonOpts, DEFAULT_IMAGE_HINT, examples } from "./cli/shared.js";
import { addStoreCommands } from "./cli/store-commands.js";
import { styleFor } from "./cli/style.js";

// The CLI is a client of the public API: the files under cli/ import only ../index.js.

function version(): string {
  try {
    return (createRequire(import.meta.url)("../package.json") as { version: string }).version;
  } catch {
    return "unknown";
  }
}

/** Builds the `supermachine` program. `setExit` receives each action's exit status. */
export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command("supermachine")
    .description("Run OCI images as microVMs restored from snapshots.")
    .version(version(), "-V, --version", "print the version")
    .enablePositionalOptions()
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ outputError: () => {} })
    .addHelpText(
      "after",
      `${examples([
        `supermachine run -it ${DEFAULT_IMAGE_HINT}`,
        "supermachine build docker.io/library/python:3.12-slim",
        "supermachine run python:3.12-slim -- python3 -c 'print(6*7)'",
        "supermachine ls",
        "supermachine doctor",
      ])}\nRun \`supermachine COMMAND --help\` for a command's options and examples.\n`,
    );

  addBakeCommands(program, setExit);
  addStoreCommands(program, setExit);
  addHostCommands(program, setExit);
  return program;
}

/** Runs the `supermachine` command line; resolves with the process exit code. */
export async function main(argv: string[]): Promise<number> {
  let code = 0;
  const program = buildProgram((c) => {
    code = c;
  });
  let active: Command = program;
  let debug = process.env.SUPERMACHINE_DEBUG === "1";
  program.hook("preAction", (_root, action) => {
    active = action;
    debug ||= (action.opts() as CommonOpts).debug === true;
  });
  try {
    await program.parseAsync(argv, { from: "user" });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help, --version, and help shown because no command was given
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version") return 0;
      if (err.code === "commander.help") return err.exitCode === 0 ? 0 : 2;
      const style = styleFor(process.stderr);
      const which = argv.find((a) => program.commands.some((c) => c.name() === a));
      process.stderr.write(
        `${style.red("supermachine:")} ${style.bold("[USAGE]")} ${err.message.replace(/^error: /, "")}\n` +
          `  ${style.yellow("fix:")} see \`supermachine ${which ? `${which} ` : ""}--help\` for the options and examples\n`,
      );
      return 2;
    }
    const o = active.opts() as CommonOpts;
    const name = active === program ? undefined : active.name();
    process.stderr.write(formatError(err, styleFor(process.stderr, o.color === false), debug, name));
    return 1;
  }
}
