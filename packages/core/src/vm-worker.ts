import { Machine, type NetworkPolicy, type PreparedRestore, warmTranslation } from "@supermachine/vmm-native";
import { type GuestSession, openGuestSession } from "./guest-session.js";

/** How a worker is restored: which snapshot, with what timeout, and whether to start the workload. */
export interface RestoreRecipe {
  snapshotDir: string;
  /** The snapshot's root fs on this host (the store found it by digest). */
  rootfsPath: string;
  restoreTimeoutMs: number;
  /** Send WORKLOAD_START after the handshake (pre-exec bakes). */
  startWorkload: boolean;
  /** Egress policy of the VMs' network card (undefined: the engine's default). */
  network?: NetworkPolicy;
}

/** One restored VM with its agent session: what a pool hands out. */
export class VmWorker {
  private closing: Promise<void> | undefined;
  private constructor(
    readonly machine: Machine,
    readonly session: GuestSession,
  ) {}

  /** Restores a VM (using a pre-started QEMU when given) and brings its agent and workload up. */
  static async create(recipe: RestoreRecipe, prepared?: PreparedRestore): Promise<VmWorker> {
    const fresh = () =>
      Machine.prepareRestore(recipe.snapshotDir, {
        timeoutMs: recipe.restoreTimeoutMs,
        network: recipe.network,
        rootfsPath: recipe.rootfsPath,
        byHashOnly: true,
      });
    let machine: Machine;
    if (prepared && !prepared.machine.hasExited) {
      // a pre-started QEMU that fails to load (e.g. killed meanwhile) is replaced by a fresh restore
      machine = await prepared.complete().catch(async () => (await fresh()).complete());
    } else {
      await prepared?.close();
      machine = await (await fresh()).complete();
    }
    try {
      const session = await openGuestSession(machine, recipe.restoreTimeoutMs);
      if (recipe.startWorkload) await session.startWorkload();
      // under TCG, pay the first execs' translation here, before the VM counts as ready
      await warmTranslation(machine, session);
      return new VmWorker(machine, session);
    } catch (err) {
      await machine.close();
      throw err;
    }
  }

  /**
   * True if the agent answers a ping within `timeoutMs` (a guest that is
   * wedged, e.g. its agent frozen or starved, does not).
   */
  async responsive(timeoutMs = 5_000): Promise<boolean> {
    if (!this.alive) return false;
    let timer: NodeJS.Timeout | undefined;
    const ok = await Promise.race([
      this.session.ping().then(
        () => true,
        () => false,
      ),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    return ok;
  }

  /** True while QEMU runs and the agent session is open. */
  get alive(): boolean {
    return !this.machine.isGone && !this.session.closed;
  }

  /** Ends the session and kills QEMU. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.session.close().catch(() => {});
      await this.machine.close();
    })();
    return this.closing;
  }
}

/**
 * Keeps one QEMU process started ahead of time in `-incoming defer` for a
 * snapshot, so a restore only loads device state. `take()` hands out the
 * spare (or undefined) and starts preparing the next one.
 */
export class SpareRestore {
  private spare: Promise<PreparedRestore | undefined> | undefined;
  private closed = false;

  constructor(private readonly recipe: RestoreRecipe) {}

  /** Takes the prepared process if one is ready and starts the next. */
  async take(): Promise<PreparedRestore | undefined> {
    const current = this.spare;
    this.spare = undefined;
    const got = current ? await current : undefined;
    this.refill();
    return got;
  }

  /** Starts preparing a spare if none is on the way. */
  refill(): void {
    if (this.closed || this.spare) return;
    this.spare = Machine.prepareRestore(this.recipe.snapshotDir, {
      timeoutMs: this.recipe.restoreTimeoutMs,
      network: this.recipe.network,
      rootfsPath: this.recipe.rootfsPath,
      byHashOnly: true,
    }).catch(() => undefined);
  }

  /** Kills the spare. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    const s = this.spare;
    this.spare = undefined;
    const p = s ? await s : undefined;
    await p?.close();
  }
}
