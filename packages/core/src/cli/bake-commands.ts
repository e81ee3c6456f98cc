// The commands that bake and run: build, run, logs, pull.
import { readFile } from "node:fs/promises";
import { type Command, CommanderError, Option } from "commander";
import { Image, inspectSnapshot, isSupermachineError, pullRootfs } from "../index.js";
import { logsOfImage } from "./logs.js";
import {
  collect,
  parseCount,
  parseDuration,
  parseEnvEntries,
  parseEnvFile,
  parsePort,
  parseVolume,
} from "./parse.js";
import { JsonProgress, silentProgress } from "./progress.js";
import { errorJson } from "./report-error.js";
import { checkCopies, runInVm } from "./run.js";
import {
  type BakeOpts,
  bakeOptions,
  buildOptions,
  type CommonOpts,
  common,
  DEFAULT_IMAGE_HINT,
  examples,
  lazyView,
  poolNetwork,
  stderrView,
  styleOf,
  withView,
} from "./shared.js";
import { formatBytes, formatDuration } from "./style.js";

/** The commands that bake and run: build, run, logs, pull. */
export function addBakeCommands(program: Command, setExit: (code: number) => void): void {
  const build = program
    .command("build")
    .summary("bake an image into a snapshot (or find the cached one) and print its path")
    .description(
      "Pulls IMAGE, builds its root fs, boots it once and snapshots it; or finds the snapshot when nothing changed (no pull, no boot). Prints the snapshot directory on stdout.",
    )
    .argument(
      "<image>",
      "image reference: NAME[:TAG], HOST:PORT/NAME:TAG, oci:/DIR[:TAG], docker-archive:/FILE.tar",
    )
    .option("--json", "print one JSON event per line on stdout (pull bytes, phases, then done or error)")
    .option("-q, --quiet", "no progress; print the snapshot path only");
  bakeOptions(build);
  common(build).addHelpText(
    "after",
    examples([
      `supermachine build ${DEFAULT_IMAGE_HINT}`,
      "supermachine build 127.0.0.1:5000/debian:12 --memory 512",
      "supermachine build alpine --json | jq -c 'select(.event != \"pull\")'",
    ]),
  );
  build.action(async (ref: string, o: BakeOpts & { json?: boolean; quiet?: boolean }) => {
    const style = styleOf(o);
    if (o.json) {
      const view = new JsonProgress(process.stdout);
      try {
        let cached = false;
        const image = await Image.build(
          buildOptions(ref, o, (p) => {
            if (p.phase === "cached") cached = true;
            view.update(p);
          }),
        );
        view.emit({ event: "done", snapshotPath: image.snapshotPath, cached });
      } catch (err) {
        view.emit({ event: "error", ...errorJson(err) });
        throw err;
      }
      return setExit(0);
    }
    const view = o.quiet ? silentProgress : stderrView(style, `build ${ref}`);
    const started = Date.now();
    const image = await withView(view, () => Image.build(buildOptions(ref, o, (p) => view.update(p))));
    if (!o.quiet && !process.stderr.isTTY) {
      process.stderr.write(`done in ${formatDuration(Date.now() - started)}\n`);
    }
    process.stdout.write(`${image.snapshotPath}\n`);
    setExit(0);
  });

  const run = program
    .command("run")
    .summary("run a command in a fresh VM of an image (baked first if needed)")
    .description(
      "Bakes IMAGE if needed, restores a VM from it, runs COMMAND (default: the image's ENTRYPOINT + CMD) and passes its exit status on. Options go before IMAGE (or between IMAGE and `--`); the command follows IMAGE (or `--`). -it gives an interactive terminal: raw keys, window resizes and Ctrl-C go to the guest. Piped stdin is forwarded without -i (`echo x | supermachine run IMAGE -- cat`).",
    )
    .argument("<image>", "image reference (as for build)")
    .argument("[command...]", "command and arguments to run in the guest")
    .option("-i, --interactive", "forward stdin (always done when stdin is a pipe or file)")
    .option("-t, --tty", "run under a pseudo-terminal in the guest")
    .option(
      "-e, --env <KEY=VALUE>",
      "set an environment variable; KEY alone copies the host's (repeatable)",
      collect,
      [],
    )
    .option("--env-file <file>", "read KEY=VALUE lines from a file (repeatable)", collect)
    .option("-w, --workdir <dir>", "working directory in the guest")
    .option("-u, --user <name>", "run as this user of the image (through su in the guest)")
    .option(
      "-p, --publish <[HOST:]GUEST>",
      "forward 127.0.0.1:HOST to the guest port while it runs (repeatable)",
      collect,
      [],
    )
    .option(
      "-v, --volume <HOST:GUEST>",
      "copy a host file or directory to a guest path before it runs (repeatable)",
      collect,
      [],
    )
    .option("--timeout <duration>", "kill the command after this long (30s, 5m; exit status 124)")
    .option(
      "--logs",
      "after the command, print the workload's output on stderr (without a command: on stdout)",
    )
    .option(
      "--wait-ms <ms>",
      "with --logs and no command: let the workload run this long first (default 2000)",
    )
    .option("-q, --quiet", "no bake progress or port messages")
    .passThroughOptions();
  bakeOptions(run);
  common(run).addHelpText(
    "after",
    examples([
      `supermachine run -it ${DEFAULT_IMAGE_HINT}`,
      `supermachine run ${DEFAULT_IMAGE_HINT} -- sh -c 'echo $((6*7))'`,
      `echo hello | supermachine run ${DEFAULT_IMAGE_HINT} -- cat`,
      "supermachine run -e NAME=world -w /tmp IMAGE -- sh -c 'echo hello $NAME from $PWD'",
      "supermachine run -p 8080:80 -v ./site:/srv IMAGE -- httpd -f -p 80 -h /srv",
      "supermachine run --timeout 30s --memory 512 IMAGE -- make test",
    ]),
  );
  run.action(
    async (
      ref: string,
      command: string[],
      opts: BakeOpts & {
        interactive?: boolean;
        tty?: boolean;
        env?: string[];
        envFile?: string[];
        workdir?: string;
        user?: string;
        publish?: string[];
        volume?: string[];
        timeout?: string;
        logs?: boolean;
        waitMs?: string;
        quiet?: boolean;
      },
    ) => {
      let o = opts;
      // options may also follow IMAGE (up to the first word of the command, or `--`)
      const rest = run.parseOptions(command);
      if (rest.unknown.length) {
        throw new CommanderError(2, "commander.unknownOption", `error: unknown option '${rest.unknown[0]}'`);
      }
      o = run.opts() as typeof opts;
      const argv = rest.operands;
      const style = styleOf(o);
      // options are parsed before anything boots, so mistakes fail fast
      const envEntries: string[] = [];
      for (const f of o.envFile ?? []) envEntries.push(...parseEnvFile(await readFile(f, "utf8")));
      envEntries.push(...(o.env ?? []));
      const env = parseEnvEntries(envEntries);
      const ports = (o.publish ?? []).map(parsePort);
      const copies = (o.volume ?? []).map(parseVolume);
      await checkCopies(copies);
      const timeoutMs = o.timeout === undefined ? undefined : parseDuration(o.timeout);
      const view = o.quiet ? silentProgress : lazyView(() => stderrView(style, `build ${ref}`));
      const image = await withView(view, () => Image.build(buildOptions(ref, o, (p) => view.update(p))));
      if (o.logs && argv.length === 0) {
        const waitMs = o.waitMs === undefined ? 2000 : parseCount(o.waitMs, "--wait-ms");
        return setExit(await logsOfImage(image, { waitMs, follow: false, ...poolNetwork(o) }));
      }
      setExit(
        await runInVm(image, {
          command: argv,
          env,
          ...(o.workdir ? { cwd: o.workdir } : {}),
          ...(o.user ? { user: o.user } : {}),
          interactive: o.interactive === true,
          tty: o.tty === true,
          ports,
          copies,
          ...(timeoutMs ? { timeoutMs } : {}),
          logs: o.logs === true,
          ...poolNetwork(o),
          quiet: o.quiet === true,
          style,
        }),
      );
    },
  );

  const logs = program
    .command("logs")
    .summary("print the workload output of a fresh VM of an image or snapshot, like docker logs")
    .description(
      "Restores a VM from SNAPSHOT (a name from ls or a snapshot directory) or from IMAGE (baked first if needed), lets its workload (the image's ENTRYPOINT + CMD, or --cmd) run, and prints what it wrote to stdout and stderr: once after --wait, or with -f everything as it comes until Ctrl-C. The guest keeps the newest 64 KiB.",
    )
    .argument("<image-or-snapshot>", "snapshot name or directory, or an image reference (as for build)")
    .option("-f, --follow", "keep printing new output until interrupted")
    .option("--wait <duration>", "let the workload run this long before printing (default 2s; 0 with -f)")
    .option("-q, --quiet", "no bake progress");
  bakeOptions(logs);
  common(logs).addHelpText(
    "after",
    examples([
      `supermachine logs --cmd 'while :; do date; sleep 1; done' -f ${DEFAULT_IMAGE_HINT}`,
      "supermachine logs --wait 10s 127.0.0.1:5000/web:1",
      "supermachine logs oci-default_latest-0123456789abcdef",
    ]),
  );
  logs.action(async (what: string, o: BakeOpts & { follow?: boolean; wait?: string; quiet?: boolean }) => {
    const style = styleOf(o);
    const dirOpts = o.snapshotsDir ? { snapshotsDir: o.snapshotsDir } : {};
    let image: Image | undefined;
    try {
      image = await Image.fromSnapshot((await inspectSnapshot(what, dirOpts)).path);
    } catch (err) {
      if (!isSupermachineError(err) || err.code !== "SNAPSHOT_NOT_FOUND") throw err;
    }
    if (!image) {
      const view = o.quiet ? silentProgress : lazyView(() => stderrView(style, `build ${what}`));
      image = await withView(view, () => Image.build(buildOptions(what, o, (p) => view.update(p))));
    }
    const waitMs = o.wait === undefined ? (o.follow ? 0 : 2000) : parseDuration(o.wait);
    setExit(await logsOfImage(image, { waitMs, follow: o.follow === true, ...poolNetwork(o) }));
  });

  const pull = program
    .command("pull")
    .summary("pull an image and build its root fs (no boot, no snapshot)")
    .description(
      "Pulls IMAGE into the blob cache (checking the registry for a newer tag) and builds its root file system, the first half of build. Prints the root fs image path on stdout.",
    )
    .argument("<image>", "image reference (as for build)")
    .addOption(
      new Option("--pull <policy>", "when to contact the registry")
        .choices(["always", "missing", "never"])
        .default("always"),
    )
    .option("--insecure-registry <host>", "registry reachable over plain HTTP (repeatable)", collect)
    .option("--json", "print one JSON event per line on stdout")
    .option("-q, --quiet", "no progress; print the root fs path only");
  common(pull, false).addHelpText(
    "after",
    examples(["supermachine pull 127.0.0.1:5000/debian:12", "supermachine pull alpine --json"]),
  );
  pull.action(
    async (
      ref: string,
      o: CommonOpts & {
        pull: "always" | "missing" | "never";
        insecureRegistry?: string[];
        json?: boolean;
        quiet?: boolean;
      },
    ) => {
      const style = styleOf(o);
      const json = o.json ? new JsonProgress(process.stdout) : undefined;
      const view = json ?? (o.quiet ? silentProgress : stderrView(style, `pull ${ref}`));
      try {
        const r = await withView(view, () =>
          pullRootfs(ref, {
            pullPolicy: o.pull,
            ...(o.insecureRegistry?.length ? { insecureRegistries: o.insecureRegistry } : {}),
            onProgress: (p) => view.update(p),
          }),
        );
        if (json) json.emit({ event: "done", ...r });
        else {
          if (!o.quiet) {
            const bytes = r.layers.reduce((n, l) => n + l.size, 0);
            process.stderr.write(
              `${r.ref} (${r.platform}, ${r.layers.length} layer${r.layers.length === 1 ? "" : "s"}, ${formatBytes(bytes)}): root fs ${formatBytes(r.rootfsBytes)}${r.reused ? " (already built)" : ""}\n`,
            );
          }
          process.stdout.write(`${r.rootfsPath}\n`);
        }
      } catch (err) {
        json?.emit({ event: "error", ...errorJson(err) });
        throw err;
      }
      setExit(0);
    },
  );
}
