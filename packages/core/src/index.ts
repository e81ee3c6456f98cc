export { isSupermachineError, SupermachineError } from "@supermachine/errors";
export type { BakeTrigger, SnapshotMetadata } from "@supermachine/snapshot";
export type { DoctorCheck, DoctorOptions, DoctorReport } from "./doctor.js";
export { doctor } from "./doctor.js";
export type { CoreErrorCode } from "./errors.js";
export { CoreError } from "./errors.js";
export { ExecChild } from "./exec-child.js";
export { Image } from "./image.js";
export type {
  BuildOptions,
  BuildProgress,
  EgressProtocol,
  EgressRule,
  EgressRuleSpec,
  ExecOptions,
  ExecOutput,
  ExecWaitResult,
  ExtraFileSpec,
  FromSnapshotOptions,
  LogsOptions,
  NetworkOptions,
  PoolOptions,
  PoolStats,
  PushOptions,
  PushResult,
  ReadFileOptions,
  StagedFileMode,
  WarmupVm,
  Winsize,
  WorkloadLogs,
} from "./options.js";
export { Pool } from "./pool.js";
export type { PulledLayer, PulledRootfs, PullRootfsOptions } from "./pull.js";
export { pullRootfs } from "./pull.js";
export type {
  PruneSnapshotsOptions,
  PruneSnapshotsResult,
  SnapshotFingerprintInputs,
  SnapshotInspection,
  SnapshotProblem,
  SnapshotSizes,
  SnapshotSummary,
  SnapshotsDirOptions,
} from "./snapshots.js";
export { defaultSnapshotsDir, inspectSnapshot, listSnapshots, pruneSnapshots } from "./snapshots.js";
export { TcpForwarder } from "./tcp-forwarder.js";
export { Vm } from "./vm.js";
