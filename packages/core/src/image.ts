import { readFile, stat } from "node:fs/promises";
import { buildRootfs, platformForGuestArch, pullImage } from "@supermachine/oci";
import {
  computeFingerprint,
  defaultSnapshotsDir,
  type SnapshotMetadata,
  SnapshotStore,
} from "@supermachine/snapshot";
import { chooseEngine, type GuestArch, resolveGuestAssets } from "@supermachine/vmm-native";
import { bakeSnapshot } from "./bake.js";
import { type ExtraFile, fingerprintFile, fingerprintInputs, resolveBuildOptions } from "./bake-plan.js";
import { CoreError } from "./errors.js";
import type { BuildOptions, NetworkOptions, PoolOptions } from "./options.js";
import { Pool } from "./pool.js";
import { type NetworkChoice, networkOption } from "./validate.js";
import { workloadFromImage } from "./workload.js";

/**
 * A baked image: a validated snapshot on disk that pools restore VMs from.
 * Get one with {@link Image.build} (bakes, or finds the cached bake) or
 * {@link Image.fromSnapshot}.
 */
export class Image {
  private constructor(
    /** The snapshot's metadata. */
    readonly metadata: SnapshotMetadata,
    private readonly dir: string,
    /** The `network` option of the `Image.build` call that returned this image (it wins over the metadata's policy). */
    private readonly requestedNetwork?: NetworkChoice,
  ) {}

  /**
   * Pulls `ref`, builds its root fs, boots it once and snapshots it, or
   * returns the cached snapshot when every input is unchanged (no pull, no
   * boot). Two processes building the same image at once bake it once.
   */
  static async build(options: BuildOptions): Promise<Image> {
    const plan = resolveBuildOptions(options);
    const progress = options.onProgress ?? (() => {});
    const network = networkOption(options.network, true);
    const assets = resolveGuestAssets(plan.arch);
    // chosen (and a hardware accelerator proven, once per host) before the
    // fingerprint: a bake under TCG and one under KVM are different snapshots
    const engine = await chooseEngine({
      arch: plan.arch,
      accel: plan.accel,
      kernel: assets.kernel,
      initrd: assets.initrd,
      network: network.card,
    });

    const image = await pullImage(options.ref, {
      pullPolicy: plan.pullPolicy,
      // the guest's platform from a multi-arch index (OCI_NO_MATCHING_PLATFORM lists the others)
      platform: platformForGuestArch(plan.arch),
      insecureRegistries: options.insecureRegistries,
      onProgress: (e) =>
        progress({ phase: "pull", layer: e.digest, bytesDone: e.bytesDone, bytesTotal: e.bytesTotal }),
    }).catch((err: unknown) => {
      const code = (err as { code?: string }).code;
      if (code === "OCI_NOT_FOUND" || code === "OCI_MANIFEST_UNKNOWN") {
        throw new CoreError(
          "BAKE_IMAGE_NOT_FOUND",
          `image ${options.ref} not found: ${(err as Error).message}`,
          { cause: err },
        );
      }
      throw err;
    });

    const extraFiles: ExtraFile[] = await Promise.all(
      (options.extraFiles ?? []).map(async (f) => {
        const [bytes, st] = await Promise.all([readFile(f.hostPath), stat(f.hostPath)]);
        return { ...f, bytes, mode: st.mode & 0o7777 };
      }),
    );
    const fingerprint = computeFingerprint({
      ...fingerprintInputs(plan, options, image.manifestDigest, extraFiles, assets, {
        accel: engine.accel,
        cpuModel: engine.cpuModel,
        qemuVersion: engine.qemu.version,
      }),
      networkCard: network.card,
    });
    const store = new SnapshotStore({ dir: options.snapshotsDir ?? defaultSnapshotsDir() });
    const key = { name: options.name, ref: image.reference, fingerprint };
    const expectedAssets = { kernelHash: assets.kernelHash, agentHash: assets.agentHash };
    const cached = await store.lookup(key, { expectedAssets });
    if (cached) {
      progress({ phase: "cached", snapshotPath: cached.dir });
      return new Image(cached.metadata, cached.dir, network);
    }

    const published = await store.publish(
      key,
      async (tmpDir) => {
        progress({ phase: "rootfs", message: "building root file system" });
        const rootfs = await buildRootfs(image, {
          onProgress: (m: string) => progress({ phase: "rootfs", message: m }),
        });
        const workload = workloadFromImage(image.config, { cmd: options.cmd, env: options.env });
        const baked = await bakeSnapshot(tmpDir, {
          image,
          rootfsPath: rootfs.path,
          assets,
          engine,
          memoryMib: plan.memoryMib,
          vcpus: plan.vcpus,
          guestPort: plan.guestPort,
          workload,
          trigger: plan.trigger,
          extraFiles,
          warmup: options.warmup,
          listenerTimeoutMs: plan.listenerTimeoutMs,
          hostname: "supermachine",
          onProgress: progress,
          network,
        });
        return {
          image: { ref: image.reference, manifestDigest: image.manifestDigest, config: image.config },
          memoryMib: plan.memoryMib,
          vcpus: plan.vcpus,
          guestPort: plan.guestPort,
          listenerRequired: plan.listenerRequired,
          trigger: plan.trigger,
          warmupTag: plan.warmupTag,
          extraFiles: extraFiles.map(fingerprintFile),
          workload,
          assets: expectedAssets,
          rootfs: { path: rootfs.path, digest: rootfs.digest, size: rootfs.sizeBytes },
          engine: baked,
          network: { card: network.card, ...(network.policy ? { policy: { ...network.policy } } : {}) },
        };
      },
      {
        expectedAssets,
        // another process is baking this image: say so, then use its snapshot
        onWait: () =>
          progress({ phase: "waiting", message: "waiting for another process baking this image" }),
      },
    );
    return new Image(published.metadata, published.dir, network);
  }

  /**
   * Loads a baked image from its snapshot directory or its `restore.snap`
   * path. Validates the snapshot (files present and complete) without booting.
   */
  static async fromSnapshot(path: string): Promise<Image> {
    const loaded = await SnapshotStore.load(path);
    return new Image(loaded.metadata, loaded.dir);
  }

  /** @internal Wraps already-validated snapshot metadata (used by `Vm.snapshot`). */
  static fromLoaded(metadata: SnapshotMetadata, dir: string): Image {
    return new Image(metadata, dir);
  }

  /** Creates a pool of VMs restored from this image; `min` VMs are started before it resolves. */
  async pool(options: PoolOptions = {}): Promise<Pool> {
    return Pool.create(this, options ?? {});
  }

  /** The snapshot directory backing this image. */
  get snapshotPath(): string {
    return this.dir;
  }

  /** Guest RAM (MiB) the image was baked with. */
  get memoryMib(): number {
    return this.metadata.memoryMib;
  }

  /**
   * The VMs' network: whether they have a network card, and the egress
   * policy pools use unless they give their own (undefined: the default,
   * public internet only). The policy is the one of the `Image.build` call
   * that returned this image, else the one recorded at bake time.
   */
  get network(): NetworkChoice {
    return (
      this.requestedNetwork ?? {
        card: this.metadata.network?.card ?? true,
        ...(this.metadata.network?.policy ? { policy: this.metadata.network.policy as NetworkOptions } : {}),
      }
    );
  }

  /** vCPUs the image was baked with. */
  get vcpus(): number {
    return this.metadata.vcpus;
  }

  /** The guest architecture the image was baked for (`x86_64` for snapshots from before aarch64 guests). */
  get arch(): GuestArch {
    return (this.metadata.engine.arch as GuestArch | undefined) ?? "x86_64";
  }
}
