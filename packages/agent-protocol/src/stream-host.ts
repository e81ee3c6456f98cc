import type { SessionClosedError } from "./errors.js";
import type { SendWindow } from "./flow-control.js";
import type { Frame, Message } from "./messages.js";

/** Data message types the host sends. */
export type OutboundDataType = "STDIN" | "FILE_DATA" | "TCP_DATA";

/** What a stream operation needs from the session (internal). */
export interface StreamHost {
  /** Largest payload the agent accepts. */
  readonly agentMaxPayload: number;
  /** Agent's initial window: our send credit per stream. */
  readonly agentWindow: number;
  /** Our initial window: the agent's send credit per stream. */
  readonly hostWindow: number;
  /** Allocates a stream id, registers `handler` and sends the opening request. */
  open(handler: StreamHandler, request: Message): number;
  /** Sends a control frame now (not flow-controlled). Throws once the session is closed. */
  sendControl(frame: Frame): void;
  /**
   * Sends `data` as data frames within `window` and the agent's max payload,
   * waiting for credit and for the transport to drain. The last frame carries
   * END when `end`. Stops quietly when `alive()` turns false.
   */
  sendData(
    stream: number,
    type: OutboundDataType,
    data: Uint8Array,
    end: boolean,
    window: SendWindow,
    alive: () => boolean,
  ): Promise<void>;
}

/** One open stream as seen by the session (internal). */
export interface StreamHandler {
  /** A frame from the agent on this stream. May throw `ProtocolError` (fails the session). */
  onFrame(frame: Frame): void;
  /** The session closed; reject everything pending with `err`. */
  onSessionClose(err: SessionClosedError): void;
}

/** True for frames that end a stream (agent to host). */
export function isTerminal(frame: Frame): boolean {
  return frame.type === "EXIT" || frame.type === "OK" || frame.type === "ERROR";
}
