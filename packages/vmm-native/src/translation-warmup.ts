import type { AgentSession } from "@supermachine/agent-protocol";
import type { Machine } from "./machine.js";

/**
 * How many times {@link warmTranslation} runs its program. Measured under
 * TCG (busybox image): with no warm-up the first three execs of `true` took
 * about 250, 40 and 12 ms; after three runs of `/bin/sh -c :` the first took
 * 22-25 ms, and 8-10.5 ms (steady 5-6) once the shell was named without a
 * path, so the agent's PATH lookup was warmed too.
 */
export const WARMUP_RUNS = 3;

/**
 * The program run: the image's shell (its own binary, libc and loader),
 * named without a path as most commands are, so the agent's PATH lookup is
 * warmed too; else the agent's own binary.
 */
const SHELL = ["sh", "-c", ":"];
const AGENT_SELF = ["/proc/self/exe"];

/**
 * Pays, before a restored machine is handed out, what its first execs would
 * otherwise pay on the caller's clock. Under TCG a restored QEMU starts with
 * an empty translation cache: the guest kernel's fork, exec, mmap, page
 * fault and exit paths, the agent's exec path and the image's own binaries
 * are translated again in every new QEMU process. Running a small program a
 * few times translates them: the image's `/bin/sh` when it has one (that
 * warms its libc and loader too), else the agent's own static binary through
 * `/proc/self/exe`, which every guest has.
 *
 * It costs about what the first execs would have cost (measured: 280-380 ms
 * against 250-300 ms), paid in the background by a pool that restores ahead.
 * Each run is an ordinary exec: its own cgroup, every process it started
 * killed when it ends, output capped and ignored; an image whose shell hangs
 * costs one `timeoutMs` (default 2 s) and is not run again. Hardware accelerators
 * translate nothing: there it returns at once. Never throws.
 *
 * @returns milliseconds spent (0 when nothing was run).
 */
export async function warmTranslation(
  machine: Machine,
  session: AgentSession,
  timeoutMs = 2_000,
): Promise<number> {
  if (machine.accel !== "tcg") return 0;
  const t0 = performance.now();
  let argv = SHELL;
  for (let i = 0; i < WARMUP_RUNS; i++) {
    const outcome = await session.run({ argv, timeoutMs, maxOutputBytes: 4096 }).then(
      (r) => (r.timedOut ? "stuck" : r.exitCode === 127 ? "missing" : "ran"),
      () => (session.closed ? "stuck" : "missing"),
    );
    if (outcome === "ran") continue;
    // a program that hangs is not waited for again: one timeout at most per restore
    if (outcome === "stuck" || argv === AGENT_SELF) break;
    argv = AGENT_SELF; // no usable shell in this image
  }
  return performance.now() - t0;
}
