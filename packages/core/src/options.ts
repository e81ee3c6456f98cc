import type { NetworkPolicy } from "@supermachine/vmm-native";

export type { EgressProtocol, EgressRule, EgressRuleSpec } from "@supermachine/vmm-native";

/**
 * Where a VM's network card may send packets (e2b-style names). Default: the
 * public internet only; never the host itself (its loopback, QEMU's gateway
 * alias 10.0.2.2, any host address), private (RFC 1918), link-local (cloud
 * metadata), CGNAT, multicast or IPv6 local addresses; DNS through the host's
 * resolver. Rules apply to TCP, UDP and ICMP; `allowOut` is checked first,
 * then `denyOut`, then the built-in refusals, then `allowInternetAccess`.
 * A host service is reached only by naming it: `{ to: "host", port: 5432 }`
 * (the guest connects to 10.0.2.2:5432). Domain names are matched by the
 * addresses the host's resolver gives for them (see the core README).
 */
export type NetworkOptions = NetworkPolicy;

/** A host file baked into the guest at a fixed path (`BuildOptions.extraFiles`). */
export interface ExtraFileSpec {
  /** File on the host; its bytes are read at bake time and part of the cache key. */
  hostPath: string;
  /** Where it appears in the guest. */
  guestPath: string;
}

/** A file handed to a warmup callback's VM. Only usable while the callback runs. */
export interface WarmupVm {
  /** Runs a command in the VM being baked. Rejects with `WARMUP_VM_EXPIRED` after the callback returned. */
  exec(options: ExecOptions): Promise<ExecOutput>;
}

/** Progress of a long bake, for progress bars. */
export type BuildProgress =
  | { phase: "pull"; layer: string; bytesDone: number; bytesTotal: number }
  | { phase: "rootfs"; message: string }
  | { phase: "boot"; message: string }
  | { phase: "snapshot"; message: string }
  /** Another process holds this bake's lock: the build waits, then uses that process's snapshot. */
  | { phase: "waiting"; message: string }
  | { phase: "cached"; snapshotPath: string }
  /**
   * `registrySnapshots`: looking for a published snapshot (`lookup`), none
   * matched (`miss`: the build bakes), one was found but cannot be used here
   * (`unusable`, e.g. its root fs builds to other bytes on this host: the
   * build bakes), or publishing failed (`push-failed`: the bake is kept).
   */
  | {
      phase: "registry";
      action: "lookup" | "miss" | "unusable" | "push-failed";
      ref: string;
      message: string;
    }
  /** Bytes of a published snapshot being pulled. */
  | { phase: "download"; bytesDone: number; bytesTotal: number }
  /** The snapshot was pulled from the registry and stored: no boot. */
  | { phase: "restored"; snapshotPath: string; ref: string; bytes: number }
  /** Bytes of the snapshot being published (`pack`: compressing guest memory first). */
  | { phase: "upload"; bytesDone: number; bytesTotal: number; step: "pack" | "upload" }
  /** The snapshot was published. */
  | { phase: "pushed"; ref: string; manifestDigest: string; bytes: number };

