// Entry point of the child processes of the cross-process tests (bundled
// with esbuild by the test). Publishes one snapshot and prints the result.
import { appendFileSync, writeFileSync } from "node:fs";
import { SnapshotStore } from "../store.js";
import { fakeBuild } from "./fixtures.js";

interface ChildArgs {
  dir: string;
  name?: string;
  ref: string;
  fingerprint: string;
  rootfsPath: string;
  /** Every build appends a line here. */
  counterFile: string;
  /** Written (with the build dir) when the build starts. */
  startedFile?: string;
  /** Never finish the build (the test SIGKILLs the process). */
  hang?: boolean;
}

const args = JSON.parse(process.argv[2] ?? "{}") as ChildArgs;
const store = new SnapshotStore({ dir: args.dir });
const result = await store.publish(
  { name: args.name, ref: args.ref, fingerprint: args.fingerprint },
  async (tmp) => {
    appendFileSync(args.counterFile, `${process.pid}\n`);
    if (args.startedFile) writeFileSync(args.startedFile, tmp);
    if (args.hang) {
      setInterval(() => {}, 1000);
      await new Promise(() => {});
    }
    // Give a concurrent publisher time to arrive while the lock is held.
    await new Promise((r) => setTimeout(r, 300));
    return fakeBuild(args.rootfsPath)(tmp);
  },
  { onWait: () => process.stderr.write("waiting\n") },
);
process.stdout.write(`${JSON.stringify({ pid: process.pid, built: result.built, dir: result.dir })}\n`);
