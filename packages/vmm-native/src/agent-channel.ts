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
  try {
    return await Promise.race([
      AgentSession.open(socket, { handshakeTimeoutMs: timeoutMs }),
      machine.exited.then((info) => {
        throw machine.exitError(info, "QEMU exited before the guest agent answered");
      }),
    ]);
  } catch (err) {
    socket.destroy();
    throw err;
  }
}
