import type { MessageTypeName } from "./constants.js";

/** Fields every frame carries in its header. */
export interface FrameHeader {
  /** Stream id; 0 is the session control stream. */
  stream: number;
  /** Header flags (bit 0 = END). */
  flags: number;
}

/** `HELLO` (H→G): opens or resets the session. */
export interface HelloMessage {
  type: "HELLO";
  minVersion: number;
  maxVersion: number;
  maxPayload: number;
  initialWindow: number;
  nonce: bigint;
}
/** `HELLO_OK` (G→H): handshake answer. */
export interface HelloOkMessage {
  type: "HELLO_OK";
  version: number;
  maxPayload: number;
  initialWindow: number;
  nonce: bigint;
  features: number;
  agentVersion: string;
}
/** `PING` (H→G). */
export interface PingMessage {
  type: "PING";
  token: bigint;
}
/** `PONG` (G→H). */
export interface PongMessage {
  type: "PONG";
  token: bigint;
}
/** `EVENT` (G→H). */
export interface EventMessage {
  type: "EVENT";
  kind: number;
  value: number;
  detail: string;
}
/** `EXEC` (H→G, opens a stream). `execFlags` is the payload `flags` field. */
export interface ExecMessage {
  type: "EXEC";
  execFlags: number;
  timeoutMs: number;
  cols: number;
  rows: number;
  argv: string[];
  env: string[];
  cwd: string;
  chain: string[];
}
/** `STARTED` (G→H). */
export interface StartedMessage {
  type: "STARTED";
  pid: number;
}
/** `STDIN` data (H→G). */
export interface StdinMessage {
  type: "STDIN";
  data: Uint8Array;
}
/** `STDOUT` data (G→H). */
export interface StdoutMessage {
  type: "STDOUT";
  data: Uint8Array;
}
/** `STDERR` data (G→H). */
export interface StderrMessage {
  type: "STDERR";
  data: Uint8Array;
}
/** `RESIZE` (H→G). */
export interface ResizeMessage {
  type: "RESIZE";
  cols: number;
  rows: number;
}
/** `SIGNAL` (H→G). */
export interface SignalMessage {
  type: "SIGNAL";
  signum: number;
}
/** `EXIT` (G→H, terminal). */
export interface ExitMessage {
  type: "EXIT";
  exitCode: number;
  termSignal: number;
  timedOut: number;
  peakRssKib: bigint;
}
/** `WRITE_FILE` (H→G, opens). `writeFlags` is the payload `flags` field. */
export interface WriteFileMessage {
  type: "WRITE_FILE";
  path: string;
  mode: number;
  writeFlags: number;
}
/** `FILE_DATA` data (both directions). */
export interface FileDataMessage {
  type: "FILE_DATA";
  data: Uint8Array;
}
/** `READ_FILE` (H→G, opens). */
export interface ReadFileMessage {
  type: "READ_FILE";
  path: string;
}
/** `FILE_INFO` (G→H). */
export interface FileInfoMessage {
  type: "FILE_INFO";
  size: bigint;
  mode: number;
}
/** `TCP_CONNECT` (H→G, opens). */
export interface TcpConnectMessage {
  type: "TCP_CONNECT";
  port: number;
  host: string;
}
/** `CONNECTED` (G→H). */
export interface ConnectedMessage {
  type: "CONNECTED";
}
/** `TCP_DATA` data (both directions). */
export interface TcpDataMessage {
  type: "TCP_DATA";
  data: Uint8Array;
}
/** `WINDOW` (both): returns flow-control credit. */
export interface WindowMessage {
  type: "WINDOW";
  increment: number;
}
/** `RESET` (H→G): ends a stream early. */
export interface ResetMessage {
  type: "RESET";
}
/** `OK` (G→H, terminal). */
export interface OkMessage {
  type: "OK";
  value: bigint;
}
/** `ERROR` (both). */
export interface ErrorMessage {
  type: "ERROR";
  code: number;
  errno: number;
  message: string;
}
/** `WORKLOAD_CONFIG` (H→G, opens). `workloadFlags` is the payload `flags` field. */
export interface WorkloadConfigMessage {
  type: "WORKLOAD_CONFIG";
  workloadFlags: number;
  watchPort: number;
  argv: string[];
  env: string[];
  cwd: string;
  user: string;
  hostname: string;
}
/** `WORKLOAD_START` (H→G, opens). */
export interface WorkloadStartMessage {
  type: "WORKLOAD_START";
}
/** `WORKLOAD_SIGNAL` (H→G, opens). */
export interface WorkloadSignalMessage {
  type: "WORKLOAD_SIGNAL";
  signum: number;
}
/** `WORKLOAD_LOGS` (H→G, opens): the newest bytes of the workload's stdout+stderr; `maxBytes` 0 = all held. */
export interface WorkloadLogsMessage {
  type: "WORKLOAD_LOGS";
  maxBytes: number;
}

/** Any protocol message (payload only, without header). */
export type Message =
  | HelloMessage
  | HelloOkMessage
  | PingMessage
  | PongMessage
  | EventMessage
  | ExecMessage
  | StartedMessage
  | StdinMessage
  | StdoutMessage
  | StderrMessage
  | ResizeMessage
  | SignalMessage
  | ExitMessage
  | WriteFileMessage
  | FileDataMessage
  | ReadFileMessage
  | FileInfoMessage
  | TcpConnectMessage
  | ConnectedMessage
  | TcpDataMessage
  | WindowMessage
  | ResetMessage
  | OkMessage
  | ErrorMessage
  | WorkloadConfigMessage
  | WorkloadStartMessage
  | WorkloadSignalMessage
  | WorkloadLogsMessage;

