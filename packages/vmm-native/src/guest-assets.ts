import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { VmmError } from "./errors.js";

/** Where a guest came from, in the order they are tried. */
export type GuestAssetsSource = "override" | "package" | "cache";

/** The guest kernel and init/agent a VM boots, with their build hashes. */
export interface GuestAssets {
  /** Path of the kernel bzImage. */
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

/** Root of supermachine's caches: `$SUPERMACHINE_CACHE` or `~/.cache/supermachine`. */
export function cacheRoot(): string {
  return process.env.SUPERMACHINE_CACHE ?? join(homedir(), ".cache", "supermachine");
}

/** The exact fix for a missing guest, for error messages and `doctor`. */
export const GUEST_ASSETS_FIX =
  `install the guest package (\`npm install ${GUEST_PACKAGE}\`; it is an optional dependency of ` +
  "@supermachine/vmm-native, so a plain install brings it unless optional dependencies are omitted), " +
  "or build it from the supermachine repository (`bash packages/vmm-native/guest/build-assets.sh`); " +
  "`npx supermachine doctor` shows what was looked at";

/**
 * Reads one manifest: the guest package's (`{kernel, initrd}` relative to it,
 * plus hashes) or the build cache's (absolute paths). Undefined when absent.
 */
function readManifest(manifest: string, source: GuestAssetsSource): GuestAssets | undefined {
  if (!existsSync(manifest)) return undefined;
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
  const assets: GuestAssets = {
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
export function guestPackageManifest(): string | undefined {
  try {
    const req = createRequire(import.meta.url);
    return join(dirname(req.resolve(`${GUEST_PACKAGE}/package.json`)), "assets", "manifest.json");
  } catch {
    return undefined;
  }
}

/** Every place {@link resolveGuestAssets} looks, in order, with whether a manifest is there. */
export function guestAssetsCandidates(): Array<{ source: GuestAssetsSource; manifest: string }> {
  const out: Array<{ source: GuestAssetsSource; manifest: string }> = [];
  const override = process.env.SUPERMACHINE_GUEST_ASSETS;
  if (override) return [{ source: "override", manifest: override }];
  const pkg = guestPackageManifest();
  if (pkg) out.push({ source: "package", manifest: pkg });
  out.push({ source: "cache", manifest: join(cacheRoot(), "guest-assets.json") });
  return out;
}

/**
 * Finds the guest kernel and agent: an explicit `SUPERMACHINE_GUEST_ASSETS`
 * manifest, else the installed `@supermachine/guest-x86_64` package, else the
 * user cache written by `guest/build-assets.sh`. Throws `GUEST_ASSETS_MISSING`
 * naming what was looked at and the exact fix.
 */
export function resolveGuestAssets(): GuestAssets {
  const tried = guestAssetsCandidates();
  for (const c of tried) {
    const found = readManifest(c.manifest, c.source);
    if (found) return found;
  }
  throw new VmmError(
    "GUEST_ASSETS_MISSING",
    `no guest kernel/agent found (looked at ${tried.map((t) => `${t.source}: ${t.manifest}`).join("; ")}); ${GUEST_ASSETS_FIX}`,
    { details: { tried } },
  );
}
