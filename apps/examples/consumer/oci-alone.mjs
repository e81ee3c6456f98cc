// @supermachine/oci on its own: pull an image from a registry into its blob
// cache, build a root fs from it (squashfs by default, ext4 on request), and
// read its config.
import { openSync, readSync } from "node:fs";
import { buildRootfs, pullImage } from "@supermachine/oci";

const [ref, cacheDir] = process.argv.slice(2);
const image = await pullImage(ref, { cacheDir });
const rootfs = await buildRootfs(image, { cacheDir });
const ext4 = await buildRootfs(image, { cacheDir, format: "ext4" });
const magic = Buffer.alloc(4);
readSync(openSync(rootfs.path, "r"), magic, 0, 4, 0); // squashfs superblock magic
const sb = Buffer.alloc(2);
readSync(openSync(ext4.path, "r"), sb, 0, 2, 1024 + 0x38); // ext4 superblock magic
console.log(
  JSON.stringify({
    manifestDigest: image.manifestDigest,
    cmd: image.config.cmd,
    format: rootfs.format,
    squashfsMagic: magic.toString("latin1"),
    ext4Magic: sb.readUInt16LE(0).toString(16),
    rootfsBytes: rootfs.sizeBytes,
  }),
);
