// Entry point of the child processes of the cross-process tests (bundled
// with esbuild by the test). Publishes one snapshot and prints the result.
import { appendFileSync, existsSync, writeFileSync } from "node:fs";
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
  /** Hold the build (and the lock) until this file exists. */
  holdUntil?: string;
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
    for (const deadline = Date.now() + 60_000; args.holdUntil && !existsSync(args.holdUntil); ) {
      if (Date.now() > deadline) throw new Error(`${args.holdUntil} did not appear`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return fakeBuild(args.rootfsPath)(tmp);
  },
  { onWait: () => process.stderr.write("waiting\n") },
);
process.stdout.write(`${JSON.stringify({ pid: process.pid, built: result.built, dir: result.dir })}\n`);
