import { WorkerPool } from "@supermachine/pool";
import { CoreError } from "./errors.js";
import type { Image } from "./image.js";
import type { PoolOptions, PoolStats } from "./options.js";
import { intOption, networkOption } from "./validate.js";
import { Vm } from "./vm.js";
import { type RestoreRecipe, SpareRestore, VmWorker } from "./vm-worker.js";

/**
 * A pool of VMs restored from one image. `acquire()` hands out a ready VM
 * (from the idle queue when there is one), restoring new ones up to `max`;
 * released VMs are restored afresh in the background (`restoreOnRelease`).
 */
export class Pool {
  private constructor(
    private readonly workers: WorkerPool<VmWorker>,
    private readonly spare: SpareRestore,
    /** The image this pool restores. */
    readonly image: Image,
    private readonly lending: { maxLeaseMs: number | undefined; restoreOnRelease: boolean },
  ) {}

  /** @internal Use `image.pool()`. */
  static async create(image: Image, options: PoolOptions): Promise<Pool> {
    const min = intOption("min", options.min, 1, 0, 1024);
    const max = intOption("max", options.max, Math.max(1, min), 1, 1024);
    if (max < min) throw new CoreError("INVALID_OPTIONS", `max (${max}) must be >= min (${min})`);
    const acquireTimeoutMs = intOption("acquireTimeoutMs", options.acquireTimeoutMs, 60_000, 0, 2 ** 31 - 1);
    const restoreTimeoutMs = intOption("restoreTimeoutMs", options.restoreTimeoutMs, 30_000, 1, 2 ** 31 - 1);
    const idleTimeoutMs =
      options.idleTimeoutMs === undefined
        ? undefined
        : intOption("idleTimeoutMs", options.idleTimeoutMs, 0, 1, 2 ** 31 - 1);
    const maxLeaseMs =
      options.maxLeaseMs === undefined || options.maxLeaseMs === null
        ? undefined
        : intOption("maxLeaseMs", options.maxLeaseMs, 0, 1, 2 ** 31 - 1);
    const restoreOnRelease = options.restoreOnRelease ?? true;
    for (const [name, want, baked] of [
      ["memoryMib", options.memoryMib, image.memoryMib],
      ["vcpus", options.vcpus, image.vcpus],
    ] as const) {
      if (want !== undefined && want !== null && want !== baked) {
        throw new CoreError(
          "UNSUPPORTED_OVERRIDE",
          `${name} ${want} differs from the baked ${baked}: the QEMU engine restores guest RAM and vCPU state exactly as captured; bake with ${name}: ${want} instead`,
        );
      }
    }
    const network = networkOption(options.network, false);
    if (network.policy && !image.network.card) {
      throw new CoreError(
        "UNSUPPORTED_OVERRIDE",
        'this image was built with network: "none": its VMs have no network card for a network policy',
      );
    }
    const recipe: RestoreRecipe = {
      network: network.policy ?? image.network.policy,
      snapshotDir: image.snapshotPath,
      rootfsPath: image.rootfsPath,
      restoreTimeoutMs,
      startWorkload: image.metadata.trigger === "pre-exec" && image.metadata.workload.argv.length > 0,
    };
    const spare = new SpareRestore(recipe);
    const workers: WorkerPool<VmWorker> = new WorkerPool<VmWorker>(
      {
        create: async () => {
          const w = await VmWorker.create(recipe, await spare.take());
          // a VM whose QEMU dies (idle or lent) is dropped and replaced at once
          w.machine.exited.then(() => workers.reportDead(w));
          return w;
        },
        destroy: (w) => w.close(),
        isAlive: (w) => w.alive,
      },
      { min, max, acquireTimeoutMs, idleTimeoutMs, restoreOnRelease },
    );
    const pool = new Pool(workers, spare, image, { maxLeaseMs, restoreOnRelease });
    try {
      await workers.ready();
    } catch (err) {
      await pool.shutdown();
      throw err;
    }
    return pool;
  }

  /**
   * Waits for a ready VM (up to `acquireTimeoutMs`) and lends it to the
   * caller (for at most `maxLeaseMs` when set).
   */
  async acquire(): Promise<Vm> {
    const lease = await this.workers.acquire();
    const worker = lease.worker;
    const restoreOnRelease = this.lending.restoreOnRelease;
    return new Vm(
      worker,
      {
        image: this.image,
        // handed on as is: only if the guest still answers (a hostile holder may have wedged it)
        release: async () => {
          if (restoreOnRelease || (await worker.responsive())) await lease.release();
          else lease.reportDead();
        },
        discard: () => lease.reportDead(),
      },
      this.lending.maxLeaseMs,
    );
  }

  /** Pool counters; cheap enough to poll. */
  stats(): PoolStats {
    return this.workers.stats();
  }

  /** Rejects waiters and stops every VM. Idempotent. */
  async shutdown(): Promise<void> {
    await this.workers.shutdown();
    await this.spare.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }
}
