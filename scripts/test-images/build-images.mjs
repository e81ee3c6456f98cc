#!/usr/bin/env node
// Builds the test OCI layouts: node build-images.mjs OUTDIR [busybox|busybox:DIRNAME|multilayer|multiarch|
//   debian=ROOTFS.tar.gz|debian-arm64=ROOTFS.tar.gz|busybox-multiarch=ARM64_BUSYBOX ...]
// Each layout is rebuilt only when its inputs changed (a .stamp file holds their hash).
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { compress, LayoutWriter, makeTar, sha256 } from "./layout.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const [outDir, ...wanted] = process.argv.slice(2);
if (!outDir) {
  console.error(
    "usage: build-images.mjs OUTDIR [busybox] [multilayer] [multiarch] [debian=ROOTFS.tar.gz] [busybox-multiarch=ARM64_BUSYBOX]",
  );
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });
const MTIME = "@1704067200";
const amd64 = { os: "linux", architecture: "amd64" };
const scriptHash = createHash("sha256")
  .update(readFileSync(join(here, "build-images.mjs")))
  .update(readFileSync(join(here, "layout.mjs")))
  .digest("hex");

/** True when every blob the layout's index reaches (manifests, configs, layers) is present with its size. */
function layoutComplete(dir) {
  const blobPath = (d) => join(dir, "blobs", "sha256", d.digest.slice("sha256:".length));
  const present = (d) => existsSync(blobPath(d)) && statSync(blobPath(d)).size === d.size;
  const walk = (index) =>
    index.manifests.every((m) => {
      if (!present(m)) return false;
      const doc = JSON.parse(readFileSync(blobPath(m), "utf8"));
      if (doc.manifests) return walk(doc);
      return present(doc.config) && doc.layers.every(present);
    });
  try {
    return walk(JSON.parse(readFileSync(join(dir, "index.json"), "utf8")));
  } catch {
    return false;
  }
}

/**
 * Builds layout `name` unless its `.stamp` holds the hash of this script and
 * `inputs` and every blob is there. Builds into a temporary directory that
 * replaces the old layout only when complete.
 */
