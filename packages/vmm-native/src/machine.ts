import { existsSync, mkdirSync, rmSync } from "node:fs";
import type { Socket } from "node:net";
import { dirname, join } from "node:path";
import {
  type Accelerator,
  type AcceleratorRequest,
  cpuModelFor,
  requestedAccelerator,
} from "./accelerator.js";
import { sealMemoryFile } from "./confine/file-access.js";
import { type LaunchPlan, planQemuLaunch } from "./confine/launch.js";
import type { ConfineOptions } from "./confine/options.js";
import { ConsoleSink } from "./console-tail.js";
import { acceleratorVerdict, chooseEngine, type Engine } from "./engine.js";
import { type ExitInfo, VmExitedError, VmmError } from "./errors.js";
import { waitForIncoming } from "./migration.js";
import type { NetworkPolicy } from "./network/policy.js";
import { acquireNetwork, type NetworkLease } from "./network/registry.js";
import { buildQemuArgs, type MachineSpec, qemuRequirements } from "./qemu-args.js";
import { findQemu } from "./qemu-binary.js";
import { QemuProcess } from "./qemu-process.js";
import { QmpClient } from "./qmp/qmp-client.js";
import { RunDir } from "./run-dir.js";
import {
  MEMORY_FILE,
  machineRecordFor,
  openSnapshotFiles,
  type SnapshotFiles,
  STATE_FILE,
  writeMachineRecord,
} from "./snapshot-files.js";
import { type MigrationEnd, migrateBetween, migrateToHostFile } from "./state-stream.js";
import { connectWhenListening } from "./unix-connect.js";

/** Options shared by every way of starting a {@link Machine}. */
export interface StartOptions {
  /**
   * Accelerator; default `auto`: the host's hardware accelerator when a real
   * guest boot proves it works (see `chooseEngine`), TCG otherwise. Ignored
   * when `engine` is given. A restore always uses the snapshot's accelerator;
   * asking for another fails with `ACCEL_MISMATCH`.
   */
  accel?: AcceleratorRequest;
  /** An engine already chosen with `chooseEngine` (skips the choice). */
  engine?: Engine;
  /** Parent directory for the per-VM socket/log directory. */
  runDirParent?: string;
  /**
   * Egress policy of the VM's network card (ignored when the spec has none).
   * Default: the public internet only, DNS on. See the README, "Network".
   */
  network?: NetworkPolicy;
  /** How QEMU is confined (default: every layer; see the README, "Confinement"). */
  confine?: ConfineOptions | false;
}

/** Options of {@link Machine.boot}. */
export interface BootOptions extends StartOptions {
  /**
   * File backing guest RAM, mapped shared so a later {@link Machine.captureSnapshot}
   * into the same directory needs no copy. Default: a file in the run directory.
   */
  memoryFile?: string;
}

/** Options of {@link Machine.restore} and {@link Machine.prepareRestore}. */
export interface RestoreOptions extends StartOptions {
  /** Kill QEMU and fail with `RESTORE_TIMEOUT` if the restore takes longer (ms). Default 30 000. */
  timeoutMs?: number;
  /**
   * Path of the snapshot's root fs image on this host (e.g. as the snapshot
   * store resolved it by digest). Default: found by its digest in the
   * default root fs store. See {@link openSnapshotFiles}.
   */
  rootfsPath?: string;
  /** Refuse a snapshot whose `machine.json` names its guest or root fs by host path (see {@link SnapshotInputs.byHashOnly}). */
  byHashOnly?: boolean;
}

/** How {@link Machine.captureSnapshot} leaves the VM. */
export interface CaptureOptions {
  /** Resume the VM after capture (default false: it stays paused). */
  resume?: boolean;
}

let nextId = 1;

/**
 * One QEMU VM process (x86_64 `microvm` or aarch64 `virt`, see `machineModel`)
 * and everything the host needs to drive it: QMP,
 * the agent channel (a unix socket to a virtio-serial port), the console
 * (a bounded ring in this process).
 *
 * Start one with {@link Machine.boot} (cold boot) or {@link Machine.restore}
 * (from a snapshot directory). If QEMU dies, {@link Machine.exited} resolves
 * and every pending operation rejects with a `VM_EXITED` error that carries
 * the exit status and the console tail. `close()` is idempotent.
 */