/** Options of `Image.build`. Only `ref` is required. */
export interface BuildOptions {
  /** Image reference: `alpine`, `host:5000/repo:tag`, `repo@sha256:…`, `oci:/dir[:tag]`, `docker-archive:/file.tar`. */
  ref: string;
  /** Stable snapshot name; default derived from `ref` and the input fingerprint. */
  name?: string;
  /** Guest RAM ceiling in MiB (pages are committed lazily). Default 256. */
  memoryMib?: number;
  /** vCPUs. Default 1. */
  vcpus?: number;
  /** `"always"` | `"missing"` (default) | `"never"`. */
  pullPolicy?: "always" | "missing" | "never" | string;
  /** Port the workload listens on (`listenerRequired`, `vsockPath`). Default 80. */
  guestPort?: number;
  /** Replaces the image's ENTRYPOINT and CMD (the whole argv of the workload). */
  cmd?: readonly string[];
  /** Environment for the workload, over the image's. */
  env?: Record<string, string>;
  /** Snapshot once the workload listens on `guestPort` instead of just before it starts. */
  listenerRequired?: boolean;
  /** Where snapshots live. Default `~/.local/supermachine-snapshots`. */
  snapshotsDir?: string;
  /** Host files baked in at guest paths. */
  extraFiles?: ExtraFileSpec[];
  /** Version tag of `warmup`, part of the cache key. Default `"default"`. */
  warmupTag?: string;
  /** Runs on the booted guest before the snapshot; the snapshot captures its effects. */
  warmup?: (vm: WarmupVm) => Promise<void>;
  /** Progress callback. */
  onProgress?: (p: BuildProgress) => void;
  /** Registries reachable over plain HTTP besides localhost. */
  insecureRegistries?: string[];
  /** How long to wait for `listenerRequired`'s listener (ms). Default 60 000. */
  listenerTimeoutMs?: number;
  /**
   * Accelerator of the bake and of every VM restored from it: `"auto"`
   * (default: KVM/HVF when a real guest boot proves it works on this host,
   * else TCG software emulation), `"kvm"`, `"hvf"` or `"tcg"`. An explicit
   * hardware accelerator that cannot run the guest fails with
   * `ACCEL_UNAVAILABLE`. Part of the fingerprint.
   */
  accel?: "auto" | "kvm" | "hvf" | "tcg";
  /**
   * Guest CPU architecture: `"x86_64"` or `"aarch64"`. Default: the host's
   * (`aarch64` on Apple Silicon and Arm Linux, else `x86_64`). Picks the
   * guest kernel and agent (`@supermachine/guest-<arch>`), the QEMU machine
   * (`microvm` or `virt`) and binary, and the image's platform from a
   * multi-arch index (`linux/amd64`, `linux/arm64/v8`); an image without that
   * platform fails with `OCI_NO_MATCHING_PLATFORM` listing the ones it has. A
   * guest of another architecture than the host's runs under TCG software
   * emulation. Part of the fingerprint.
   */
  arch?: "x86_64" | "aarch64";
  /**
   * The VMs' network: `"none"` bakes VMs without a network card (part of the
   * device model and the cache key: only `lo` in the guest); otherwise the
   * egress policy of the bake and the default of this image's pools (not part
   * of the cache key). Default `{}`: public internet only, DNS on.
   */
  network?: "none" | NetworkOptions;
  /**
   * Share bakes through a registry. On a local miss, `"pull"` looks for a
   * snapshot published for the same fingerprint (which covers the image
   * manifest, every build option, the guest build, QEMU version,
   * accelerator and CPU model) and, if there is one, pulls it and uses it
   * without booting (progress `restored`); otherwise bakes.
   * `"pull-push"` also publishes what it bakes (progress `pushed`). Default
   * `false`: the registry is only used for the image. A pulled artifact
   * whose digests do not verify fails the build (`SNAPSHOT_DIGEST_MISMATCH`)
   * and nothing is kept.
   */
  registrySnapshots?: "pull" | "pull-push" | false;
  /**
   * Repository the snapshots are published in and looked up from,
   * `HOST[:PORT]/PATH`. Default: the image's own repository (required for
   * `oci:`/`docker-archive:` images).
   */
  snapshotRepository?: string;
}

/** Options of `Image.push`. */
export interface PushOptions {
  /** Repository to publish in, `HOST[:PORT]/PATH`. Default: the image's own repository. */
  repository?: string;
  /** Registries reachable over plain HTTP besides localhost. */
  insecureRegistries?: string[];
  /** gzip level of the guest memory pages, 1-9. Default 3. */
  compressionLevel?: number;
  /** Progress (`upload`, then `pushed`). */
  onProgress?: (p: BuildProgress) => void;
}

/** What `Image.push` published. */
export interface PushResult {
  /** `HOST/REPO:supermachine-snapshot-<fingerprint>`. */
  ref: string;
  /** Digest of the artifact's manifest. */
  manifestDigest: string;
  /** Bytes of the artifact (what a pull downloads). */
  artifactBytes: number;
  /** Bytes the snapshot directory takes on disk (allocated blocks). */
  snapshotDiskBytes: number;
  /** Guest memory pages, and how many were non-zero (the only ones sent). */
  totalPages: number;
  presentPages: number;
}

/** Options of `Image.fromSnapshot`. */
export interface FromSnapshotOptions {
  /**
   * Root fs stores searched for the snapshot's root fs (by digest), in
   * order. Default: the default store (`$SUPERMACHINE_CACHE/oci/rootfs`).
   */
  rootfsDirs?: string[];
  /** Rebuild a missing root fs from the image's layers (default true). */
  rebuildRootfs?: boolean;
  /** Registries reachable over plain HTTP besides localhost (for that rebuild's pull). */
  insecureRegistries?: string[];
  /** Progress of a root fs rebuild. */
  onProgress?: (p: BuildProgress) => void;
}

