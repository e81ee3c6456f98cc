import type { AgentSession } from "@supermachine/agent-protocol";
import type { Machine } from "./machine.js";

/**
 * How many times {@link warmTranslation} runs its program. Measured under
 * TCG: the first exec after a restore costs 10-15x a steady one, the second
 * 3-4x, the third is steady; the warm-up pays the first two.
 */
export const WARMUP_RUNS = 2;

/**
 * Pays, before a restored machine is handed out, what its first execs would
 * otherwise pay on the caller's clock. Under TCG a restored QEMU starts with
 * an empty translation cache: the guest kernel's fork, exec, mmap, page
 * fault and exit paths and the agent's own exec path are translated again in
 * every new QEMU process. Running one small static program twice (the
 * agent's own binary, through `/proc/self/exe`, which every guest has
 * whatever the image holds) translates them; a caller's later exec of any
 * program then starts from warm kernel paths.
 *
 * Hardware accelerators translate nothing: there this returns at once. The
 * program's output and exit status are ignored (it prints its usage and
 * exits non-zero); a guest that does not answer within `timeoutMs` is left
 * to the caller's own liveness checks. Never throws.
 *
 * @returns milliseconds spent (0 when nothing was run).
 */
export async function warmTranslation(
  machine: Machine,
  session: AgentSession,
  timeoutMs = 5_000,
): Promise<number> {
  if (machine.accel !== "tcg") return 0;
  const t0 = performance.now();
  for (let i = 0; i < WARMUP_RUNS; i++) {
    try {
      await session.run({ argv: ["/proc/self/exe"], timeoutMs, maxOutputBytes: 4096 });
    } catch {
      break;
    }
  }
  return performance.now() - t0;
}
