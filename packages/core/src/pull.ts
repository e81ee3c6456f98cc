import { buildRootfs, formatPlatform, pullImage } from "@supermachine/oci";
import { CoreError } from "./errors.js";
import type { BuildProgress } from "./options.js";
import { enumOption } from "./validate.js";

/** Options of {@link pullRootfs}. */
export interface PullRootfsOptions {
  /** `"missing"` (default: use the cache when it has the image), `"always"` (resolve the tag again) or `"never"` (cache only). */
  pullPolicy?: "always" | "missing" | "never";
  /** Registries reachable over plain HTTP besides localhost. */
  insecureRegistries?: string[];
  /** Layer bytes (`phase: "pull"`) and root fs messages (`phase: "rootfs"`), as during `Image.build`. */
  onProgress?: (p: BuildProgress) => void;
}

/** One layer of a pulled image. */
export interface PulledLayer {
  /** Blob digest. */
  digest: string;
  /** Blob size in bytes (compressed as stored). */
  size: number;
}

/** What {@link pullRootfs} produced. */
export interface PulledRootfs {
  /** The normalized reference that was pulled. */
  ref: string;
  /** Digest of the platform manifest. */
  manifestDigest: string;
  /** The image's platform, e.g. `linux/amd64`. */
  platform: string;
  /** Layers, bottom first. */
  layers: PulledLayer[];
  /** Path of the root fs image, squashfs or ext4 (shared, content-addressed; do not modify it). */
  rootfsPath: string;
  /** Content address of the root fs image. */
  rootfsDigest: string;
  /** Size of the root fs image in bytes. */
  rootfsBytes: number;
  /** True when the root fs image already existed and nothing was built. */
  reused: boolean;
}

/**
 * Pulls an image into the blob cache and builds its root file system, the
 * first half of `Image.build` (no guest boots, no snapshot). A later
 * `Image.build` of the same reference then only boots and snapshots.
 */
export async function pullRootfs(ref: string, options: PullRootfsOptions = {}): Promise<PulledRootfs> {
  if (typeof ref !== "string" || !ref) {
    throw new CoreError("INVALID_OPTIONS", "pullRootfs needs a non-empty image reference");
  }
  const pullPolicy = enumOption("pullPolicy", options.pullPolicy, "missing", [
    "always",
    "missing",
    "never",
  ] as const);
  const progress = options.onProgress ?? (() => {});
  const image = await pullImage(ref, {
    pullPolicy,
    insecureRegistries: options.insecureRegistries,
    onProgress: (e) =>
      progress({ phase: "pull", layer: e.digest, bytesDone: e.bytesDone, bytesTotal: e.bytesTotal }),
  });
  progress({ phase: "rootfs", message: "building root file system" });
  const rootfs = await buildRootfs(image, { onProgress: (m) => progress({ phase: "rootfs", message: m }) });
  return {
    ref: image.reference,
    manifestDigest: image.manifestDigest,
    platform: formatPlatform(image.platform),
    layers: image.layers.map((l) => ({ digest: l.digest, size: l.size })),
    rootfsPath: rootfs.path,
    rootfsDigest: rootfs.digest,
    rootfsBytes: rootfs.sizeBytes,
    reused: rootfs.reused,
  };
}
