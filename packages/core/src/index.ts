export { Image } from "./image.js";
export { Pool } from "./pool.js";
export { Vm } from "./vm.js";
export { ExecChild } from "./exec-child.js";
export { TcpForwarder } from "./tcp-forwarder.js";
export { CoreError } from "./errors.js";
export type { CoreErrorCode } from "./errors.js";
export type {
  BuildOptions,
  BuildProgress,
  ExecOptions,
  ExecOutput,
  ExecWaitResult,
  ExtraFileSpec,
  PoolOptions,
  PoolStats,
  StagedFileMode,
  WarmupVm,
  Winsize,
} from "./options.js";
export { SupermachineError, isSupermachineError } from "@supermachine/errors";
