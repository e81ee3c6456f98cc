export type { ProbeResult, ProbeTarget } from "./accel-probe.js";
export { probeAccelerator } from "./accel-probe.js";
export type { Accelerator, AcceleratorRequest } from "./accelerator.js";
export {
  acceleratorArchProblem,
  cpuModelFor,
  hardwareAccelerator,
  kvmAccessProblem,
  kvmDevice,
  kvmDevicePresent,
  requestedAccelerator,
} from "./accelerator.js";
export { openAgentSession } from "./agent-channel.js";
export type { CgroupSupport } from "./confine/cgroup.js";
export { detectCgroupSupport } from "./confine/cgroup.js";
export type { ExtraBind, LaunchLayers, LaunchPlan, LaunchRequest, VmFiles } from "./confine/launch.js";
export { planQemuLaunch, SANDBOX_PATHS, SECCOMP_OPTION } from "./confine/launch.js";
export type { Confinement, ConfineOptions, QemuIdentity } from "./confine/options.js";
export { DEFAULT_QEMU_ID, resolveConfinement } from "./confine/options.js";
export type { QemuRlimits } from "./confine/rlimits.js";
export { qemuRlimits } from "./confine/rlimits.js";
export { ByteRing, CONSOLE_RING_BYTES, ConsoleSink, fileTail, textTail } from "./console-tail.js";
export type { DiagnosticCheck } from "./diagnostics.js";
export { engineDiagnostics } from "./diagnostics.js";
export type { AcceleratorVerdict, Engine, EngineRequest } from "./engine.js";
export { acceleratorVerdict, chooseEngine, resetEngineMemo, verdictDir } from "./engine.js";
export type { ExitInfo, VmmErrorCode } from "./errors.js";
export { isVmExited, VmExitedError, VmmError } from "./errors.js";
export type { GuestAssets, GuestAssetsSource } from "./guest-assets.js";
export {
  cacheRoot,
  GUEST_ASSETS_FIX,
  GUEST_PACKAGE,
  guestAssetsCandidates,
  guestAssetsEnvVar,
  guestAssetsFix,
  guestCacheManifest,
  guestPackageManifest,
  guestPackageName,
  resolveGuestAssets,
} from "./guest-assets.js";
export type { BootOptions, CaptureOptions, RestoreOptions, StartOptions } from "./machine.js";
export { engineForSnapshot, Machine, PreparedRestore } from "./machine.js";
export type { GuestArch, MachineModel } from "./machine-model.js";
export {
  GUEST_ARCHES,
  guestArchOfNode,
  hostGuestArch,
  machineModel,
  parseGuestArch,
} from "./machine-model.js";
export type { Cidr } from "./network/addresses.js";
export { parseCidr } from "./network/addresses.js";
export type { NetworkNamespace } from "./network/namespace.js";
export type { DynamicSets, ResolvedAddresses } from "./network/nft.js";
export { NFT_TABLE, renderRuleset, UPLINK_DNS, UPLINK_GATEWAY } from "./network/nft.js";
export type {
  EgressProtocol,
  EgressRule,
  EgressRuleSpec,
  NetworkPolicy,
  NormalizedPolicy,
  NormalizedRule,
} from "./network/policy.js";
export { normalizePolicy } from "./network/policy.js";
export { isNonPublic, NON_PUBLIC_V4, NON_PUBLIC_V6 } from "./network/ranges.js";
export type { NetworkLease } from "./network/registry.js";
export { acquireNetwork, liveNetworkNamespaces } from "./network/registry.js";
export { networkTools } from "./network/tools.js";
export type { GuardedCommand } from "./orphan-guard.js";
export { guardAgainstOrphans, STDIN_WATCH_SCRIPT } from "./orphan-guard.js";
export type { MachineSpec, ProcessSpec } from "./qemu-args.js";
export { buildQemuArgs, kernelCmdline, MACHINE_TYPE, optionValue, qemuRequirements } from "./qemu-args.js";
export type { QemuBinary } from "./qemu-binary.js";
export { findQemu, QEMU_SEARCH_DIRS, qemuCandidates } from "./qemu-binary.js";
export type { QemuCapabilities, QemuRequirements } from "./qemu-capabilities.js";
export { missingCapabilities, readCapabilities } from "./qemu-capabilities.js";
export type { QmpConnectOptions } from "./qmp/qmp-client.js";
export { QmpClient } from "./qmp/qmp-client.js";
export type { QmpCommand, QmpCommandMap, QmpEvent } from "./qmp/qmp-types.js";
export type { RunDirOwner } from "./run-dir.js";
export { RunDir, reapRunDirs, runRoot } from "./run-dir.js";
export type { MachineRecord, SnapshotFiles, SnapshotInputs } from "./snapshot-files.js";
export {
  defaultRootfsStore,
  ENGINE_FORMAT,
  MACHINE_FILE,
  MEMORY_FILE,
  machineRecordFor,
  openSnapshotFiles,
  STATE_FILE,
} from "./snapshot-files.js";
export { WARMUP_RUNS, warmTranslation } from "./translation-warmup.js";
