import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { Command, CommanderError, Option } from "commander";
import { bashCompletion, zshCompletion } from "./cli/completion.js";
import { logsOfImage } from "./cli/logs.js";
import {
  collect,
  parseCount,
  parseDuration,
  parseEnvEntries,
  parseEnvFile,
  parseMemoryMib,
  parsePort,
  parseVolume,
} from "./cli/parse.js";
import {
  JsonProgress,
  PlainProgress,
  type ProgressView,
  silentProgress,
  TtyProgress,
} from "./cli/progress.js";
import { errorJson, formatError } from "./cli/report-error.js";
import { checkCopies, runInVm } from "./cli/run.js";
import { inspectionText, snapshotTable } from "./cli/snapshot-views.js";
import { formatBytes, formatDuration, type Style, styleFor } from "./cli/style.js";
// The CLI is a client of the public API: everything it uses comes from ./index.js.
import {
  type BuildOptions,
  type BuildProgress,
  CoreError,
  defaultSnapshotsDir,
  doctor,
  Image,
  inspectSnapshot,
  isSupermachineError,
  listSnapshots,
  type NetworkOptions,
  pruneSnapshots,
  pullRootfs,
} from "./index.js";

interface CommonOpts {
  snapshotsDir?: string;
  debug?: boolean;
  color?: boolean;
}

interface BakeOpts extends CommonOpts {
  name?: string;
  cmd?: string;
  network?: "none" | "public" | "allowlist";
  allowOut?: string[];
  denyOut?: string[];
  dns?: boolean;
  memory?: string;
  vcpus?: string;
  port?: string;
  listener?: boolean;
  pull?: "always" | "missing" | "never";
  accel?: "auto" | "kvm" | "hvf" | "tcg";
  insecureRegistry?: string[];
}

function version(): string {
  try {
    return (createRequire(import.meta.url)("../package.json") as { version: string }).version;
  } catch {
    return "unknown";
  }
}

const examples = (lines: string[]) => `\nExamples:\n${lines.map((l) => `  $ ${l}`).join("\n")}\n`;

const DEFAULT_IMAGE_HINT = "oci:$HOME/.cache/supermachine/images/default:latest";

/** Options every command takes. */
function common(cmd: Command, withSnapshots = true): Command {
  if (withSnapshots) {
    cmd.option("--snapshots-dir <dir>", `where snapshots live (default ${defaultSnapshotsDir()})`);
  }
  return cmd
    .option("--debug", "show stack traces and error details")
    .option("--no-color", "no colors (NO_COLOR=1 does the same)");
}

/** Options of the bake that `build` and `run` share. */
function bakeOptions(cmd: Command): Command {
  return cmd
    .option("--name <name>", "stable snapshot name (default: derived from the image and its inputs)")
    .option(
      "--cmd <command>",
      "the workload, run by /bin/sh -c (replaces the image's ENTRYPOINT + CMD; part of the bake)",
    )
    .option("--memory <size>", "guest RAM, fixed at bake time: MiB or 512m, 1g (default 256)")
    .option("--vcpus <n>", "vCPUs, fixed at bake time (default 1)")
    .option("--port <port>", "guest port of the workload (default 80)")
    .option("--listener", "snapshot once the workload listens on --port")
    .addOption(
      new Option("--pull <policy>", "when to contact the registry").choices(["always", "missing", "never"]),
    )
    .addOption(new Option("--accel <accel>", "accelerator").choices(["auto", "kvm", "hvf", "tcg"]))
    .option("--insecure-registry <host>", "registry reachable over plain HTTP (repeatable)", collect)
    .addOption(
      new Option(
        "--network <mode>",
        "none: no network card (part of the bake); public (default): the public internet only; allowlist: only --allow-out",
      ).choices(["none", "public", "allowlist"]),
    )
    .option(
      "--allow-out <dest>",
      "allow egress to ADDRESS[/BITS], DOMAIN or host, with [:PORT[-LAST]] (repeatable)",
      collect,
    )
    .option("--deny-out <dest>", "refuse egress to a destination, same forms (repeatable)", collect)
    .option("--no-dns", "no name resolution through the host's resolver");
}