/** A complete frame: a message plus its header fields. */
export type Frame = Message & FrameHeader;

/** The frame variant with the given type name. */
export type FrameOf<T extends MessageTypeName> = Extract<Frame, { type: T }>;

/** Wire encodings of payload fields (PROTOCOL.md section 2). */
export type FieldKind = "u8" | "u16" | "u32" | "u64" | "i32" | "i64" | "str" | "strlist" | "bytes";

/** One payload field: property name, wire (canonical) name, encoding. */
export type FieldSpec = readonly [prop: string, wire: string, kind: FieldKind];

/** Payload layout of every message type, in wire order. */
export const MESSAGE_FIELDS: Readonly<Record<MessageTypeName, readonly FieldSpec[]>> = {
  HELLO: [
    ["minVersion", "min_version", "u16"],
    ["maxVersion", "max_version", "u16"],
    ["maxPayload", "max_payload", "u32"],
    ["initialWindow", "initial_window", "u32"],
    ["nonce", "nonce", "u64"],
  ],
  HELLO_OK: [
    ["version", "version", "u16"],
    ["maxPayload", "max_payload", "u32"],
    ["initialWindow", "initial_window", "u32"],
    ["nonce", "nonce", "u64"],
    ["features", "features", "u32"],
    ["agentVersion", "agent_version", "str"],
  ],
  PING: [["token", "token", "u64"]],
  PONG: [["token", "token", "u64"]],
  EVENT: [
    ["kind", "kind", "u8"],
    ["value", "value", "u32"],
    ["detail", "detail", "str"],
  ],
  EXEC: [
    ["execFlags", "flags", "u32"],
    ["timeoutMs", "timeout_ms", "u32"],
    ["cols", "cols", "u16"],
    ["rows", "rows", "u16"],
    ["argv", "argv", "strlist"],
    ["env", "env", "strlist"],
    ["cwd", "cwd", "str"],
    ["chain", "chain", "strlist"],
  ],
  STARTED: [["pid", "pid", "u32"]],
  STDIN: [["data", "data", "bytes"]],
  STDOUT: [["data", "data", "bytes"]],
  STDERR: [["data", "data", "bytes"]],
  RESIZE: [
    ["cols", "cols", "u16"],
    ["rows", "rows", "u16"],
  ],
  SIGNAL: [["signum", "signum", "u32"]],
  EXIT: [
    ["exitCode", "exit_code", "i32"],
    ["termSignal", "term_signal", "i32"],
    ["timedOut", "timed_out", "u8"],
    ["peakRssKib", "peak_rss_kib", "u64"],
  ],
  WRITE_FILE: [
    ["path", "path", "str"],
    ["mode", "mode", "u32"],
    ["writeFlags", "flags", "u32"],
  ],
  FILE_DATA: [["data", "data", "bytes"]],
  READ_FILE: [["path", "path", "str"]],
  FILE_INFO: [
    ["size", "size", "u64"],
    ["mode", "mode", "u32"],
  ],
  TCP_CONNECT: [
    ["port", "port", "u16"],
    ["host", "host", "str"],
  ],
  CONNECTED: [],
  TCP_DATA: [["data", "data", "bytes"]],
  WINDOW: [["increment", "increment", "u32"]],
  RESET: [],
  OK: [["value", "value", "u64"]],
  ERROR: [
    ["code", "code", "u32"],
    ["errno", "errno", "i32"],
    ["message", "message", "str"],
  ],
  WORKLOAD_CONFIG: [
    ["workloadFlags", "flags", "u32"],
    ["watchPort", "watch_port", "u16"],
    ["argv", "argv", "strlist"],
    ["env", "env", "strlist"],
    ["cwd", "cwd", "str"],
    ["user", "user", "str"],
    ["hostname", "hostname", "str"],
  ],
  WORKLOAD_START: [],
  WORKLOAD_SIGNAL: [["signum", "signum", "u32"]],
  WORKLOAD_LOGS: [["maxBytes", "max_bytes", "u32"]],
};

/** Message types that are flow-controlled data frames. */
export const DATA_TYPES: ReadonlySet<MessageTypeName> = new Set([
  "STDIN",
  "STDOUT",
  "STDERR",
  "FILE_DATA",
  "TCP_DATA",
]);

/** Message types the host may send (H→G). */
export const HOST_TO_GUEST: ReadonlySet<MessageTypeName> = new Set([
  "HELLO",
  "PING",
  "EXEC",
  "STDIN",
  "RESIZE",
  "SIGNAL",
  "WRITE_FILE",
  "FILE_DATA",
  "READ_FILE",
  "TCP_CONNECT",
  "TCP_DATA",
  "WINDOW",
  "RESET",
  "ERROR",
  "WORKLOAD_CONFIG",
  "WORKLOAD_START",
  "WORKLOAD_SIGNAL",
  "WORKLOAD_LOGS",
]);

/** Message types the agent may send (G→H). */
export const GUEST_TO_HOST: ReadonlySet<MessageTypeName> = new Set([
  "HELLO_OK",
  "PONG",
  "EVENT",
  "STARTED",
  "STDOUT",
  "STDERR",
  "EXIT",
  "FILE_DATA",
  "FILE_INFO",
  "CONNECTED",
  "TCP_DATA",
  "WINDOW",
  "OK",
  "ERROR",
]);
