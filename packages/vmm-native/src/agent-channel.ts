import { AgentSession } from "@supermachine/agent-protocol";
import type { Machine } from "./machine.js";

/**
 * Connects to a machine's agent port and performs the protocol handshake.
 * Works the same after a cold boot (waits for the guest's init) and after a
 * restore (the HELLO resets whatever session the snapshot held). Rejects with
 * `VM_EXITED` if QEMU dies first, or a handshake timeout error.
 */
export async function openAgentSession(machine: Machine, timeoutMs = 60_000): Promise<AgentSession> {
  const socket = await machine.connectAgent(timeoutMs);
  const opening = AgentSession.open(socket, { handshakeTimeoutMs: timeoutMs });
  const died = machine.exited.then((info) =>
    machine.exitError(info, "QEMU exited before the guest agent answered"),
  );
  const first = await Promise.race([
    opening.then(
      (session) => ({ session }),
      (error: unknown) => ({ error }),
    ),
    died.then((error) => ({ error })),
  ]);
  if ("session" in first) return first.session;
  socket.destroy();
  opening.catch(() => {});
  throw first.error;
}