/** The network of `--network`, `--allow-out`, `--deny-out`, `--no-dns`; undefined when none is given. */
function networkOf(o: BakeOpts): "none" | NetworkOptions | undefined {
  const allowOut = o.allowOut ?? [];
  const denyOut = o.denyOut ?? [];
  if (o.network === "none") {
    if (allowOut.length || denyOut.length || o.dns === false) {
      throw new CoreError(
        "INVALID_OPTIONS",
        "--network none has no network card: drop --allow-out, --deny-out and --no-dns",
      );
    }
    return "none";
  }
  if (o.network === undefined && !allowOut.length && !denyOut.length && o.dns !== false) return undefined;
  return {
    ...(o.network === "allowlist" ? { allowInternetAccess: false } : {}),
    ...(allowOut.length ? { allowOut } : {}),
    ...(denyOut.length ? { denyOut } : {}),
    ...(o.dns === false ? { dns: false } : {}),
  };
}

function buildOptions(ref: string, o: BakeOpts, onProgress: (p: BuildProgress) => void): BuildOptions {
  return {
    ref,
    ...(o.snapshotsDir ? { snapshotsDir: o.snapshotsDir } : {}),
    ...(o.name ? { name: o.name } : {}),
    ...(o.cmd !== undefined ? { cmd: ["/bin/sh", "-c", o.cmd] } : {}),
    ...(o.memory ? { memoryMib: parseMemoryMib(o.memory) } : {}),
    ...(o.vcpus ? { vcpus: parseCount(o.vcpus, "--vcpus") } : {}),
    ...(o.port ? { guestPort: parseCount(o.port, "--port") } : {}),
    ...(o.listener ? { listenerRequired: true } : {}),
    ...(o.pull ? { pullPolicy: o.pull } : {}),
    ...(o.accel ? { accel: o.accel } : {}),
    ...(o.insecureRegistry?.length ? { insecureRegistries: o.insecureRegistry } : {}),
    ...(networkOf(o) !== undefined ? { network: networkOf(o) } : {}),
    onProgress,
  };
}

/**
 * The egress policy for the VMs `run`/`logs` start: the one given, so a
 * snapshot baked under another policy (not part of its cache key) still
 * runs under this one.
 */
function poolNetwork(o: BakeOpts): { network?: NetworkOptions } {
  const n = networkOf(o);
  return n === undefined || n === "none" ? {} : { network: n };
}

/** The progress view for a command's stderr: live on a terminal, lines otherwise. */
function stderrView(style: Style, title: string): ProgressView {
  return process.stderr.isTTY
    ? new TtyProgress(process.stderr, style, title)
    : new PlainProgress(process.stderr);
}

/**
 * A view created once the build does real work (a download, a root fs, a
 * boot): `run` stays silent on a cache hit. Layers already in the cache are
 * held back and shown only if the view gets created.
 */
function lazyView(make: () => ProgressView): ProgressView {
  let view: ProgressView | undefined;
  let held: BuildProgress[] = [];
  return {
    update(p) {
      if (!view) {
        if (p.phase === "cached") {
          held = [];
          return;
        }
        if (p.phase === "pull" && p.bytesDone >= p.bytesTotal) {
          held.push(p);
          return;
        }
        view = make();
        for (const h of held) view.update(h);
      }
      view.update(p);
    },
    finish(ok) {
      view?.finish(ok);
    },
  };
}

async function withView<T>(view: ProgressView, fn: () => Promise<T>): Promise<T> {
  try {
    const r = await fn();
    view.finish(true);
    return r;
  } catch (err) {
    view.finish(false);
    throw err;
  }
}