export class Machine {
  /** Process-unique id, for logs. */
  readonly id = nextId++;
  /** The accelerator, CPU model and QEMU binary in use. */
  readonly engine: Engine;
  /** The device model. */
  readonly spec: MachineSpec;
  /** QEMU version string. */
  readonly qemuVersion: string;
  /** Resolves when QEMU exits (never rejects). */
  readonly exited: Promise<ExitInfo>;
  private closed = false;
  private confineOpts: ConfineOptions | false | undefined;

  private constructor(
    private readonly proc: QemuProcess,
    readonly qmp: QmpClient,
    private readonly runDir: RunDir,
    spec: MachineSpec,
    engine: Engine,
    /** Path of the file backing guest RAM. */
    readonly memoryFile: string,
    /** Whether guest RAM is mapped shared (bake) or private copy-on-write (restored). */
    readonly memoryShared: boolean,
    private readonly launch: LaunchPlan,
    /** The network namespace QEMU runs in (none without a network card). */
    private readonly net: NetworkLease | undefined,
  ) {
    this.spec = spec;
    this.engine = engine;
    this.qemuVersion = engine.qemu.version;
    this.exited = proc.exited;
    proc.exited.then((info) => {
      if (!this.closed) qmp.fail(new VmExitedError(info));
    });
  }

  /** The accelerator in use. */
  get accel(): Accelerator {
    return this.engine.accel;
  }

  /** QEMU's process id. */
  get pid(): number {
    return this.proc.pid;
  }
  /**
   * The last lines of the guest serial console. The console is kept in a
   * fixed-size ring in this process (`CONSOLE_RING_BYTES`), never on disk,
   * and stays readable after QEMU has exited.
   */
  consoleTail(maxLines = 30): string {
    return this.proc.consoleSink.tail(maxLines);
  }
  /** The guest console bytes held on the host (at most `CONSOLE_RING_BYTES`, the newest). */
  consoleBytes(): Buffer {
    return this.proc.consoleSink.bytes();
  }
  /** Console bytes the guest has written since QEMU started, including those the ring dropped. */
  get consoleTotalBytes(): number {
    return this.proc.consoleSink.totalBytes;
  }
  /** Path of the unix socket connected to the guest agent's virtio-serial port. */
  get agentSocketPath(): string {
    return this.runDir.agentSocket;
  }
  /** The `migrate-incoming` URI of the device state this machine was started to load, if any. */
  get incomingUri(): string | undefined {
    return this.launch.incomingUri;
  }
  /** True once QEMU has exited. */
  get hasExited(): boolean {
    return this.proc.hasExited;
  }
  /** True once QEMU is known to be gone, possibly before {@link exited} resolves (see `QemuProcess.isGone`). */
  get isGone(): boolean {
    return this.proc.isGone;
  }

