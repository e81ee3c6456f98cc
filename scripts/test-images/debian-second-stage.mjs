#!/usr/bin/env node
// Finishes an arm64 Debian root made by `debootstrap --foreign` (first stage:
// packages unpacked, nothing run) by running debootstrap's second stage where
// arm64 programs run: in an aarch64 guest of this project's own engine (QEMU
// virt; TCG on an x86_64 host: ~3.5 minutes here). No binfmt_misc or
// qemu-user registration on the host is needed. The configured root is
// streamed back out of the guest as a gzip tarball.
// Usage: node debian-second-stage.mjs FIRST_STAGE.tar.gz OUT.tar.gz
// Needs the packages built (npm run build) and the aarch64 guest
// (packages/vmm-native/guest/build-assets.sh aarch64).
import { execFileSync } from "node:child_process";
import { createWriteStream, existsSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error("usage: debian-second-stage.mjs FIRST_STAGE.tar.gz OUT.tar.gz");
  process.exit(2);
}
const core = join(here, "..", "..", "packages", "core", "dist", "index.js");
if (!existsSync(core)) {
  console.error(`debian-second-stage: ${core} is missing; run \`npm run build\` first`);
  process.exit(1);
}
const work = mkdtempSync(join(dirname(output), ".second-stage."));
// The first stage's blobs and root fs go to a cache of their own, removed at the end (they
// are only an intermediate); the guest is the one the user cache or the package names.
const userCache = process.env.SUPERMACHINE_CACHE ?? join(homedir(), ".cache", "supermachine");
const guestManifest = join(userCache, "guest-assets-aarch64.json");
const GUEST_VAR = "SUPERMACHINE_GUEST_ASSETS_AARCH64";
if (!process.env[GUEST_VAR] && existsSync(guestManifest)) process.env[GUEST_VAR] = guestManifest;
process.env.SUPERMACHINE_CACHE = join(work, "cache");
const { Image } = await import(core);

try {
  // the first stage as a one-layer arm64 OCI layout the engine can bake
  execFileSync(process.execPath, [join(here, "build-images.mjs"), work, `debian-arm64=${input}`], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  const image = await Image.build({
    ref: `oci:${join(work, "debian-arm64")}:bookworm`,
    arch: "aarch64",
    // the overlay's upper layer is guest RAM: the second stage rewrites ~150 MB
    memoryMib: 1024,
    network: "none",
    snapshotsDir: join(work, "snapshots"),
  });
  // (Node 20 has no `await using` in plain .mjs)
  const pool = await image.pool({ min: 1, max: 1 });
  try {
    const vm = await pool.acquire();
    const t0 = Date.now();
    const r = await vm.exec({ argv: ["/debootstrap/debootstrap", "--second-stage"], timeoutMs: 1_800_000 });
    if (r.exitCode !== 0) {
      const log = await vm.readFile("/debootstrap/debootstrap.log").catch(() => Buffer.from(""));
      throw new Error(
        `second stage failed (exit ${r.exitCode}): ${r.stderr.toString().slice(-2000)}\n${log.toString().slice(-3000)}`,
      );
    }
    console.error(
      `[test-images] debootstrap second stage in an aarch64 guest: ${Math.round((Date.now() - t0) / 1000)} s`,
    );
    // the root, without what a container runtime provides itself or the build left
    const tar = await vm.spawn({
      argv: [
        "tar",
        "--one-file-system",
        "--numeric-owner",
        "--sort=name",
        "--exclude=./etc/hosts",
        "--exclude=./etc/hostname",
        "--exclude=./etc/resolv.conf",
        "--exclude=./var/cache/apt/archives/*.deb",
        "--exclude=./tmp/*",
        "--exclude=./run/*",
        "-C",
        "/",
        "-czf",
        "-",
        ".",
      ],
    });
    const tmp = `${output}.${process.pid}.tmp`;
    const out = createWriteStream(tmp);
    for (;;) {
      const chunk = await tar.readStdout();
      if (chunk.length === 0) break;
      if (!out.write(chunk)) await new Promise((r) => out.once("drain", r));
    }
    await new Promise((r, j) => out.end((e) => (e ? j(e) : r())));
    const done = await tar.wait();
    if (done.exitCode !== 0) throw new Error(`tar in the guest exited ${done.exitCode}`);
    renameSync(tmp, output);
  } finally {
    await pool.shutdown();
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
