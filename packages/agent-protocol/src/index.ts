export type { ErrorCodeName, EventKindName, MessageTypeName } from "./constants.js";
export {
  DEFAULT_INITIAL_WINDOW,
  DEFAULT_MAX_PAYLOAD,
  ErrorCode,
  EventKind,
  EXEC_FLAG_TTY,
  errorCodeName,
  eventKindName,
  Feature,
  FLAG_END,
  HEADER_SIZE,
  MAGIC,
  MAX_MAX_PAYLOAD,
  MessageType,
  MIN_MAX_PAYLOAD,
  messageTypeName,
  PROTOCOL_VERSION,
  WORKLOAD_FLAG_EXEC_AS_WORKLOAD,
  WORKLOAD_FLAG_HOLD,
  WORKLOAD_FLAG_WATCH,
  WRITE_FLAG_MKDIRS,
} from "./constants.js";
export type { FrameDecoderOptions } from "./decoder.js";
export { FrameDecoder } from "./decoder.js";
export { describeBytes, describeFrame, quoteCanonical } from "./describe.js";
export { encodeFrame, encodeHeader, encodePayload, encodeRawFrame } from "./encoder.js";
export type { ProtocolErrorReason } from "./errors.js";
export {
  AgentError,
  ExecTimeoutError,
  HandshakeError,
  OperationAbortedError,
  OutputLimitError,
  ProtocolError,
  SessionClosedError,
} from "./errors.js";
export type { AgentEvent } from "./events.js";
export type { ExecOptions, ExecResult } from "./exec-stream.js";
export { ExecProcess } from "./exec-stream.js";
export type { FileInfo, WriteFileOptions, WriteFileSource } from "./file-transfer.js";
export { FileReadStream } from "./file-transfer.js";
export { InboundBuffer, SendWindow } from "./flow-control.js";
export { HELLO_SEED_BYTES, hostContextBytes } from "./host-context.js";
export { InboundReadable } from "./inbound-readable.js";
export type {
  ConnectedMessage,
  ErrorMessage,
  EventMessage,
  ExecMessage,
  ExitMessage,
  FieldKind,
  FieldSpec,
  FileDataMessage,
  FileInfoMessage,
  Frame,
  FrameHeader,
  FrameOf,
  HelloMessage,
  HelloOkMessage,
  Message,
  OkMessage,
  PingMessage,
  PongMessage,
  ReadFileMessage,
  ResetMessage,
  ResizeMessage,
  SignalMessage,
  StartedMessage,
  StderrMessage,
  StdinMessage,
  StdoutMessage,
  TcpConnectMessage,
  TcpDataMessage,
  WindowMessage,
  WorkloadConfigMessage,
  WorkloadLogsMessage,
  WorkloadSignalMessage,
  WorkloadStartMessage,
  WriteFileMessage,
} from "./messages.js";
export { DATA_TYPES, GUEST_TO_HOST, HOST_TO_GUEST, MESSAGE_FIELDS } from "./messages.js";
export { decodePayload } from "./payload-decoder.js";
export type { RunOptions, RunResult } from "./run.js";
export type { AgentInfo, AgentSessionEvents, SessionOptions, WorkloadConfig } from "./session.js";
export { AgentSession, openSession } from "./session.js";
export { TcpStream } from "./tcp-stream.js";