  private static async start(
    spec: MachineSpec,
    opts: StartOptions,
    memoryFile: string | undefined,
    memoryShared: boolean,
    incoming: boolean,
    incomingState?: string,
  ): Promise<Machine> {
    const engine =
      opts.engine ??
      (await chooseEngine({
        arch: spec.arch ?? "x86_64",
        accel: opts.accel,
        kernel: spec.kernel,
        initrd: spec.initrd,
        network: spec.network,
        confine: opts.confine,
      }));
    const runDir = new RunDir(opts.runDirParent);
    const memPath = memoryFile ?? join(runDir.path, "memory.bin");
    mkdirSync(dirname(memPath), { recursive: true, mode: 0o700 });
    const args = buildQemuArgs(spec, {
      accel: engine.accel,
      cpuModel: engine.cpuModel,
      memoryFile: memPath,
      memoryShared,
      qmpSocket: runDir.qmpSocket,
      agentSocket: runDir.agentSocket,
      consolePipe: runDir.consolePipe,
      incoming,
    });
    // network: QEMU runs inside the namespace of its egress policy (see network/)
    let net: NetworkLease | undefined;
    try {
      net = spec.network === false ? undefined : await acquireNetwork(opts.network);
    } catch (err) {
      runDir.remove();
      throw err;
    }
    const consoleSink = await ConsoleSink.open(runDir.consolePipe).catch(async (err: unknown) => {
      runDir.remove();
      await net?.release();
      throw new VmmError("QEMU_START_FAILED", `cannot make the console pipe: ${(err as Error).message}`, {
        cause: err,
      });
    });
    let launch: LaunchPlan;
    try {
      launch = planQemuLaunch({
        qemu: engine.qemu.path,
        args,
        files: {
          kernel: spec.kernel,
          initrd: spec.initrd,
          rootfs: spec.rootfs,
          memoryFile: memPath,
          memoryWritable: memoryShared,
          runDir,
          consolePipe: runDir.consolePipe,
          incomingState,
        },
        accel: engine.accel,
        memoryMib: spec.memoryMib,
        vcpus: spec.vcpus,
        confine: opts.confine,
      });
    } catch (err) {
      consoleSink.close();
      runDir.remove();
      await net?.release();
      throw err;
    }
    if (net) {
      // the confined launch runs inside the policy's network namespace (nsenter execs it: same pid)
      const wrapped = net.wrap(launch.command, launch.args);
      launch.command = wrapped.command;
      launch.args = wrapped.args;
    }
    const proc = new QemuProcess(engine.qemu.path, args, consoleSink, launch);
    let qmp: QmpClient;
    try {
      await proc.started;
      qmp = await Promise.race([
        QmpClient.connect(runDir.qmpSocket, {
          abort: proc.exited,
          timeoutMs: 15_000,
          closeReason: () => proc.exited.then((info) => new VmExitedError(info)),
        }),
        proc.exitedAsError("QEMU exited during start"),
      ]);
      launch.afterStart();
    } catch (err) {
      await proc.kill();
      runDir.remove();
      await net?.release();
      throw err;
    }
    const m = new Machine(proc, qmp, runDir, spec, engine, memPath, memoryShared, launch, net);
    m.confineOpts = opts.confine;
    return m;
  }

  /**
   * Cold-boots a guest. Resolves once QEMU runs (the guest is still booting;
   * connect to the agent to know when it is up).
   */
  static async boot(spec: MachineSpec, opts: BootOptions = {}): Promise<Machine> {
    return Machine.start(spec, opts, opts.memoryFile, true, false);
  }

  /**
   * Starts QEMU for a snapshot and leaves it waiting in `-incoming defer`,
   * so that {@link PreparedRestore.complete} only has to load device state.
   * This takes QEMU's process start off the restore path.
   */
  static async prepareRestore(snapshotDir: string, opts: RestoreOptions = {}): Promise<PreparedRestore> {
    const files = openSnapshotFiles(snapshotDir, { rootfs: opts.rootfsPath, byHashOnly: opts.byHashOnly });
    const engine = opts.engine ?? (await engineForSnapshot(files, opts.accel));
    const m = await Machine.start(
      files.spec,
      { ...opts, engine },
      files.memoryFile,
      false,
      true,
      files.stateFile,
    );
    try {
      await m.qmp.execute("migrate-set-capabilities", {
        capabilities: [{ capability: "x-ignore-shared", state: true }],
      });
    } catch (err) {
      await m.close();
      throw err;
    }
    return new PreparedRestore(m, files, opts.timeoutMs ?? 30_000);
  }

  /**
   * Restores a VM from a snapshot directory: guest RAM is the snapshot's
   * memory file mapped copy-on-write (shared by every VM restored from it),
   * device state is loaded from `restore.snap`, then the VM runs.
   */
  static async restore(snapshotDir: string, opts: RestoreOptions = {}): Promise<Machine> {
    const prepared = await Machine.prepareRestore(snapshotDir, opts);
    return prepared.complete();
  }

  /** Connects a new byte stream to the guest agent's port. */
  async connectAgent(timeoutMs = 10_000): Promise<Socket> {
    try {
      return await connectWhenListening(this.runDir.agentSocket, Date.now() + timeoutMs, {
        stop: () =>
          this.proc.hasExited
            ? this.proc.exitedAsError("QEMU exited before the agent channel opened")
            : undefined,
      });
    } catch (err) {
      if (err instanceof VmExitedError) throw err;
      throw new VmmError("QEMU_START_FAILED", "agent socket did not open", { cause: err });
    }
  }

  /** The typed error describing how this machine's QEMU ended. */
  exitError(info: ExitInfo, context?: string): VmExitedError {
    return new VmExitedError(info, context);
  }

