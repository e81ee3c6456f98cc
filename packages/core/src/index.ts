export { isSupermachineError, SupermachineError } from "@supermachine/errors";
export type { DoctorCheck, DoctorOptions, DoctorReport } from "./doctor.js";
export { doctor } from "./doctor.js";
export type { CoreErrorCode } from "./errors.js";
export { CoreError } from "./errors.js";
export { ExecChild } from "./exec-child.js";
export { Image } from "./image.js";
export type {
  BuildOptions,
  BuildProgress,
  ExecOptions,
  ExecOutput,
  ExecWaitResult,
  ExtraFileSpec,
  LogsOptions,
  PoolOptions,
  PoolStats,
  ReadFileOptions,
  StagedFileMode,
  WarmupVm,
  Winsize,
  WorkloadLogs,
} from "./options.js";
export { Pool } from "./pool.js";
export { TcpForwarder } from "./tcp-forwarder.js";
export { Vm } from "./vm.js";
