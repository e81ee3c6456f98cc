import type { Command } from "commander";
import { Image, inspectSnapshot, isSupermachineError, listSnapshots, pruneSnapshots } from "../index.js";
import { collect, parseCount, parseDuration } from "./parse.js";
import { JsonProgress, silentProgress } from "./progress.js";
import { type CommonOpts, common, examples, stderrView, styleOf, withView } from "./shared.js";
import { inspectionText, snapshotTable } from "./snapshot-views.js";
import { formatBytes } from "./style.js";

/** The snapshot directory `what` names: a snapshot name or directory, else the newest snapshot baked from that image reference. */
async function snapshotPathOf(what: string, dirOpts: { snapshotsDir?: string }): Promise<string> {
  try {
    return (await inspectSnapshot(what, dirOpts)).path;
  } catch (err) {
    if (!isSupermachineError(err) || err.code !== "SNAPSHOT_NOT_FOUND") throw err;
    const match = (await listSnapshots(dirOpts))
      .filter((s) => s.valid && s.metadata?.image.ref === what)
      .sort((a, b) => (b.metadata?.createdAt ?? "").localeCompare(a.metadata?.createdAt ?? ""))[0];
    if (!match) throw err;
    return match.path;
  }
}

/** The snapshot store commands: ls, inspect, prune, push. */
export function addStoreCommands(program: Command, setExit: (code: number) => void): void {
  const push = program
    .command("push")
    .summary("publish a snapshot to a registry, so other hosts pull it instead of baking")
    .description(
      "Publishes a baked snapshot as an OCI artifact (device state, guest memory without its zero pages, metadata; it refers to the image manifest it was baked from), tagged supermachine-snapshot-<fingerprint> in the image's repository or --to. Other hosts then build the image with --registry-snapshots pull and restore it without booting. Credentials: the Docker config, as for pulls. Prints the artifact reference.",
    )
    .argument(
      "<snapshot>",
      "snapshot name (from ls), snapshot directory, or the image reference it was baked from",
    )
    .option("--to <repo>", "HOST[:PORT]/PATH to publish in (default: the image's repository)")
    .option("--insecure-registry <host>", "registry reachable over plain HTTP (repeatable)", collect)
    .option("--json", "print one JSON event per line on stdout, then the result")
    .option("-q, --quiet", "no progress; print the reference only");
  common(push).addHelpText(
    "after",
    examples([
      "supermachine build 127.0.0.1:5000/debian:12 && supermachine push 127.0.0.1:5000/debian:12",
      "supermachine push web --to registry.example.com/team/snapshots",
      "supermachine build 127.0.0.1:5000/debian:12 --registry-snapshots pull   # on another host",
    ]),
  );
  push.action(
    async (
      what: string,
      o: CommonOpts & { to?: string; insecureRegistry?: string[]; json?: boolean; quiet?: boolean },
    ) => {
      const path = await snapshotPathOf(what, o.snapshotsDir ? { snapshotsDir: o.snapshotsDir } : {});
      const image = await Image.fromSnapshot(path, { insecureRegistries: o.insecureRegistry });
      const view = o.json
        ? new JsonProgress(process.stdout)
        : o.quiet
          ? silentProgress
          : stderrView(styleOf(o), `push ${what}`);
      const result = await withView(view, () =>
        image.push({
          ...(o.to ? { repository: o.to } : {}),
          ...(o.insecureRegistry?.length ? { insecureRegistries: o.insecureRegistry } : {}),
          onProgress: (p) => view.update(p),
        }),
      );
      if (o.json) (view as JsonProgress).emit({ event: "done", ...result });
      else {
        if (!o.quiet) {
          process.stderr.write(
            `pushed ${formatBytes(result.artifactBytes)} for a snapshot of ${formatBytes(result.snapshotDiskBytes)} on disk (${result.presentPages} of ${result.totalPages} memory pages non-zero)\n`,
          );
        }
        process.stdout.write(`${result.ref}\n`);
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
}
