import type { Command } from "commander";
import { inspectSnapshot, isSupermachineError, listSnapshots, pruneSnapshots } from "../index.js";
import { parseCount, parseDuration } from "./parse.js";
import { type CommonOpts, common, examples, styleOf } from "./shared.js";
import { inspectionText, snapshotTable } from "./snapshot-views.js";
import { formatBytes } from "./style.js";

/** The snapshot store commands: ls, inspect, prune. */
export function addStoreCommands(program: Command, setExit: (code: number) => void): void {
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
