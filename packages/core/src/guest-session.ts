import type { AgentSession, ExecOptions, ExecProcess } from "@supermachine/agent-protocol";
import { openAgentSession } from "@supermachine/vmm-native";

/** The agent session core drives each VM through. */
export type GuestSession = AgentSession;
/** An exec request as the agent protocol takes it. */
export type ExecRequest = ExecOptions;
/** A running guest process. */
export type ExecHandle = ExecProcess;

/** Opens the agent session of a machine (handshake included), racing QEMU's exit. */
export const openGuestSession = openAgentSession;
