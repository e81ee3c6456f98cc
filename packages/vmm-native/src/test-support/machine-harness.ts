// Bookkeeping shared by the engine's integration tests: every machine a test
// starts is closed at the end, and a shell runs a script in a guest.
import type { AgentSession } from "@supermachine/agent-protocol";
import type { Machine } from "../machine.js";

/** Machines to close when the file's tests end: `track` one as it starts, `closeAll` in afterAll. */
export function machineTracker() {
  const machines: Machine[] = [];
  return {
    /** Remembers a started machine (for `closeAll`) and returns it. */
    async track(m: Promise<Machine>): Promise<Machine> {
      const got = await m;
      machines.push(got);
      return got;
    },
    /** Closes every tracked machine. */
    closeAll: () => Promise.all(machines.map((m) => m.close())),
  };
}

/** Runs `script` with the guest's `sh -c`: its stdout, stderr and exit code. */
export async function sh(session: AgentSession, script: string) {
  const r = await session.run({ argv: ["sh", "-c", script] });
  return { out: r.stdout.toString(), err: r.stderr.toString(), code: r.exitCode };
}
