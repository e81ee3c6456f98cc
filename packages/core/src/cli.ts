import { join } from "node:path";
import { parseArgs } from "node:util";
import { defaultCacheDir } from "@supermachine/oci";
import { defaultSnapshotsDir, SnapshotStore } from "@supermachine/snapshot";
import { doctor } from "./doctor.js";
import { Image } from "./image.js";
import type { BuildOptions, BuildProgress } from "./options.js";

const USAGE = `usage: supermachine <command> [options]

  build <ref>            bake an image (or find its cached snapshot) and print its path
  run <ref> -- <argv..>  bake if needed, acquire a VM, run a command, print its output
  run <ref> --logs [-- <argv..>]
                         also print the workload's output (newest 64 KiB of its
                         stdout+stderr, like docker logs): on stderr after the
                         command, or on stdout after --wait-ms without one
  ls                     list snapshots with their size
  prune                  remove snapshots (and root fs images no snapshot uses)
  doctor [--json]        check this host (QEMU, accelerator, guest, directories) and print fixes;
                         exits 1 when VMs cannot run here

options:
  --snapshots-dir DIR    default ~/.local/supermachine-snapshots
  --memory MIB           guest RAM (default 256)      --vcpus N     (default 1)
  --port N               guest port (default 80)      --listener    snapshot once it listens
  --name NAME            stable snapshot name         --pull always|missing|never
  --cmd 'SHELL COMMAND'  the workload: /bin/sh -c COMMAND (replaces ENTRYPOINT+CMD)
  --wait-ms N            run --logs without a command: let the workload run N ms (2000)
  --keep N               prune: keep the N newest     --older-than-days D
  --rootfs               prune: also delete root fs images no snapshot in THIS
                         snapshots directory uses (they are shared by all)
`;

function progressPrinter(): (p: BuildProgress) => void {
  const layers = new Map<string, { done: number; total: number }>();
  let last = 0;
  return (p) => {
    if (p.phase === "pull") {
      layers.set(p.layer, { done: p.bytesDone, total: p.bytesTotal });
      const now = Date.now();
      if (now - last < 200 && p.bytesDone < p.bytesTotal) return;
      last = now;
      let done = 0;
      let total = 0;
      for (const l of layers.values()) {
        done += l.done;
        total += l.total;
      }
      const pct = total ? Math.floor((100 * done) / total) : 0;
      const bar = "#".repeat(Math.floor(pct / 5)).padEnd(20, ".");
      process.stderr.write(
        `\rpull [${bar}] ${pct}% ${(done / 1e6).toFixed(1)}/${(total / 1e6).toFixed(1)} MB`,
      );
      if (done >= total) process.stderr.write("\n");
      return;
    }
    process.stderr.write(`${p.phase}: ${"message" in p ? p.message : p.snapshotPath}\n`);
  };
}

/** Runs the `supermachine` command line; resolves with the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const dashdash = argv.indexOf("--");
  const own = dashdash >= 0 ? argv.slice(0, dashdash) : argv;
  const command = dashdash >= 0 ? argv.slice(dashdash + 1) : [];
  const { values, positionals } = parseArgs({
    args: own,
    allowPositionals: true,
    options: {
      "snapshots-dir": { type: "string" },
      memory: { type: "string" },
      vcpus: { type: "string" },
      port: { type: "string" },
      listener: { type: "boolean" },
      name: { type: "string" },
      pull: { type: "string" },
      keep: { type: "string" },
      "older-than-days": { type: "string" },
      rootfs: { type: "boolean" },
      logs: { type: "boolean" },
      cmd: { type: "string" },
      "wait-ms": { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [cmd, ref] = positionals;
  if (values.help || !cmd) {
    process.stdout.write(USAGE);
    return cmd || values.help ? 0 : 2;
  }
  const snapshotsDir = values["snapshots-dir"] ?? defaultSnapshotsDir();
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const build = (r: string): BuildOptions => ({
    ref: r,
    snapshotsDir,
    name: values.name,
    memoryMib: num(values.memory),
    vcpus: num(values.vcpus),
    guestPort: num(values.port),
    listenerRequired: values.listener,
    pullPolicy: values.pull,
    cmd: values.cmd === undefined ? undefined : ["/bin/sh", "-c", values.cmd],
    onProgress: progressPrinter(),
  });
  switch (cmd) {
    case "doctor": {
      const report = await doctor({ snapshotsDir });
      if (values.json) {
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      } else {
        const mark = { ok: "ok  ", warn: "WARN", fail: "FAIL" } as const;
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
      return report.ok ? 0 : 1;
    }
    case "build": {
      if (!ref) break;
      const image = await Image.build(build(ref));
      process.stdout.write(`${image.snapshotPath}\n`);
      return 0;
    }
    case "run": {
      if (!ref || (command.length === 0 && !values.logs)) break;
      const image = await Image.build(build(ref));
      const pool = await image.pool({ min: 1, max: 1 });
      try {
        const vm = await pool.acquire();
        if (command.length === 0) {
          await new Promise((r) => setTimeout(r, num(values["wait-ms"]) ?? 2000));
          const logs = await vm.logs();
          process.stdout.write(logs.output);
          await vm.release();
          return 0;
        }
        const r = await vm.exec({ argv: command });
        process.stdout.write(r.stdout);
        process.stderr.write(r.stderr);
        if (values.logs) {
          const logs = await vm.logs();
          process.stderr.write(
            `--- workload logs (last ${logs.output.length} of ${logs.totalBytes} bytes) ---\n`,
          );
          process.stderr.write(logs.output);
        }
        await vm.release();
        return r.exitCode < 0 ? 128 : r.exitCode;
      } finally {
        await pool.shutdown();
      }
    }
    case "ls": {
      const store = new SnapshotStore({ dir: snapshotsDir });
      for (const e of await store.list()) {
        const mb = (e.diskUsage.allocatedBytes / 1e6).toFixed(1);
        const what = e.valid
          ? `${e.metadata?.image.ref} ${e.metadata?.trigger}`
          : `INVALID: ${e.error?.message}`;
        process.stdout.write(`${e.name}\t${mb} MB\t${what}\n`);
      }
      return 0;
    }
    case "prune": {
      const store = new SnapshotStore({ dir: snapshotsDir });
      const days = num(values["older-than-days"]);
      const r = await store.prune({
        keep: num(values.keep),
        olderThan: days === undefined ? undefined : new Date(Date.now() - days * 86_400_000),
        // root fs images are shared by every snapshots directory: only on request
        rootfsDir: values.rootfs ? join(defaultCacheDir(), "rootfs") : undefined,
      });
      process.stdout.write(
        `removed ${r.removedSnapshots.length} snapshots, ${r.removedRootfs.length} root fs images; freed ${(r.freedBytes / 1e6).toFixed(1)} MB\n`,
      );
      return 0;
    }
  }
  process.stderr.write(USAGE);
  return 2;
}