/** Options of `image.pool()`. */
export interface PoolOptions {
  /** VMs kept ready; started eagerly. Default 1. */
  min?: number;
  /** Most VMs alive at once (in use + idle). Default 1. */
  max?: number;
  /** How long `acquire()` waits when all VMs are busy (ms). Default 60 000; 0 waits forever. */
  acquireTimeoutMs?: number;
  /** Idle VMs above `min` are stopped after this long (ms). Default: never. */
  idleTimeoutMs?: number;
  /** Restore a released VM from the snapshot before reuse (default true); false hands it on as is. */
  restoreOnRelease?: boolean;
  /** RAM of this pool's VMs (MiB); must equal the baked value on this engine. */
  memoryMib?: number;
  /** vCPUs of this pool's VMs; must equal the baked value on this engine. */
  vcpus?: number;
  /** Per-VM restore timeout (ms). Default 30 000. */
  restoreTimeoutMs?: number;
  /**
   * Longest a holder may keep a VM (ms), counted from `acquire()`. When it
   * runs out the VM is destroyed (its pool replaces it) and every call on the
   * `Vm`, pending or later, fails with `VM_LEASE_EXPIRED`. Default: no limit.
   */
  maxLeaseMs?: number;
  /**
   * Egress policy of this pool's VMs, replacing the image's. An image baked
   * with `network: "none"` has no network card to apply it to
   * (`UNSUPPORTED_OVERRIDE`).
   */
  network?: NetworkOptions;
}

/** Counters of a pool, cheap to read: `{alive, inUse, idle, waiting, min, max}`. */
export type { PoolStats } from "@supermachine/pool";

/** A file staged with an explicit mode before a command runs. */
export interface StagedFileMode {
  guestPath: string;
  bytes: Buffer;
  /** Unix mode; default 0o644. */
  mode?: number;
}

/** Terminal size in character cells. 0×0 means 80×24. */
export interface Winsize {
  cols: number;
  rows: number;
}

/** What to run in the guest. */
export interface ExecOptions {
  /** Program and arguments; `argv[0]` is looked up in PATH. */
  argv: string[];
  /** Files (mode 0o644) written before the command starts. */
  stageFiles?: Record<string, Buffer>;
  /** Files with explicit modes written before the command starts. */
  stageFilesMode?: StagedFileMode[];
  /** Kill the whole process tree after this long (ms); `exec` only. */
  timeoutMs?: number;
  /** Environment over the guest's defaults. */
  env?: Record<string, string>;
  /** Working directory. */
  cwd?: string;
  /** Shell commands run after `argv` succeeds, in order, stopping at the first failure. */
  chain?: string[];
  /** Run under a pseudo-terminal (stderr merges into stdout). */
  tty?: boolean;
  /** Initial terminal size with `tty`. */
  winsize?: Winsize;
  /**
   * `exec` only: most bytes collected from each of stdout and stderr. Past it
   * the process is killed and `exec` throws `EXEC_OUTPUT_TOO_LARGE` (use
   * `spawn` to stream more). Default 64 MiB, at most 1 GiB.
   */
  maxOutputBytes?: number;
}

/** Options of `Vm.readFile`. */
export interface ReadFileOptions {
  /**
   * Most bytes read; a larger file throws `FILE_TOO_LARGE` before anything
   * is transferred (use `readFileStream` to stream it). Default 64 MiB, at most 1 GiB.
   */
  maxBytes?: number;
}

/** Options of `Vm.logs`. */
export interface LogsOptions {
  /** Only the newest `maxBytes` bytes (default: all the guest keeps, 64 KiB). */
  maxBytes?: number;
}

/** The workload's recent output, as `Vm.logs` returns it. */
export interface WorkloadLogs {
  /**
   * The newest bytes the workload (the image's ENTRYPOINT/CMD and every
   * process it started) wrote to stdout and stderr, interleaved as written.
   * The guest keeps the last 64 KiB.
   */
  output: Buffer;
  /** Bytes it wrote since it started, including those no longer kept. */
  totalBytes: number;
}

/** Collected result of `Vm.exec`. */
export interface ExecOutput {
  stdout: Buffer;
  stderr: Buffer;
  /** Exit status; -1 when killed by a signal or timeout. */
  exitCode: number;
  /** True when `timeoutMs` killed it. */
  timedOut?: boolean;
  /** Peak RSS of the process in KiB, when known. */
  peakRssKib?: number;
}

/** Result of `ExecChild.wait()`. */
export interface ExecWaitResult {
  exitCode: number;
  timedOut: boolean;
  /** The signal that killed the process (exitCode is then -1), when one did. */
  signal?: number;
  peakRssKib?: number;
}
