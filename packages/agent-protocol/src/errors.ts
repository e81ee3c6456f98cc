import { SupermachineError, type SupermachineErrorOptions } from "@supermachine/errors";
import { type ErrorCodeName, errorCodeName } from "./constants.js";

/**
 * Why the peer's bytes were rejected: a framing/payload error name of the spec,
 * `UNEXPECTED_FRAME` (a well-formed frame that is not valid here), or
 * `BAD_HANDSHAKE` (HELLO_OK with out-of-range parameters).
 */
export type ProtocolErrorReason =
  | Extract<ErrorCodeName, "BAD_FRAME" | "FRAME_TOO_LARGE" | "UNKNOWN_TYPE" | "BAD_PAYLOAD" | "FLOW_CONTROL">
  | "UNEXPECTED_FRAME"
  | "BAD_HANDSHAKE";

/**
 * The peer sent bytes that violate the protocol (bad magic, oversized frame,
 * unknown type, malformed payload, window overrun, unexpected frame).
 * On the host this fails the whole session. `code` is `PROTOCOL_<reason>`.
 */
export class ProtocolError extends SupermachineError {
  /** The spec's name for the violation, e.g. `"BAD_PAYLOAD"`. */
  readonly reason: ProtocolErrorReason;
  constructor(reason: ProtocolErrorReason, message: string, options?: SupermachineErrorOptions) {
    super(`PROTOCOL_${reason}`, message, options);
    this.reason = reason;
  }
}

/**
 * The agent answered a request with an `ERROR` frame.
 * `code` is `AGENT_<name>` (e.g. `AGENT_NOT_FOUND`); `agentCode` is the bare name.
 */
export class AgentError extends SupermachineError {
  /** Error code name from the spec (`"UNKNOWN"` for codes this version does not know). */
  readonly agentCode: ErrorCodeName | "UNKNOWN";
  /** Numeric error code as sent. */
  readonly agentCodeNumber: number;
  /** Guest errno, or 0. */
  readonly errno: number;
  /** The agent's message text. */
  readonly agentMessage: string;
  constructor(code: number, errno: number, message: string, options: SupermachineErrorOptions = {}) {
    const name = errorCodeName(code) ?? "UNKNOWN";
    super(`AGENT_${name}`, `agent error ${name}${errno ? ` (errno ${errno})` : ""}: ${message}`, {
      ...options,
      details: { agentCode: name, errno, ...options.details },
    });
    this.agentCode = name;
    this.agentCodeNumber = code;
    this.errno = errno;
    this.agentMessage = message;
  }
}

/**
 * The session is closed (by `close()`, by the transport ending or erroring, or
 * by a protocol violation). Every pending operation rejects with it; `cause`
 * holds the underlying reason when there is one. Code `SESSION_CLOSED`.
 */
export class SessionClosedError extends SupermachineError {
  constructor(message: string, options?: SupermachineErrorOptions) {
    super("SESSION_CLOSED", message, options);
  }
}

/** The handshake failed (agent refused the version, or it timed out). Code `HANDSHAKE_FAILED`. */
export class HandshakeError extends SupermachineError {
  constructor(message: string, options?: SupermachineErrorOptions) {
    super("HANDSHAKE_FAILED", message, options);
  }
}

/** An exec ran past its `timeoutMs` and was killed by the agent. Code `EXEC_TIMEOUT`. */
export class ExecTimeoutError extends SupermachineError {
  constructor(message: string, options?: SupermachineErrorOptions) {
    super("EXEC_TIMEOUT", message, options);
  }
}

/** Collected output exceeded the caller's cap (`run({maxOutputBytes})`). Code `OUTPUT_LIMIT`. */
export class OutputLimitError extends SupermachineError {
  constructor(message: string, options?: SupermachineErrorOptions) {
    super("OUTPUT_LIMIT", message, options);
  }
}

/** An operation was cancelled through its `AbortSignal`. Code `ABORTED`. */
export class OperationAbortedError extends SupermachineError {
  constructor(message: string, options?: SupermachineErrorOptions) {
    super("ABORTED", message, options);
  }
}
