import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { Readable } from "node:stream";
import { isSupermachineError } from "@supermachine/errors";
import { SnapshotStore } from "@supermachine/snapshot";
import { CoreError } from "./errors.js";
import { DEFAULT_OUTPUT_CAP, MAX_OUTPUT_CAP, runExec, stageFiles, toExecRequest } from "./exec.js";
import { ExecChild } from "./exec-child.js";
import { listenExecSocket } from "./exec-socket.js";
import { Image } from "./image.js";
import type { ExecOptions, ExecOutput, LogsOptions, ReadFileOptions, WorkloadLogs } from "./options.js";
import { TcpForwarder } from "./tcp-forwarder.js";
import type { UnixSocketServer } from "./unix-server.js";
import { intOption } from "./validate.js";
import type { VmWorker } from "./vm-worker.js";
import { listenVsockProxy } from "./vsock-proxy.js";

/** What a `Vm` needs from the pool that lent it. */
export interface VmOwner {
  /** Returns the worker to the pool (idempotent per lease). */
  release(): Promise<void>;
  /**
   * Gives the worker up as unusable: the pool destroys it (killing QEMU) and
   * restores a replacement. Idempotent; a later `release` does nothing.
   */
  discard(): void;
  /** The image the pool restores from (for `snapshot`'s metadata). */
  readonly image: Image;
}

/**
 * A VM lent by a pool. Run commands (`exec`, `spawn`), move files
 * (`writeFile`, `readFile`), read the workload's output (`logs`), reach guest
 * ports (`exposeTcp`, `vsockPath`), capture it (`snapshot`), then `release()`
 * it (or `await using`). Every method rejects with `VM_RELEASED` after
 * release, and with `VM_UNRESPONSIVE` / `VM_LEASE_EXPIRED` once the VM was
 * taken away for those reasons.
 */
export class Vm {
  private released = false;
  private releasing: Promise<void> | undefined;
  /** Why this VM was taken away (killed as unresponsive, lease expired). */
  private failure: CoreError | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  private readonly forwarders = new Set<TcpForwarder>();
  private readonly readStreams = new Set<Readable>();
  private sockDir: string | undefined;
  private vsock: UnixSocketServer | undefined;
  private execSock: UnixSocketServer | undefined;

  /** @internal */
  constructor(
    private readonly worker: VmWorker,
    private readonly owner: VmOwner,
    maxLeaseMs?: number,
  ) {
    if (maxLeaseMs !== undefined) {
      this.leaseTimer = setTimeout(() => {
        this.takeAway(
          new CoreError(
            "VM_LEASE_EXPIRED",
            `this VM was held longer than the pool's maxLeaseMs (${maxLeaseMs} ms); it was destroyed and its pool replaces it`,
            { details: { maxLeaseMs } },
          ),
        );
      }, maxLeaseMs);
      this.leaseTimer.unref();
    }
  }

  private live(): VmWorker {
    if (this.failure) throw this.failed();
    if (this.released) throw new CoreError("VM_RELEASED", "this VM was released to its pool");
    return this.worker;
  }

  /** A fresh copy of the reason this VM was taken away. */
  private failed(cause?: unknown): CoreError {
    const f = this.failure as CoreError;
    return new CoreError(f.code, f.message, { cause: cause ?? f, details: f.details });
  }

  /**
   * Ends this lease because the VM cannot be used any more: every call,
   * pending or later, fails with `err`; the pool destroys the VM and
   * restores a replacement.
   */
  private takeAway(err: CoreError): void {
    if (this.failure || this.released) return;
    this.failure = err;
    clearTimeout(this.leaseTimer);
    this.owner.discard();
    void this.closeHostSide();
  }

