import { readFile, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { buildRootfs, platformForGuestArch, pullImage } from "@supermachine/oci";
import {
  computeFingerprint,
  defaultSnapshotsDir,
  type LoadedSnapshot,
  readSnapshotMetadata,
  resolveSnapshotDir,
  type SnapshotError,
  type SnapshotMetadata,
  SnapshotStore,
} from "@supermachine/snapshot";
import { chooseEngine, type GuestArch, resolveGuestAssets } from "@supermachine/vmm-native";
import { bakeSnapshot } from "./bake.js";
import { type ExtraFile, fingerprintFile, fingerprintInputs, resolveBuildOptions } from "./bake-plan.js";
import { CoreError } from "./errors.js";
import type {
  BuildOptions,
  FromSnapshotOptions,
  NetworkOptions,
  PoolOptions,
  PushOptions,
  PushResult,
} from "./options.js";
import { Pool } from "./pool.js";
import {
  artifactRef,
  pullPublishedSnapshot,
  pushLoadedSnapshot,
  snapshotRepositoryFor,
} from "./registry-snapshots.js";
import { isRootfsMissing, rebuildSnapshotRootfs } from "./rootfs-inputs.js";
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
    /** The root fs image on this host (found by its digest in the root fs store). */
    readonly rootfsPath: string,
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
    const share = options.registrySnapshots;
    if (share !== undefined && share !== false && share !== "pull" && share !== "pull-push") {
      throw new CoreError(
        "INVALID_OPTIONS",
        `registrySnapshots must be "pull", "pull-push" or false, got ${JSON.stringify(share)}`,
      );
    }
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
    let rootfsMissing: SnapshotError | undefined;
    const lookup = () =>
      store.lookup(key, {
        expectedAssets,
        onInvalid: (e) => {
          if (isRootfsMissing(e)) rootfsMissing = e;
        },
      });
    let cached = await lookup();
    if (!cached && rootfsMissing) {
      // a snapshot copied or moved here without its root fs: rebuild it from the layers (same bytes)
      const there = await readSnapshotMetadata(store.pathOf(store.nameFor(key))).catch(() => undefined);
      if (there?.fingerprint === fingerprint) {
        await rebuildSnapshotRootfs(there, { image, onProgress: progress }).catch(() => undefined); // not identical: bake again below
      }
      cached = await lookup();
    }
    if (cached) {
      progress({ phase: "cached", snapshotPath: cached.dir });
      return new Image(cached.metadata, cached.dir, cached.rootfsPath, network);
    }

    const workload = workloadFromImage(image.config, { cmd: options.cmd, env: options.env });
    const networkRecord = {
      card: network.card,
      ...(network.policy ? { policy: { ...network.policy } } : {}),
    };
    const repository = share ? snapshotRepositoryFor(image.reference, options.snapshotRepository) : undefined;
    if (repository) {
      const pulled = await pullPublishedSnapshot({
        store,
        key,
        image,
        repository,
        expected: {
          manifestDigest: image.manifestDigest,
          memoryMib: plan.memoryMib,
          vcpus: plan.vcpus,
          guestPort: plan.guestPort,
          listenerRequired: plan.listenerRequired,
          trigger: plan.trigger,
          ...(plan.warmupTag !== undefined ? { warmupTag: plan.warmupTag } : {}),
          extraFiles: extraFiles.map(fingerprintFile),
          workload,
          assets: expectedAssets,
          engine: { accel: engine.accel, cpuModel: engine.cpuModel, qemuVersion: engine.qemu.version },
          networkCard: network.card,
        },
        network: networkRecord,
        insecureRegistries: options.insecureRegistries,
        onProgress: progress,
      });
      if (pulled) return new Image(pulled.metadata, pulled.dir, pulled.rootfsPath, network);
    }

    const published = await store.publish(
      key,
      async (tmpDir) => {
        progress({ phase: "rootfs", message: "building root file system" });
        const rootfs = await buildRootfs(image, {
          onProgress: (m: string) => progress({ phase: "rootfs", message: m }),
        });
        const baked = await bakeSnapshot(tmpDir, {
          image,
          rootfsPath: rootfs.path,
          rootfsDigest: rootfs.digest,
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
          rootfs: { path: rootfs.path, digest: rootfs.digest, sha256: rootfs.sha256 },
          engine: baked,
          network: networkRecord,
        };
      },
      {
        expectedAssets,
        // another process is baking this image: say so, then use its snapshot
        onWait: () =>
          progress({ phase: "waiting", message: "waiting for another process baking this image" }),
      },
    );
    if (share === "pull-push" && repository && published.built) {
      // a bake that cannot be published is still a bake: say so and keep it
      await pushLoadedSnapshot(published, {
        repository: options.snapshotRepository,
        insecureRegistries: options.insecureRegistries,
        onProgress: progress,
      }).catch((err: unknown) =>
        progress({
          phase: "registry",
          action: "push-failed",
          ref: artifactRef(repository, fingerprint),
          message: `publishing the snapshot failed: ${(err as Error).message}`,
        }),
      );
    }
    return new Image(published.metadata, published.dir, published.rootfsPath, network);
  }

  /**
   * Publishes this image's snapshot to a registry as an OCI artifact (its
   * device state, guest memory without zero pages, metadata; the image
   * manifest it was baked from as subject), tagged by its fingerprint, so
   * that `Image.build` with `registrySnapshots` on other hosts pulls it
   * instead of baking. Default repository: the image's own. Uses the
   * credentials image pulls use (Docker config), asking for push access.
   */
  async push(options: PushOptions = {}): Promise<PushResult> {
    const loaded = await SnapshotStore.load(this.dir, { rootfsDirs: [dirname(this.rootfsPath)] });
    return pushLoadedSnapshot(loaded, options);
  }

  /**
   * Loads a baked image from its snapshot directory or its `restore.snap`
   * path, wherever it is: the snapshot names its root fs by digest and its
   * guest by build hashes, so a directory moved or copied from another path
   * or host loads as well. Validates the snapshot (files present and
   * complete) without booting. A root fs this host lacks is rebuilt from
   * the image's layers (pulled if needed) and checked byte for byte
   * (`SNAPSHOT_ROOTFS_UNAVAILABLE` when that cannot be done).
   */
  static async fromSnapshot(path: string, options: FromSnapshotOptions = {}): Promise<Image> {
    const load = () => SnapshotStore.load(path, { rootfsDirs: options.rootfsDirs });
    try {
      const loaded = await load();
      return new Image(loaded.metadata, loaded.dir, loaded.rootfsPath);
    } catch (err) {
      if (!isRootfsMissing(err) || options.rebuildRootfs === false) throw err;
      const metadata = await readSnapshotMetadata(await resolveSnapshotDir(path));
      await rebuildSnapshotRootfs(metadata, {
        insecureRegistries: options.insecureRegistries,
        onProgress: options.onProgress,
      });
      const loaded = await load();
      return new Image(loaded.metadata, loaded.dir, loaded.rootfsPath);
    }
  }

  /** @internal Wraps an already-validated snapshot (used by `Vm.snapshot`). */
  static fromLoaded(loaded: LoadedSnapshot): Image {
    return new Image(loaded.metadata, loaded.dir, loaded.rootfsPath);
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