  /** Pauses the vCPUs. */
  async pause(): Promise<void> {
    await this.qmp.execute("stop", {});
  }

  /** Resumes the vCPUs. */
  async resume(): Promise<void> {
    await this.qmp.execute("cont", {});
  }

  /**
   * Captures a snapshot into `destDir` (created if needed): `restore.snap`
   * (device state), `memory.bin` (guest RAM) and `machine.json`.
   *
   * - A booted VM (RAM mapped shared) whose memory file is `destDir/memory.bin`
   *   only writes device state: the RAM file already holds the memory. Its RAM
   *   file now belongs to the snapshot, so such a VM must not run on: it is
   *   left paused and should be closed.
   * - A restored VM (private RAM) writes its full state once to a stream and
   *   replays it into a fresh shared memory file in a helper QEMU, which then
   *   writes the small device-state file; the VM can be resumed.
   */
  async captureSnapshot(destDir: string, opts: CaptureOptions = {}): Promise<SnapshotFiles> {
    mkdirSync(destDir, { recursive: true, mode: 0o700 });
    const memDest = join(destDir, MEMORY_FILE);
    const stateDest = join(destDir, STATE_FILE);
    if (this.memoryShared && this.memoryFile !== memDest) {
      throw new VmmError(
        "SNAPSHOT_FAILED",
        `a booted VM can only be captured into the directory of its memory file (${this.memoryFile})`,
      );
    }
    if (opts.resume && this.memoryShared) {
      throw new VmmError("SNAPSHOT_FAILED", "a VM whose RAM file became the snapshot cannot be resumed");
    }
    try {
      await this.pause();
      if (this.memoryShared) {
        await migrateToHostFile(this.migrationEnd(), stateDest, true);
        sealMemoryFile(memDest, this.launch.confinement.identity);
      } else {
        await this.captureViaReplay(destDir);
      }
      writeMachineRecord(
        destDir,
        machineRecordFor(this.spec, {
          qemuVersion: this.qemuVersion,
          accel: this.accel,
          cpuModel: this.engine.cpuModel,
        }),
      );
      if (opts.resume) await this.resume();
      return openSnapshotFiles(destDir, { rootfs: this.spec.rootfs });
    } catch (err) {
      if (this.proc.hasExited)
        throw await this.proc.exitedAsError("QEMU exited during snapshot").catch((e) => e);
      throw err instanceof VmmError
        ? err
        : new VmmError("SNAPSHOT_FAILED", "snapshot capture failed", { cause: err });
    }
  }

  /** This VM as a migration endpoint (streams pass through the engine, see `state-stream`). */
  private migrationEnd(): MigrationEnd {
    return {
      qmp: this.qmp,
      qemuDir: this.runDir.qemuDir,
      qemuPath: (p) => this.launch.qemuPath(p),
      identity: this.launch.confinement.identity,
    };
  }

  private async captureViaReplay(destDir: string): Promise<void> {
    const memDest = join(destDir, MEMORY_FILE);
    rmSync(memDest, { force: true });
    const helper = await Machine.start(
      this.spec,
      // the helper never runs the guest; its network card gets a namespace with no way out
      {
        engine: this.engine,
        runDirParent: dirname(dirname(this.runDir.path)),
        confine: this.confineOpts,
        network: { allowInternetAccess: false, dns: false },
      },
      memDest,
      true,
      true,
    );
    try {
      await migrateBetween(this.migrationEnd(), helper.migrationEnd());
      await migrateToHostFile(helper.migrationEnd(), join(destDir, STATE_FILE), true);
      sealMemoryFile(memDest, helper.launch.confinement.identity);
    } finally {
      await helper.close();
    }
  }

  /**
   * Stops QEMU gracefully (QMP `quit`: QEMU flushes and exits), killing it if
   * it has not exited within `timeoutMs`, then cleans up like {@link close}.
   */
  async stop(timeoutMs = 5_000): Promise<void> {
    if (!this.closed && !this.proc.hasExited) {
      await this.qmp.execute("quit", {}, timeoutMs).catch(() => {});
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.proc.exited,
        new Promise((r) => {
          timer = setTimeout(r, timeoutMs);
        }),
      ]);
      clearTimeout(timer);
    }
    await this.close();
  }

  /** Kills QEMU at once and removes its run directory. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) {
      await this.proc.exited;
      return;
    }
    this.closed = true;
    this.qmp.close();
    await this.proc.kill();
    await this.net?.release();
    this.runDir.remove();
    if (!this.memoryShared && this.memoryFile.startsWith(this.runDir.path) && existsSync(this.memoryFile)) {
      rmSync(this.memoryFile, { force: true });
    }
  }

  /** Same as {@link Machine.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** A QEMU process started for a snapshot and waiting to load its device state. */
