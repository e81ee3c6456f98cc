import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import {
  buildRootfs,
  type GuestArchName,
  type PulledImage,
  parseReference,
  platformForGuestArch,
  pullImage,
} from "@supermachine/oci";
import { SnapshotError, type SnapshotMetadata } from "@supermachine/snapshot";
import { CoreError } from "./errors.js";
import type { BuildProgress } from "./options.js";

/** sha256 (hex) of a file, streamed. */
export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** The reference a snapshot's image is pulled by to rebuild its root fs: pinned to its manifest digest when it is a registry reference. */
export function pinnedRef(metadata: SnapshotMetadata): string {
  const ref = parseReference(metadata.image.ref);
  if (ref.transport === "docker") return `${ref.registry}/${ref.repository}@${metadata.image.manifestDigest}`;
  return metadata.image.ref;
}

/** Options of {@link rebuildSnapshotRootfs}. */
export interface RebuildRootfsOptions {
  /** The image, already pulled (skips the pull; its manifest must be the snapshot's). */
  image?: PulledImage;
  insecureRegistries?: string[];
  onProgress?: (p: BuildProgress) => void;
}

/**
 * Rebuilds a snapshot's root fs image from its image's layers (root fs
 * images are reproducible: the same layers and encoder give the same bytes)
 * into the default root fs store, and checks it is the one the snapshot was
 * baked with: same digest (layers and encoder settings) and same sha256 of
 * the bytes. Returns its path. Throws `SNAPSHOT_ROOTFS_UNAVAILABLE` when
 * the image cannot be pulled any more, now has another manifest, or builds
 * to other bytes (e.g. another e2fsprogs): bake the image again then.
 */
export async function rebuildSnapshotRootfs(
  metadata: SnapshotMetadata,
  options: RebuildRootfsOptions = {},
): Promise<string> {
  const progress = options.onProgress ?? (() => {});
  const unavailable = (why: string, cause?: unknown) =>
    new CoreError(
      "SNAPSHOT_ROOTFS_UNAVAILABLE",
      `the snapshot's root fs ${metadata.rootfs.digest} is not on this host and cannot be rebuilt: ${why}; bake the image again here`,
      { cause, details: { digest: metadata.rootfs.digest, ref: metadata.image.ref } },
    );
  let image = options.image;
  if (!image) {
    try {
      image = await pullImage(pinnedRef(metadata), {
        pullPolicy: "missing",
        // a multi-arch layout resolves to the platform the snapshot's guest runs
        platform: platformForGuestArch((metadata.engine.arch ?? "x86_64") as GuestArchName),
        insecureRegistries: options.insecureRegistries,
        onProgress: (e) =>
          progress({ phase: "pull", layer: e.digest, bytesDone: e.bytesDone, bytesTotal: e.bytesTotal }),
      });
    } catch (err) {
      throw unavailable(`pulling ${metadata.image.ref} failed (${(err as Error).message})`, err);
    }
  }
  if (image.manifestDigest !== metadata.image.manifestDigest) {
    throw unavailable(
      `${metadata.image.ref} is now manifest ${image.manifestDigest}, the snapshot was baked from ${metadata.image.manifestDigest}`,
    );
  }
  progress({ phase: "rootfs", message: `rebuilding root file system ${metadata.rootfs.digest}` });
  const rootfs = await buildRootfs(image, {
    onProgress: (m: string) => progress({ phase: "rootfs", message: m }),
  });
  if (rootfs.digest !== metadata.rootfs.digest) {
    throw unavailable(`the image's layers give root fs ${rootfs.digest}`);
  }
  // measured again here: this is the check that the rebuild is byte for byte the baked image
  const sha = await sha256OfFile(rootfs.path);
  if (sha !== metadata.rootfs.sha256 || rootfs.sizeBytes !== metadata.rootfs.size) {
    throw unavailable(
      `the rebuilt image differs from the baked one (sha256 ${sha}, ${rootfs.sizeBytes} bytes; baked ${metadata.rootfs.sha256}, ${metadata.rootfs.size} bytes)`,
    );
  }
  return rootfs.path;
}

/** True for the store's error saying a snapshot's root fs is not in any root fs store. */
export function isRootfsMissing(err: unknown): err is SnapshotError {
  return err instanceof SnapshotError && err.code === "SNAPSHOT_ROOTFS_MISSING";
}
