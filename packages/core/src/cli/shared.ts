// Options and helpers the CLI commands share.
import { type Command, Option } from "commander";
import {
  type BuildOptions,
  type BuildProgress,
  CoreError,
  defaultSnapshotsDir,
  type NetworkOptions,
} from "../index.js";
import { collect, parseCount, parseMemoryMib } from "./parse.js";
import { PlainProgress, type ProgressView, TtyProgress } from "./progress.js";
import { type Style, styleFor } from "./style.js";

/** Options every command takes (parsed by commander). */
export interface CommonOpts {
  snapshotsDir?: string;
  debug?: boolean;
  color?: boolean;
}

/** Options of commands that may bake: build, run, logs. */
export interface BakeOpts extends CommonOpts {
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
  arch?: "x86_64" | "aarch64";
  insecureRegistry?: string[];
  registrySnapshots?: "pull" | "pull-push";
  snapshotRepository?: string;
}

/** A help section listing example command lines. */
export const examples = (lines: string[]) => `\nExamples:\n${lines.map((l) => `  $ ${l}`).join("\n")}\n`;

/** The built-in default image, as examples name it. */
export const DEFAULT_IMAGE_HINT = "oci:$HOME/.cache/supermachine/images/default:latest";

/** Options every command takes. */
export function common(cmd: Command, withSnapshots = true): Command {
  if (withSnapshots) {
    cmd.option("--snapshots-dir <dir>", `where snapshots live (default ${defaultSnapshotsDir()})`);
  }
  return cmd
    .option("--debug", "show stack traces and error details")
    .option("--no-color", "no colors (NO_COLOR=1 does the same)");
}

/** Options of the bake that `build` and `run` share. */
export function bakeOptions(cmd: Command): Command {
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
    .addOption(
      new Option(
        "--arch <arch>",
        "guest architecture: the image's variant for it, run in that guest (default: the host's)",
      ).choices(["x86_64", "aarch64"]),
    )
    .option("--insecure-registry <host>", "registry reachable over plain HTTP (repeatable)", collect)
    .addOption(
      new Option(
        "--registry-snapshots <mode>",
        "on a local miss, pull a snapshot published for the same inputs instead of baking (pull), and publish what is baked (pull-push)",
      ).choices(["pull", "pull-push"]),
    )
    .option(
      "--snapshot-repository <repo>",
      "HOST[:PORT]/PATH holding published snapshots (default: the image's repository)",
    )
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
export function networkOf(o: BakeOpts): "none" | NetworkOptions | undefined {
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

/** `Image.build` options from the command line. */
export function buildOptions(ref: string, o: BakeOpts, onProgress: (p: BuildProgress) => void): BuildOptions {
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
    ...(o.arch ? { arch: o.arch } : {}),
    ...(o.insecureRegistry?.length ? { insecureRegistries: o.insecureRegistry } : {}),
    ...(networkOf(o) !== undefined ? { network: networkOf(o) } : {}),
    ...(o.registrySnapshots ? { registrySnapshots: o.registrySnapshots } : {}),
    ...(o.snapshotRepository ? { snapshotRepository: o.snapshotRepository } : {}),
    onProgress,
  };
}

/**
 * The egress policy for the VMs `run`/`logs` start: the one given, so a
 * snapshot baked under another policy (not part of its cache key) still
 * runs under this one.
 */
export function poolNetwork(o: BakeOpts): { network?: NetworkOptions } {
  const n = networkOf(o);
  return n === undefined || n === "none" ? {} : { network: n };
}

/** The progress view for a command's stderr: live on a terminal, lines otherwise. */
export function stderrView(style: Style, title: string): ProgressView {
  return process.stderr.isTTY
    ? new TtyProgress(process.stderr, style, title)
    : new PlainProgress(process.stderr);
}

/**
 * A view created once the build does real work (a download, a root fs, a
 * boot): `run` stays silent on a cache hit. Layers already in the cache are
 * held back and shown only if the view gets created.
 */
export function lazyView(make: () => ProgressView): ProgressView {
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

/** Runs `fn`, then marks the view's last phase done, or failed when `fn` throws. */
export async function withView<T>(view: ProgressView, fn: () => Promise<T>): Promise<T> {
  try {
    const r = await fn();
    view.finish(true);
    return r;
  } catch (err) {
    view.finish(false);
    throw err;
  }
}

/** The palette for a stream (stderr by default), honoring `--no-color`. */
export function styleOf(o: CommonOpts, stream: NodeJS.WriteStream = process.stderr): Style {
  return styleFor(stream, o.color === false);
}
