import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { VmmError } from "./errors.js";
import { type GuestArch, hostGuestArch } from "./machine-model.js";

/** Where a guest came from, in the order they are tried. */
export type GuestAssetsSource = "override" | "package" | "cache";

/** The guest kernel and init/agent a VM boots, with their build hashes. */
export interface GuestAssets {
  /** Guest architecture the kernel and agent are built for. */
  arch: GuestArch;
  /** Path of the kernel image (bzImage on x86_64, Image on aarch64). */
  kernel: string;
  /** Content hash of the kernel build inputs. */
  kernelHash: string;
  /** Path of the initramfs holding `/init` (the agent). */
  initrd: string;
  /** Content hash of the agent build inputs. */
  agentHash: string;
  /** Which of the places below it was found in. */
  source: GuestAssetsSource;
  /** The manifest file it was read from. */
  manifest: string;
}

/** The npm package that ships the x86_64 guest. */
export const GUEST_PACKAGE = "@supermachine/guest-x86_64";

/** The npm package that ships a guest architecture's kernel and agent. */
export function guestPackageName(arch: GuestArch): string {
  return `@supermachine/guest-${arch}`;
}

/** The environment variable naming an explicit guest manifest for `arch`. */
export function guestAssetsEnvVar(arch: GuestArch): string {
  return arch === "x86_64" ? "SUPERMACHINE_GUEST_ASSETS" : `SUPERMACHINE_GUEST_ASSETS_${arch.toUpperCase()}`;
}

/** The user-cache manifest `guest/build-assets.sh` writes for `arch`. */
export function guestCacheManifest(arch: GuestArch): string {
  return join(cacheRoot(), arch === "x86_64" ? "guest-assets.json" : `guest-assets-${arch}.json`);
}

/** Root of supermachine's caches: `$SUPERMACHINE_CACHE` or `~/.cache/supermachine`. */
export function cacheRoot(): string {
  return process.env.SUPERMACHINE_CACHE ?? join(homedir(), ".cache", "supermachine");
}

/** The exact fix for a missing guest of `arch`, for error messages and `doctor`. */
export function guestAssetsFix(arch: GuestArch): string {
  if (arch === "x86_64") return GUEST_ASSETS_FIX;
  return (
    `install the guest package (\`npm install ${guestPackageName(arch)}\`), or build it from the ` +
    `supermachine repository (\`bash packages/vmm-native/guest/build-assets.sh ${arch}\`); ` +
    "`npx supermachine doctor` shows what was looked at"
  );
}

/** The exact fix for a missing x86_64 guest, for error messages and `doctor`. */
export const GUEST_ASSETS_FIX =
  `install the guest package (\`npm install ${GUEST_PACKAGE}\`; it is an optional dependency of ` +
  "@supermachine/vmm-native, so a plain install brings it unless optional dependencies are omitted), " +
  "or build it from the supermachine repository (`bash packages/vmm-native/guest/build-assets.sh`); " +
  "`npx supermachine doctor` shows what was looked at";

/**
 * Reads one manifest: the guest package's (`{kernel, initrd}` relative to it,
 * plus hashes) or the build cache's (absolute paths). Undefined when absent.
 */
function readManifest(manifest: string, source: GuestAssetsSource, arch: GuestArch): GuestAssets | undefined {
  if (!existsSync(manifest)) return undefined;
  const GUEST_ASSETS_FIX = guestAssetsFix(arch);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(manifest, "utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new VmmError(
      "GUEST_ASSETS_MISSING",
      `guest manifest ${manifest} is not valid JSON; ${GUEST_ASSETS_FIX}`,
      {
        cause: err,
      },
    );
  }
  const at = (v: unknown) => {
    const p = String(v ?? "");
    return isAbsolute(p) ? p : resolve(dirname(manifest), p);
  };
  if (raw.arch !== undefined && raw.arch !== arch) {
    throw new VmmError(
      "GUEST_ASSETS_MISSING",
      `guest manifest ${manifest} is for ${String(raw.arch)}, not ${arch}; ${GUEST_ASSETS_FIX}`,
    );
  }
  const assets: GuestAssets = {
    arch,
    kernel: at(raw.kernel),
    kernelHash: String(raw.kernelHash ?? ""),
    initrd: at(raw.initrd),
    agentHash: String(raw.agentHash ?? ""),
    source,
    manifest,
  };
  for (const key of ["kernel", "initrd"] as const) {
    if (!raw[key] || !existsSync(assets[key])) {
      throw new VmmError(
        "GUEST_ASSETS_MISSING",
        `guest ${key} ${assets[key]} listed in ${manifest} does not exist; ${GUEST_ASSETS_FIX}`,
      );
    }
  }
  if (!assets.kernelHash || !assets.agentHash) {
    throw new VmmError(
      "GUEST_ASSETS_MISSING",
      `guest manifest ${manifest} lacks kernelHash/agentHash; ${GUEST_ASSETS_FIX}`,
    );
  }
  return assets;
}

/** The installed guest package's manifest path, or undefined when the package is not installed. */
export function guestPackageManifest(arch: GuestArch = hostGuestArch()): string | undefined {
  try {
    const req = createRequire(import.meta.url);
    return join(dirname(req.resolve(`${guestPackageName(arch)}/package.json`)), "assets", "manifest.json");
  } catch {
    return undefined;
  }
}

/** Every place {@link resolveGuestAssets} looks for `arch`'s guest, in order. */
export function guestAssetsCandidates(
  arch: GuestArch = hostGuestArch(),
): Array<{ source: GuestAssetsSource; manifest: string }> {
  const out: Array<{ source: GuestAssetsSource; manifest: string }> = [];
  const override = process.env[guestAssetsEnvVar(arch)];
  if (override) return [{ source: "override", manifest: override }];
  const pkg = guestPackageManifest(arch);
  if (pkg) out.push({ source: "package", manifest: pkg });
  out.push({ source: "cache", manifest: guestCacheManifest(arch) });
  return out;
}

/**
 * Finds the guest kernel and agent of `arch` (default: the host's): an
 * explicit manifest (`SUPERMACHINE_GUEST_ASSETS` for x86_64,
 * `SUPERMACHINE_GUEST_ASSETS_AARCH64` for aarch64), else the installed
 * `@supermachine/guest-<arch>` package, else the user cache written by
 * `guest/build-assets.sh [arch]`. Throws `GUEST_ASSETS_MISSING` naming what
 * was looked at and the exact fix.
 */
export function resolveGuestAssets(arch: GuestArch = hostGuestArch()): GuestAssets {
  const tried = guestAssetsCandidates(arch);
  for (const c of tried) {
    const found = readManifest(c.manifest, c.source, arch);
    if (found) return found;
  }
  throw new VmmError(
    "GUEST_ASSETS_MISSING",
    `no ${arch} guest kernel/agent found (looked at ${tried.map((t) => `${t.source}: ${t.manifest}`).join("; ")}); ${guestAssetsFix(arch)}`,
    { details: { arch, tried } },
  );
}
