import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Every applet Debian's busybox-static provides, as /bin symlinks. */
const APPLETS = execFileSync("/bin/busybox", ["--list"], { encoding: "utf8" })
  .split("\n")
  .filter((a) => a && a !== "busybox");

/**
 * Makes a small ext4 root file system holding Debian's busybox-static (the
 * host's, or `busybox`: another build of the same version, e.g. arm64), for
 * engine tests that need a guest userland without pulling an image.
 */
export function makeBusyboxRootfs(dir: string, busybox = "/bin/busybox"): string {
  const root = join(dir, "rootfs");
  const image = join(dir, "rootfs.ext4");
  if (existsSync(image)) return image;
  rmSync(root, { recursive: true, force: true });
  for (const d of ["bin", "etc", "tmp", "proc", "sys", "dev", "root"])
    mkdirSync(join(root, d), { recursive: true });
  copyFileSync(busybox, join(root, "bin/busybox"));
  for (const a of APPLETS) symlinkSync("busybox", join(root, "bin", a));
  writeFileSync(
    join(root, "etc/passwd"),
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n",
  );
  writeFileSync(join(root, "etc/group"), "root:x:0:\nnogroup:x:65534:\n");
  execFileSync("mke2fs", ["-q", "-F", "-t", "ext4", "-O", "^has_journal", "-d", root, image, "64M"]);
  return image;
}