  /**
   * Runs a VM operation. If it fails because the VM was taken away meanwhile,
   * throws why; if the agent session closed under it and QEMU is exiting,
   * reports the exit (`VM_EXITED`, with the exit status and console tail)
   * instead of the bare session error.
   */
  private async guarded<T>(w: VmWorker, op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      if (this.failure) throw err === this.failure ? err : this.failed(err);
      if (!isSupermachineError(err, "SESSION_CLOSED")) throw err;
      let timer: NodeJS.Timeout | undefined;
      const info = await Promise.race([
        w.machine.exited,
        new Promise<undefined>((r) => {
          timer = setTimeout(() => r(undefined), 1000);
        }),
      ]);
      clearTimeout(timer);
      if (this.failure) throw this.failed(err);
      if (!info) throw err;
      const exitErr = w.machine.exitError(info, "the VM's QEMU exited");
      (exitErr as { cause?: unknown }).cause = err;
      throw exitErr;
    }
  }

  /**
   * Runs a command and collects its output. `timeoutMs` kills the whole
   * process tree (`timedOut: true`); if the guest does not even answer then
   * (plus a grace period), the VM is killed and this throws `VM_UNRESPONSIVE`.
   * Each of stdout and stderr is capped at `maxOutputBytes` (default 64 MiB):
   * past it the command is killed and this throws `EXEC_OUTPUT_TOO_LARGE`.
   */
  async exec(options: ExecOptions): Promise<ExecOutput> {
    const w = this.live();
    return this.guarded(w, () =>
      runExec(w.session, options, { onUnresponsive: (err) => this.takeAway(err) }),
    );
  }

  /** Starts a command and returns a streaming handle. `timeoutMs` is not applied (use `signal`). */
  async spawn(options: ExecOptions): Promise<ExecChild> {
    const w = this.live();
    const req = toExecRequest(options, false);
    await this.guarded(w, () => stageFiles(w.session, options));
    const proc = w.session.exec(req);
    return new ExecChild(proc);
  }

  /** Writes a file (any size, streamed) in the guest, creating parent directories; mode 0o644. */
  async writeFile(path: string, bytes: Buffer, mode = 0o644): Promise<void> {
    const w = this.live();
    await this.guarded(w, () => w.session.writeFile(path, bytes, { mode, mkdirs: true }));
  }

  /**
   * Reads a file from the guest into memory, at most `maxBytes` (default
   * 64 MiB): a larger file throws `FILE_TOO_LARGE` before any of it is
   * transferred. Stream bigger files with {@link Vm.readFileStream}.
   */
  async readFile(path: string, options: ReadFileOptions = {}): Promise<Buffer> {
    const w = this.live();
    const max = intOption("maxBytes", options.maxBytes, DEFAULT_OUTPUT_CAP, 0, MAX_OUTPUT_CAP);
    return this.guarded(w, async () => {
      const stream = w.session.createReadStream(path);
      stream.on("error", () => {}); // surfaced through `info` and the iterator below
      const tooLarge = (size: number | undefined, cause?: unknown) =>
        new CoreError(
          "FILE_TOO_LARGE",
          `${path} is larger than readFile's maxBytes (${max}${size === undefined ? "" : `; it has ${size}`}); stream it with vm.readFileStream(path) or raise maxBytes`,
          { cause, details: { path, maxBytes: max, size } },
        );
      const info = await stream.info;
      if (info.size > max) {
        stream.destroy();
        throw tooLarge(info.size);
      }
      const parts: Buffer[] = [];
      let total = 0;
      try {
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          total += chunk.length;
          if (total > max) throw tooLarge(undefined); // the file grew while being read
          parts.push(chunk);
        }
      } finally {
        stream.destroy();
      }
      return Buffer.concat(parts, total);
    });
  }

  /**
   * Streams a file out of the guest with flow control (memory stays bounded
   * whatever its size): a Readable of its bytes, once the guest opened it
   * (a missing file rejects with `AGENT_NOT_FOUND`). Destroy it to stop early.
   * Later failures (the VM dies, the file cannot be read) reach your `error`
   * listeners and iterators; with none, they are dropped rather than
   * crashing the process.
   */
  async readFileStream(path: string): Promise<Readable> {
    const w = this.live();
    return this.guarded(w, async () => {
      const stream = w.session.createReadStream(path);
      stream.on("error", () => {});
      this.readStreams.add(stream);
      stream.once("close", () => this.readStreams.delete(stream));
      await stream.info;
      return stream;
    });
  }

  /**
   * The workload's recent output, like `docker logs`: the newest bytes (the
   * guest keeps 64 KiB) that the image's ENTRYPOINT/CMD and its children
   * wrote to stdout and stderr, interleaved as written, and how many bytes it
   * wrote in all. Read from the guest on demand; nothing is stored on the host.
   */
  async logs(options: LogsOptions = {}): Promise<WorkloadLogs> {
    const w = this.live();
    const maxBytes = intOption("maxBytes", options.maxBytes, 0, 0, MAX_OUTPUT_CAP);
    return this.guarded(w, async () => {
      const r = await w.session.workloadLogs({ maxBytes });
      return { output: r.tail, totalBytes: r.totalBytes };
    });
  }

  /** Sends a signal to the image's workload (the process its ENTRYPOINT/CMD started). */
  async workloadSignal(signum: number): Promise<void> {
    const w = this.live();
    await this.guarded(w, () => w.session.signalWorkload(signum));
  }

  /**
   * Captures this VM's current state as a new image in `destDir`; VMs of
   * pools made from it start in exactly this state. This VM keeps running.
   */
  async snapshot(destDir: string): Promise<Image> {
    const w = this.live();
    const dir = resolve(destDir);
    const image = this.owner.image;
    // the derived image records the network of the image it came from (card and policy)
    const { card, policy } = image.network;
    const base = { ...image.metadata, network: { card, ...(policy ? { policy: { ...policy } } : {}) } };
    return SnapshotStore.writeDerived(
      dir,
      base,
      async (tmp) => {
        await w.machine.captureSnapshot(tmp, { resume: true });
      },
      // the derived snapshot uses the same root fs, wherever this host keeps it
      { rootfsDirs: [dirname(image.rootfsPath)] },
    ).then((loaded) => Image.fromLoaded(loaded));
  }

  private socketDir(): string {
    this.sockDir ??= mkdtempSync(join(process.env.SUPERMACHINE_RUN_DIR ?? tmpdir(), "sm-vm-"));
    return this.sockDir;
  }

  /**
   * Path of a unix socket; each connection to it is a byte stream to the
   * workload's guest port (`guestPort` of the build). Gone after release.
   */
  get vsockPath(): string {
    const w = this.live();
    if (!this.vsock) {
      const port = this.owner.image.metadata.guestPort;
      this.vsock = listenVsockProxy(join(this.socketDir(), "vsock.sock"), () => w.session.tcpConnect(port));
    }
    return this.vsock.path;
  }

  /**
   * Path of a unix socket serving exec requests as JSON lines (see the
   * package README), for clients outside Node. Gone after release. Requests
   * go through {@link Vm.exec}, with its caps and host-side timeout.
   */
  get execPath(): string {
    this.live();
    this.execSock ??= listenExecSocket(join(this.socketDir(), "exec.sock"), (opts) => this.exec(opts));
    return this.execSock.path;
  }

  /** Forwards `127.0.0.1:hostPort` (0 = a free port) to `guestPort` in this VM. */
  async exposeTcp(hostPort: number, guestPort: number): Promise<TcpForwarder> {
    const w = this.live();
    for (const [n, v] of [
      ["hostPort", hostPort],
      ["guestPort", guestPort],
    ] as const) {
      if (!Number.isInteger(v) || v < 0 || v > 65535 || (n === "guestPort" && v === 0)) {
        throw new CoreError("INVALID_OPTIONS", `${n} must be a port number, got ${v}`);
      }
    }
    const fwd = await TcpForwarder.listen(hostPort, guestPort, () => w.session.tcpConnect(guestPort));
    this.forwarders.add(fwd);
    return fwd;
  }

  /** Closes what this lease opened on the host: forwarders, sockets, streams. */
  private async closeHostSide(): Promise<void> {
    await Promise.all([...this.forwarders].map((f) => f.close()));
    this.forwarders.clear();
    for (const s of this.readStreams) s.destroy();
    this.readStreams.clear();
    await this.vsock?.close();
    await this.execSock?.close();
    if (this.sockDir) rmSync(this.sockDir, { recursive: true, force: true });
  }

  /** Returns the VM to its pool. Idempotent. */
  release(): Promise<void> {
    this.releasing ??= (async () => {
      const takenAway = this.failure !== undefined;
      this.released = true;
      clearTimeout(this.leaseTimer);
      await this.closeHostSide();
      if (!takenAway) await this.owner.release();
    })();
    return this.releasing;
  }

  /** Same as {@link Vm.release}. */
  dispose(): Promise<void> {
    return this.release();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }
}
