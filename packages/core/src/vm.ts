import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { SnapshotStore } from "@supermachine/snapshot";
import { CoreError } from "./errors.js";
import { runExec, stageFiles, toExecRequest } from "./exec.js";
import { ExecChild } from "./exec-child.js";
import { listenExecSocket } from "./exec-socket.js";
import { guarded } from "./guard.js";
import { Image } from "./image.js";
import type { ExecOptions, ExecOutput } from "./options.js";
import { TcpForwarder } from "./tcp-forwarder.js";
import type { UnixSocketServer } from "./unix-server.js";
import type { VmWorker } from "./vm-worker.js";
import { listenVsockProxy } from "./vsock-proxy.js";

/** What a `Vm` needs from the pool that lent it. */
export interface VmOwner {
  /** Returns the worker to the pool (idempotent per lease). */
  release(): Promise<void>;
  /** The image the pool restores from (for `snapshot`'s metadata). */
  readonly image: Image;
}

/**
 * A VM lent by a pool. Run commands (`exec`, `spawn`), move files
 * (`writeFile`, `readFile`), reach guest ports (`exposeTcp`, `vsockPath`),
 * capture it (`snapshot`), then `release()` it (or `await using`).
 * Every method rejects with `VM_RELEASED` after release.
 */
export class Vm {
  private released = false;
  private releasing: Promise<void> | undefined;
  private readonly forwarders = new Set<TcpForwarder>();
  private sockDir: string | undefined;
  private vsock: UnixSocketServer | undefined;
  private execSock: UnixSocketServer | undefined;

  /** @internal */
  constructor(
    private readonly worker: VmWorker,
    private readonly owner: VmOwner,
  ) {}

  private live(): VmWorker {
    if (this.released) throw new CoreError("VM_RELEASED", "this VM was released to its pool");
    return this.worker;
  }

  /** Runs a command and collects its output. `timeoutMs` kills the whole process tree. */
  async exec(options: ExecOptions): Promise<ExecOutput> {
    const w = this.live();
    return guarded(w, () => runExec(w.session, options));
  }

  /** Starts a command and returns a streaming handle. `timeoutMs` is not applied (use `signal`). */
  async spawn(options: ExecOptions): Promise<ExecChild> {
    const w = this.live();
    const req = toExecRequest(options, false);
    await stageFiles(w.session, options);
    const proc = w.session.exec(req);
    return new ExecChild(proc);
  }

  /** Writes a file (any size, streamed) in the guest, creating parent directories; mode 0o644. */
  async writeFile(path: string, bytes: Buffer, mode = 0o644): Promise<void> {
    const w = this.live();
    await guarded(w, () => w.session.writeFile(path, bytes, { mode, mkdirs: true }));
  }

  /** Reads a file (any size) from the guest. */
  async readFile(path: string): Promise<Buffer> {
    const w = this.live();
    return guarded(w, () => w.session.readFile(path));
  }

  /** Sends a signal to the image's workload (the process its ENTRYPOINT/CMD started). */
  async workloadSignal(signum: number): Promise<void> {
    const w = this.live();
    await guarded(w, () => w.session.signalWorkload(signum));
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
    return SnapshotStore.writeDerived(dir, base, async (tmp) => {
      await w.machine.captureSnapshot(tmp, { resume: true });
    }).then((loaded) => Image.fromLoaded(loaded.metadata, loaded.dir));
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
   * package README), for clients outside Node. Gone after release.
   */
  get execPath(): string {
    const w = this.live();
    this.execSock ??= listenExecSocket(join(this.socketDir(), "exec.sock"), w.session);
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

  /** Returns the VM to its pool. Idempotent. */
  release(): Promise<void> {
    this.releasing ??= (async () => {
      this.released = true;
      await Promise.all([...this.forwarders].map((f) => f.close()));
      this.forwarders.clear();
      await this.vsock?.close();
      await this.execSock?.close();
      if (this.sockDir) rmSync(this.sockDir, { recursive: true, force: true });
      await this.owner.release();
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
