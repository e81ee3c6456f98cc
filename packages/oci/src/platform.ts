/** An OS/architecture pair as in OCI indexes, e.g. `{os: "linux", architecture: "amd64"}`. */
export interface Platform {
  os: string;
  architecture: string;
  /** CPU variant, e.g. `v8` for arm64, `v7` for arm. */
  variant?: string;
}

/** The guest platform matching this host's CPU (linux/amd64 on x64, linux/arm64/v8 on arm64). */
export function defaultPlatform(): Platform {
  switch (process.arch) {
    case "arm64":
      return { os: "linux", architecture: "arm64", variant: "v8" };
    case "arm":
      return { os: "linux", architecture: "arm", variant: "v7" };
    case "ia32":
      return { os: "linux", architecture: "386" };
    default:
      return { os: "linux", architecture: "amd64" };
  }
}

/** A guest CPU architecture as the engine names it. */
export type GuestArchName = "x86_64" | "aarch64";

/**
 * The OCI platform whose images run on a guest architecture: `linux/amd64`
 * for x86_64, `linux/arm64/v8` for aarch64. Pass it as `PullOptions.platform`
 * to pull the matching image from a multi-arch index.
 */
export function platformForGuestArch(arch: GuestArchName): Platform {
  switch (arch) {
    case "x86_64":
      return { os: "linux", architecture: "amd64" };
    case "aarch64":
      return { os: "linux", architecture: "arm64", variant: "v8" };
    default:
      throw new TypeError(`unknown guest architecture ${JSON.stringify(arch)} (x86_64 or aarch64)`);
  }
}

const ARCH_ALIASES: Record<string, string> = {
  x86_64: "amd64",
  "x86-64": "amd64",
  aarch64: "arm64",
  i386: "386",
};

/** Normalizes architecture aliases and default variants (arm64 -> v8, arm -> v7). */
export function normalizePlatform(p: Platform): Platform {
  const os = p.os.toLowerCase();
  const architecture = ARCH_ALIASES[p.architecture.toLowerCase()] ?? p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase() || undefined;
  if (architecture === "arm64" && (variant === undefined || variant === "8")) variant = "v8";
  if (architecture === "arm" && variant === undefined) variant = "v7";
  if (architecture === "amd64" && variant === "v1") variant = undefined;
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

/** True when `candidate` can run where `wanted` is asked for (same os/arch; variant equal after normalization). */
export function platformMatches(wanted: Platform, candidate: Platform): boolean {
  const w = normalizePlatform(wanted);
  const c = normalizePlatform(candidate);
  if (w.os !== c.os || w.architecture !== c.architecture) return false;
  if (w.variant === undefined) return true;
  return w.variant === c.variant;
}

/** `os/arch[/variant]`. */
export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`;
}