function stamped(name, inputs, build) {
  const dir = join(outDir, name);
  const key = createHash("sha256").update(scriptHash).update(JSON.stringify(inputs)).digest("hex");
  const stamp = join(dir, ".stamp");
  if (existsSync(stamp) && readFileSync(stamp, "utf8") === key && layoutComplete(dir)) return dir;
  const tmp = join(outDir, `.${name}.tmp.${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  build(tmp);
  if (!layoutComplete(tmp)) throw new Error(`building ${name} left an incomplete layout`);
  writeFileSync(join(tmp, ".stamp"), key);
  const old = join(outDir, `.${name}.old.${process.pid}`);
  if (existsSync(dir)) renameSync(dir, old);
  renameSync(tmp, dir);
  rmSync(old, { recursive: true, force: true });
  console.error(`[test-images] built ${name}`);
  return dir;
}

/** A reproducible tar of a staging directory (GNU format: long names use ././@LongLink). */
function tarDir(dir) {
  return execFileSync(
    "tar",
    [
      "--sort=name",
      `--mtime=${MTIME}`,
      "--numeric-owner",
      "--format=gnu",
      "--xattrs",
      "--xattrs-include=*",
      // with xattrs GNU tar writes PAX headers; their atime/ctime would make every build differ
      "--pax-option=delete=atime,delete=ctime",
      "-C",
      dir,
      "-cf",
      "-",
      ".",
    ],
    { maxBuffer: 1 << 30 },
  );
}

/**
 * The busybox root: Debian's busybox-static, applet symlinks, passwd with root
 * and www. `binary` is the busybox to install (default the host's); its
 * applet list is the host's, which build.sh checks is the same Debian version.
 */
function busyboxTar(binary = "/bin/busybox") {
  const root = join(tmpdir(), `sm-busybox-${process.pid}`);
  rmSync(root, { recursive: true, force: true });
  for (const d of [
    "bin",
    "sbin",
    "usr/bin",
    "usr/sbin",
    "etc",
    "root",
    "home/www",
    "tmp",
    "proc",
    "sys",
    "dev",
    "run",
    "var/tmp",
    "srv",
  ]) {
    mkdirSync(join(root, d), { recursive: true });
  }
  execFileSync("cp", [binary, join(root, "bin/busybox")]);
  for (const applet of execFileSync("/bin/busybox", ["--list-full"]).toString().split("\n").filter(Boolean)) {
    if (applet === "bin/busybox") continue;
    const p = join(root, applet);
    mkdirSync(dirname(p), { recursive: true });
    if (!existsSync(p)) symlinkSync("/bin/busybox", p);
  }
  writeFileSync(
    join(root, "etc/passwd"),
    "root:x:0:0:root:/root:/bin/sh\nwww:x:1000:1000:www:/home/www:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
  );
  writeFileSync(join(root, "etc/group"), "root:x:0:\nwww:x:1000:\nnogroup:x:65534:\n");
  writeFileSync(join(root, "etc/hostname"), "supermachine\n");
  writeFileSync(join(root, "etc/hosts"), "127.0.0.1 localhost\n");
  chmodSync(join(root, "tmp"), 0o1777);
  chmodSync(join(root, "var/tmp"), 0o1777);
  chmodSync(join(root, "root"), 0o700);
  chownSync(join(root, "home/www"), 1000, 1000);
  const tar = tarDir(root);
  rmSync(root, { recursive: true, force: true });
  return tar;
}

const busyboxConfig = {
  Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
  Cmd: ["/bin/sh"],
  WorkingDir: "/",
};
const busyboxInputs = { busybox: sha256(readFileSync("/bin/busybox")), config: busyboxConfig };

function buildBusybox(name = "busybox") {
  return stamped(name, busyboxInputs, (dir) => {
    const w = new LayoutWriter(dir);
    const layer = compress(busyboxTar(), "gzip");
    const desc = w.image({ layers: [layer], config: busyboxConfig, platform: amd64 });
    w.finish([{ desc, tag: "latest" }]);
  });
}

const CAP_NET_BIND_SERVICE = Buffer.from([
  1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
]).toString("latin1");
const LONG_DIR = `deep/${"d".repeat(60)}/${"e".repeat(60)}`;
const LONG_NAME = `${LONG_DIR}/${"f".repeat(90)}.txt`;

async function multilayerLayers() {
  const dir = (name, extra = {}) => ({ name, type: "directory", ...extra });
  const l1 = await makeTar([
    dir("etc"),
    dir("etc/app"),
    { name: "etc/app/a.conf", data: "a=1\n" },
    { name: "etc/app/b.conf", data: "b=1\n" },
    dir("data"),
    { name: "data/keep.txt", data: "keep\n" },
    { name: "data/remove.txt", data: "remove me\n" },
    dir("opq", { mode: 0o750 }),
    { name: "opq/old1", data: "old1\n" },
    dir("opq/sub"),
    { name: "opq/sub/old3", data: "old3\n" },
    dir("shared"),
    { name: "shared/original", data: "hardlink target\n", mode: 0o640, uid: 1000, gid: 1000 },
    dir("usr"),
    dir("usr/lib"),
    { name: "lib", type: "symlink", linkname: "usr/lib" },
    dir("dev"),
    { name: "dev/null", type: "character-device", mode: 0o666, devmajor: 1, devminor: 3 },
    { name: "dev/sda", type: "block-device", mode: 0o660, gid: 6, devmajor: 8, devminor: 0 },
    { name: "dev/pipe", type: "fifo", mode: 0o600 },
    dir("bin"),
    {
      name: "bin/ping",
      data: "#!/bin/sh\necho ping\n",
      mode: 0o755,
      pax: { "SCHILY.xattr.security.capability": CAP_NET_BIND_SERVICE },
    },
    { name: "bin/su", data: "#!/bin/sh\n", mode: 0o4755 },
    dir("home"),
    dir("home/www", { mode: 0o700, uid: 1000, gid: 1000 }),
    dir("srv"),
  ]);
  const l2 = await makeTar([
    { name: "data/.wh.remove.txt", data: "" },
    dir("opq", { mode: 0o755 }),
    { name: "opq/.wh..wh..opq", data: "" },
    { name: "opq/new", data: "new\n" },
    { name: "shared/link-to-original", type: "link", linkname: "shared/original" },
    { name: "lib/libfoo.so", data: "ELF?\n", mode: 0o755 },
    { name: "etc/app/a.conf", data: "a=2\n" },
    dir("deep"),
    dir(`deep/${"d".repeat(60)}`),
    dir(LONG_DIR),
    { name: LONG_NAME, data: "long name via PAX\n" },
  ]);
  // Layer 3 comes from GNU tar: GNU long names (././@LongLink), a whiteout and an in-layer hardlink.
  const root = join(tmpdir(), `sm-ml3-${process.pid}`);
  rmSync(root, { recursive: true, force: true });
  const gnuLong = `gnu/${"g".repeat(120)}/${"h".repeat(110)}`;
  mkdirSync(join(root, dirname(gnuLong)), { recursive: true });
  writeFileSync(join(root, gnuLong), "long name via GNU\n");
  mkdirSync(join(root, "etc/app"), { recursive: true });
  writeFileSync(join(root, "etc/app/.wh.b.conf"), "");
  writeFileSync(join(root, "etc/app/c.conf"), "c=3\n");
  execFileSync("ln", [join(root, "etc/app/c.conf"), join(root, "etc/app/c-link.conf")]);
  const l3 = tarDir(root);
  rmSync(root, { recursive: true, force: true });
  return [compress(l1, "gzip"), compress(l2, "zstd"), compress(l3, "none")];
}

const multilayerConfig = {
  Entrypoint: ["/bin/app"],
  Cmd: ["--serve"],
  Env: ["PATH=/usr/bin:/bin", "APP_MODE=test"],
  WorkingDir: "/srv",
  User: "www",
  ExposedPorts: { "8080/tcp": {} },
  StopSignal: "SIGINT",
  Labels: { "org.example.name": "multilayer" },
};

async function buildMultilayer() {
  const layers = await multilayerLayers();
  return stamped("multilayer", { diffIds: layers.map((l) => l.diffId), multilayerConfig }, (dir) => {
    const w = new LayoutWriter(dir);
    const desc = w.image({ layers, config: multilayerConfig, platform: amd64 });
    w.finish([{ desc, tag: "latest" }]);
  });
}

async function buildMultiarch() {
  const base = compress(busyboxTar(), "gzip");
  const arches = [
    amd64,
    { os: "linux", architecture: "arm64", variant: "v8" },
    { os: "linux", architecture: "arm", variant: "v7" },
  ];
  const archLayers = await Promise.all(
    arches.map(async (p) =>
      compress(
        await makeTar([
          { name: "etc", type: "directory" },
          { name: "etc/arch", data: `${p.architecture}${p.variant ? `/${p.variant}` : ""}\n` },
        ]),
        "gzip",
      ),
    ),
  );
  return stamped("multiarch", { base: base.diffId, arch: archLayers.map((l) => l.diffId) }, (dir) => {
    const w = new LayoutWriter(dir);
    const manifests = arches.map((platform, i) =>
      w.image({ layers: [base, archLayers[i]], config: busyboxConfig, platform }),
    );
    const idx = w.index(manifests);
    w.finish([{ desc: idx, tag: "latest" }]);
  });
}

/**
 * A real multi-arch busybox: an index with linux/amd64 (the host's busybox)
 * and linux/arm64/v8 (Debian's arm64 busybox-static), each runnable in a guest
 * of its architecture, each with /etc/arch naming its platform.
 */
async function buildBusyboxMultiarch(arm64Busybox) {
  const arm64 = { os: "linux", architecture: "arm64", variant: "v8" };
  const entries = [
    { platform: amd64, binary: "/bin/busybox" },
    { platform: arm64, binary: arm64Busybox },
  ];
  const inputs = entries.map((e) => ({ platform: e.platform, busybox: sha256(readFileSync(e.binary)) }));
  const markers = await Promise.all(
    entries.map(async ({ platform: p }) =>
      compress(
        await makeTar([
          { name: "etc", type: "directory" },
          { name: "etc/arch", data: `${p.architecture}${p.variant ? `/${p.variant}` : ""}\n` },
        ]),
        "gzip",
      ),
    ),
  );
  return stamped("busybox-multiarch", { inputs, config: busyboxConfig }, (dir) => {
    const w = new LayoutWriter(dir);
    const manifests = entries.map((e, i) =>
      w.image({
        layers: [compress(busyboxTar(e.binary), "gzip"), markers[i]],
        config: busyboxConfig,
        platform: e.platform,
      }),
    );
    w.finish([{ desc: w.index(manifests), tag: "latest" }]);
  });
}

function buildDebian(rootfsTarGz, name = "debian", platform = amd64) {
  const diffId = `sha256:${
    execFileSync("sh", ["-c", `gzip -dc '${rootfsTarGz}' | sha256sum`])
      .toString()
      .split(" ")[0]
  }`;
  // (the amd64 layout's stamp inputs are unchanged from before arm64 existed)
  const inputs = name === "debian" ? { diffId } : { diffId, platform };
  return stamped(name, inputs, (dir) => {
    const w = new LayoutWriter(dir);
    const config = {
      Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
      Cmd: ["/bin/bash"],
    };
    const desc = w.image({
      layers: [{ path: rootfsTarGz, compression: "gzip", diffId }],
      config,
      platform,
    });
    w.finish([{ desc, tag: "bookworm" }]);
  });
}

const all = wanted.length ? wanted : ["busybox", "multilayer", "multiarch"];
for (const name of all) {
  if (name === "busybox") console.log(buildBusybox());
  else if (name.startsWith("busybox:")) console.log(buildBusybox(name.slice("busybox:".length)));
  else if (name === "multilayer") console.log(await buildMultilayer());
  else if (name === "multiarch") console.log(await buildMultiarch());
  else if (name.startsWith("debian=")) console.log(buildDebian(name.slice("debian=".length)));
  else if (name.startsWith("debian-arm64="))
    console.log(
      buildDebian(name.slice("debian-arm64=".length), "debian-arm64", {
        os: "linux",
        architecture: "arm64",
        variant: "v8",
      }),
    );
  else if (name.startsWith("busybox-multiarch="))
    console.log(await buildBusyboxMultiarch(name.slice("busybox-multiarch=".length)));
  else throw new Error(`unknown image ${name}`);
}
