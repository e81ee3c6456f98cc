// Shared inputs of the QEMU argument-vector tests: a process spec with
// recognisable paths, and a lookup of the value that follows a flag.
import type { ProcessSpec } from "../qemu-args.js";

/** A TCG restore process with distinct, recognisable paths. */
export const testProcess: ProcessSpec = {
  accel: "tcg",
  cpuModel: "max",
  memoryFile: "/snap/memory.bin",
  memoryShared: false,
  qmpSocket: "/run/q.sock",
  agentSocket: "/run/a.sock",
  consolePipe: "/run/console.pipe",
  incoming: true,
};

/** The value following `flag` in `args` (the first one unless `nth` is given); throws when absent. */
export function after(args: string[], flag: string, nth = 0): string {
  const at = args.flatMap((a, i) => (a === flag ? [i] : []))[nth];
  if (at === undefined) throw new Error(`no ${flag} #${nth} in ${args.join(" ")}`);
  return args[at + 1] as string;
}