export class PreparedRestore {
  private used = false;
  constructor(
    /** The waiting machine (paused, no guest state yet). */
    readonly machine: Machine,
    /** The snapshot it will load. */
    readonly snapshot: SnapshotFiles,
    private readonly timeoutMs: number,
  ) {}

  /**
   * Loads the device state and starts the vCPUs. On timeout (`RESTORE_TIMEOUT`)
   * or failure (`RESTORE_FAILED`, with QEMU's exit as the cause when it died)
   * QEMU is killed. Can be called once.
   */
  async complete(): Promise<Machine> {
    if (this.used) throw new VmmError("VM_CLOSED", "prepared restore already used");
    this.used = true;
    const m = this.machine;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new VmmError(
              "RESTORE_TIMEOUT",
              `restore from ${this.snapshot.dir} did not complete within ${this.timeoutMs} ms`,
            ),
          ),
        this.timeoutMs,
      );
    });
    try {
      await Promise.race([
        (async () => {
          await m.qmp.execute("migrate-incoming", {
            uri: m.incomingUri ?? `file:${this.snapshot.stateFile}`,
          });
          await waitForIncoming(m.qmp, this.timeoutMs);
          await m.resume();
        })(),
        timeout,
      ]);
      return m;
    } catch (err) {
      await m.close();
      // A state file QEMU cannot load makes it exit or report the failure, whichever comes
      // first: both are RESTORE_FAILED (the exit, with its console tail, is the cause).
      if (err instanceof VmmError && err.code === "RESTORE_TIMEOUT") throw err;
      throw new VmmError(
        "RESTORE_FAILED",
        `restore from ${this.snapshot.dir} failed: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kills the waiting QEMU. Idempotent. */
  async close(): Promise<void> {
    this.used = true;
    await this.machine.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * The engine a snapshot must be restored with: the accelerator and CPU model
 * it was baked under (device state does not move between them). Asking for
 * another accelerator fails with `ACCEL_MISMATCH`; a hardware accelerator
 * that cannot run guests here (any more) fails with `ACCEL_UNAVAILABLE`.
 */
export async function engineForSnapshot(files: SnapshotFiles, accel?: AcceleratorRequest): Promise<Engine> {
  const record = files.record;
  const baked = record.accel as Accelerator;
  // a record without a CPU model predates it: baked under plain `max` (TCG) or `host`
  const cpuModel = record.cpuModel ?? (baked === "tcg" ? "max" : cpuModelFor(baked));
  const requested = requestedAccelerator(accel);
  if (requested !== "auto" && requested !== baked) {
    throw new VmmError(
      "ACCEL_MISMATCH",
      `this snapshot was baked under ${baked} (cpu ${cpuModel}) and cannot be restored under ${requested}; ` +
        `bake it again with accel '${requested}'`,
      { details: { baked, requested } },
    );
  }
  const req = qemuRequirements(files.spec, baked);
  if (baked === "tcg") return { accel: baked, cpuModel, qemu: findQemu(req) };
  if (baked !== "kvm" && baked !== "hvf") {
    throw new VmmError("ACCEL_MISMATCH", `snapshot names an unknown accelerator ${JSON.stringify(baked)}`);
  }
  const verdict = await acceleratorVerdict(baked, {
    arch: files.spec.arch ?? "x86_64",
    kernel: files.spec.kernel,
    initrd: files.spec.initrd,
    network: files.spec.network,
  });
  if (!verdict.ok) {
    throw new VmmError(
      "ACCEL_UNAVAILABLE",
      `this snapshot was baked under ${baked}, which cannot run guests on this host: ${verdict.reason}. ` +
        "Bake the image again here (auto mode then uses TCG)",
      { details: { verdict } },
    );
  }
  return { accel: baked, cpuModel, qemu: findQemu(req) };
}
