// @supermachine/oci on its own: pull an image from a registry into its blob
// cache, build an ext4 root fs from it, and read its config.
import { openSync, readSync } from "node:fs";
import { buildRootfs, pullImage } from "@supermachine/oci";

const [ref, cacheDir] = process.argv.slice(2);
const image = await pullImage(ref, { cacheDir });
const rootfs = await buildRootfs(image, { cacheDir });
const sb = Buffer.alloc(2);
readSync(openSync(rootfs.path, "r"), sb, 0, 2, 1024 + 0x38); // ext4 superblock magic
console.log(
  JSON.stringify({
    manifestDigest: image.manifestDigest,
    cmd: image.config.cmd,
    ext4Magic: sb.readUInt16LE(0).toString(16),
    rootfsBytes: rootfs.sizeBytes,
  }),
);