function styleOf(o: CommonOpts, stream: NodeJS.WriteStream = process.stderr): Style {
  return styleFor(stream, o.color === false);
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

  const ls = program
    .command("ls")
    .summary("list snapshots with their image, accelerator, size and status")
    .option("--json", "print the list as JSON")
    .option("-q, --quiet", "print snapshot names only");
  common(ls).addHelpText("after", examples(["supermachine ls", "supermachine ls --json | jq '.[].path'"]));
  ls.action(async (o: CommonOpts & { json?: boolean; quiet?: boolean }) => {
    const list = await listSnapshots(o.snapshotsDir ? { snapshotsDir: o.snapshotsDir } : {});
    if (o.json) process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
    else if (o.quiet) process.stdout.write(list.map((s) => `${s.name}\n`).join(""));
    else if (list.length === 0) process.stderr.write("no snapshots (supermachine build IMAGE makes one)\n");
    else process.stdout.write(snapshotTable(list, styleOf(o, process.stdout)));
    setExit(0);
  });

  const inspect = program
    .command("inspect")
    .summary("show a snapshot's metadata, fingerprint inputs, sizes, accelerator and arch")
    .argument(
      "<snapshot>",
      "snapshot name (from ls), snapshot directory, or the image reference it was baked from",
    )
    .option("--json", "print everything as JSON");
  common(inspect).addHelpText(
    "after",
    examples([
      "supermachine inspect oci-default_latest-0123456789abcdef",
      "supermachine inspect ~/.local/supermachine-snapshots/NAME --json",
    ]),
  );
  inspect.action(async (what: string, o: CommonOpts & { json?: boolean }) => {
    const dirOpts = o.snapshotsDir ? { snapshotsDir: o.snapshotsDir } : {};
    let info: Awaited<ReturnType<typeof inspectSnapshot>>;
    try {
      info = await inspectSnapshot(what, dirOpts);
    } catch (err) {
      // not a name or directory: the newest snapshot baked from that image reference
      if (!isSupermachineError(err) || err.code !== "SNAPSHOT_NOT_FOUND") throw err;
      const match = (await listSnapshots(dirOpts))
        .filter((s) => s.metadata?.image.ref === what)
        .sort((a, b) => (b.metadata?.createdAt ?? "").localeCompare(a.metadata?.createdAt ?? ""))[0];
      if (!match) throw err;
      info = await inspectSnapshot(match.path, dirOpts);
    }
    process.stdout.write(
      o.json ? `${JSON.stringify(info, null, 2)}\n` : inspectionText(info, styleOf(o, process.stdout)),
    );
    setExit(0);
  });

  const prune = program
    .command("prune")
    .summary("remove snapshots: broken ones, and old ones on request")
    .description(
      "Removes invalid snapshots and leftovers of interrupted bakes; with --keep / --older-than / --all also valid ones. --rootfs also deletes root fs images that no snapshot in THIS directory uses.",
    )
    .option("--keep <n>", "keep the N newest valid snapshots")
    .option("--older-than <duration>", "remove snapshots older than this (12h, 7d)")
    .option("--all", "remove every snapshot")
    .option(
      "--rootfs",
      "also remove root fs images no remaining snapshot here uses (shared by all directories)",
    )
    .option("--json", "print what was removed as JSON");
  common(prune).addHelpText(
    "after",
    examples([
      "supermachine prune",
      "supermachine prune --older-than 7d --rootfs",
      "supermachine prune --all",
    ]),
  );
  prune.action(
    async (
      o: CommonOpts & { keep?: string; olderThan?: string; all?: boolean; rootfs?: boolean; json?: boolean },
    ) => {
      const r = await pruneSnapshots({
        ...(o.snapshotsDir ? { snapshotsDir: o.snapshotsDir } : {}),
        ...(o.keep !== undefined ? { keep: parseCount(o.keep, "--keep") } : {}),
        ...(o.all ? { olderThan: 0 } : o.olderThan ? { olderThan: parseDuration(o.olderThan) } : {}),
        rootfs: o.rootfs === true,
      });
      if (o.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      else {
        for (const n of r.removedSnapshots) process.stdout.write(`removed ${n}\n`);
        for (const n of r.skippedBusy) process.stdout.write(`skipped ${n} (a bake holds it)\n`);
        process.stdout.write(
          `removed ${r.removedSnapshots.length} snapshots, ${r.removedRootfs.length} root fs images; freed ${formatBytes(r.freedBytes)}\n`,
        );
      }
      setExit(0);
    },
  );

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
