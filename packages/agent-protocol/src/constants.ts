/** Frame magic, `0x4D53` little-endian (bytes `53 4D`, ASCII `SM`). */
export const MAGIC = 0x4d53;
/** Size of the fixed frame header in bytes. */
export const HEADER_SIZE = 12;
/** Header flag bit 0: last data frame of this direction. */
export const FLAG_END = 1;
/** Protocol version implemented by this package. */
export const PROTOCOL_VERSION = 1;
/** Payload limit both sides assume before the handshake (and the default). */
export const DEFAULT_MAX_PAYLOAD = 65536;
/** Smallest `max_payload` a side may announce. */
export const MIN_MAX_PAYLOAD = 4096;
/** Largest `max_payload` a side may announce. */
export const MAX_MAX_PAYLOAD = 1024 * 1024;
/** Default per-stream, per-direction flow-control window. */
export const DEFAULT_INITIAL_WINDOW = 262144;

/** Numeric message type codes (PROTOCOL.md section 5). */
export const MessageType = {
  HELLO: 0x01,
  HELLO_OK: 0x02,
  PING: 0x03,
  PONG: 0x04,
  EVENT: 0x05,
  EXEC: 0x10,
  STARTED: 0x11,
  STDIN: 0x12,
  STDOUT: 0x13,
  STDERR: 0x14,
  RESIZE: 0x15,
  SIGNAL: 0x16,
  EXIT: 0x17,
  WRITE_FILE: 0x20,
  FILE_DATA: 0x21,
  READ_FILE: 0x22,
  FILE_INFO: 0x23,
  TCP_CONNECT: 0x30,
  CONNECTED: 0x31,
  TCP_DATA: 0x32,
  WINDOW: 0x40,
  RESET: 0x41,
  OK: 0x42,
  ERROR: 0x43,
  WORKLOAD_CONFIG: 0x50,
  WORKLOAD_START: 0x51,
  WORKLOAD_SIGNAL: 0x52,
  WORKLOAD_LOGS: 0x53,
} as const;

/** Name of a message type, e.g. `"EXEC"`. */
export type MessageTypeName = keyof typeof MessageType;

/** Error codes carried by `ERROR` frames (PROTOCOL.md section 5). */
export const ErrorCode = {
  BAD_FRAME: 1,
  FRAME_TOO_LARGE: 2,
  UNKNOWN_TYPE: 3,
  BAD_PAYLOAD: 4,
  UNKNOWN_STREAM: 5,
  STREAM_EXISTS: 6,
  FLOW_CONTROL: 7,
  UNSUPPORTED_VERSION: 8,
  NOT_READY: 9,
  NOT_FOUND: 10,
  IO: 11,
  CANCELLED: 12,
  EXEC_FAILED: 13,
  LIMIT: 14,
  STATE: 15,
} as const;

/** Name of a protocol error code, e.g. `"NOT_FOUND"`. */
export type ErrorCodeName = keyof typeof ErrorCode;

/** Event kinds carried by `EVENT` frames. */
export const EventKind = {
  WORKLOAD_READY: 1,
  WORKLOAD_STARTED: 2,
  LISTENING: 3,
  WORKLOAD_EXITED: 4,
  LOG: 5,
} as const;

/** Name of an event kind, e.g. `"LISTENING"`. */
export type EventKindName = keyof typeof EventKind;

/** `HELLO_OK.features` bits. */
export const Feature = { PTY: 1, TCP: 2, VSOCK: 4, LOGS: 8 } as const;

/** `EXEC` flags bit 0: allocate a pty. */
export const EXEC_FLAG_TTY = 1;
/** `WRITE_FILE` flags bit 0: create parent directories. */
export const WRITE_FLAG_MKDIRS = 1;
/** `WORKLOAD_CONFIG` flags bit 0: hold until `WORKLOAD_START`. */
export const WORKLOAD_FLAG_HOLD = 1;
/** `WORKLOAD_CONFIG` flags bit 1: watch `watch_port` for a listener. */
export const WORKLOAD_FLAG_WATCH = 2;
/** `WORKLOAD_CONFIG` flags bit 2: execs run as the workload's user, in its cwd (like `docker exec`). */
export const WORKLOAD_FLAG_EXEC_AS_WORKLOAD = 4;

const typeNames = new Map<number, MessageTypeName>(
  Object.entries(MessageType).map(([k, v]) => [v, k as MessageTypeName]),
);
const errorNames = new Map<number, ErrorCodeName>(
  Object.entries(ErrorCode).map(([k, v]) => [v, k as ErrorCodeName]),
);
const eventNames = new Map<number, EventKindName>(
  Object.entries(EventKind).map(([k, v]) => [v, k as EventKindName]),
);

/** Name of a numeric message type, or `undefined` when unknown. */
export function messageTypeName(type: number): MessageTypeName | undefined {
  return typeNames.get(type);
}

/** Name of a numeric error code, or `undefined` when unknown. */
export function errorCodeName(code: number): ErrorCodeName | undefined {
  return errorNames.get(code);
}

/** Name of a numeric event kind, or `undefined` when unknown. */
export function eventKindName(kind: number): EventKindName | undefined {
  return eventNames.get(kind);
}
