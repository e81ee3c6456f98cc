import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cacheRoot } from "./guest-assets.js";
import type { GuestArch } from "./machine-model.js";

/** What one QEMU binary can do, as it reports itself (`--version`, `-accel/-machine/-netdev/-device help`). */
export interface QemuCapabilities {
  /** Version string, e.g. `10.0.2` (`unknown` when the banner has none). */
  version: string;
  /** Accelerators compiled in (`tcg`, `kvm`, `hvf`). */
  accels: string[];
  /** Machine types (`microvm`, `virt`, ...). */
  machines: string[];
  /** Network backends (`user`, `stream`, `tap`, ...). */
  netdevs: string[];
  /** Device models (`virtio-serial-device`, ...). */
  devices: string[];
}

/** What a machine model needs from a QEMU binary. */
export interface QemuRequirements {
  /** Guest architecture (which system emulator); absent means x86_64. */
  arch?: GuestArch;
  accel: string;
  machine: string;
  netdevs: readonly string[];
  devices: readonly string[];
}

const cache = new Map<string, QemuCapabilities>();

function ask(path: string, args: string[]): string {
  return execFileSync(path, args, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 15_000,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
  });
}

/** Parses `-accel help` / `-netdev help`: a heading line, then one name per line. */
export function parseNameList(out: string): string[] {
  return out
    .split("\n")
    .slice(1)
    .map((l) => l.trim())
    .filter((l) => /^[a-z0-9][\w.-]*$/i.test(l));
}

/** Parses `-machine help`: `name   description` lines after the heading. */
export function parseMachines(out: string): string[] {
  return out
    .split("\n")
    .slice(1)
    .map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter((n) => /^[a-z0-9][\w.-]*$/i.test(n));
}

/** Parses `-device help`: every `name "X", ...` line. */
export function parseDevices(out: string): string[] {
  return [...out.matchAll(/^name "([^"]+)"/gm)].map((m) => m[1] as string);
}

/** Parses the version from `--version`. */
export function parseVersion(out: string): string {
  return /version (\d+\.\d+(?:\.\d+)?)/.exec(out)?.[1] ?? "unknown";
}

function isCapabilities(v: unknown): v is QemuCapabilities {
  const c = v as QemuCapabilities;
  return (
    typeof c?.version === "string" &&
    [c.accels, c.machines, c.netdevs, c.devices].every(
      (l) => Array.isArray(l) && l.every((x) => typeof x === "string"),
    )
  );
}

/**
 * Asks a QEMU binary what it supports (five short runs of it, ~0.2-0.5 s).
 * Cached in the process and on disk under the cache root, keyed by the
 * binary's path, size, mtime and inode, so a binary replaced on disk is asked
 * again. Throws when the binary cannot run.
 */
export function readCapabilities(path: string): QemuCapabilities {
  const st = statSync(path);
  const key = createHash("sha256")
    .update(JSON.stringify([1, path, st.size, st.mtimeMs, st.ino]))
    .digest("hex")
    .slice(0, 24);
  const hit = cache.get(key);
  if (hit) return hit;
  const file = join(cacheRoot(), "qemu-caps", `${key}.json`);
  try {
    const saved: unknown = JSON.parse(readFileSync(file, "utf8"));
    if (isCapabilities(saved)) {
      cache.set(key, saved);
      return saved;
    }
  } catch {
    // not cached yet (or unreadable): ask the binary
  }
  const caps: QemuCapabilities = {
    version: parseVersion(ask(path, ["--version"])),
    accels: parseNameList(ask(path, ["-accel", "help"])),
    machines: parseMachines(ask(path, ["-machine", "help"])),
    // `-M none`: a system emulator without a default machine (qemu-system-aarch64) refuses
    // these questions otherwise; the lists do not depend on the machine
    netdevs: parseNameList(ask(path, ["-M", "none", "-netdev", "help"])),
    devices: parseDevices(ask(path, ["-M", "none", "-device", "help"])),
  };
  cache.set(key, caps);
  try {
    mkdirSync(join(cacheRoot(), "qemu-caps"), { recursive: true, mode: 0o700 });
    writeFileSync(`${file}.${process.pid}.tmp`, JSON.stringify(caps), { mode: 0o600 });
    renameSync(`${file}.${process.pid}.tmp`, file);
  } catch {
    // an unwritable cache only costs asking again next time
  }
  return caps;
}

/** The requirements a binary does not meet, as readable phrases (empty when it meets all). */
export function missingCapabilities(caps: QemuCapabilities, req: QemuRequirements): string[] {
  const missing: string[] = [];
  if (!caps.accels.includes(req.accel)) missing.push(`accelerator ${req.accel}`);
  if (!caps.machines.includes(req.machine)) missing.push(`machine ${req.machine}`);
  for (const n of req.netdevs) if (!caps.netdevs.includes(n)) missing.push(`network backend ${n}`);
  for (const d of req.devices) if (!caps.devices.includes(d)) missing.push(`device ${d}`);
  return missing;
}
