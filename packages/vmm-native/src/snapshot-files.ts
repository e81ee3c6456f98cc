import { closeSync, existsSync, openSync, readFileSync, readSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { VmmError } from "./errors.js";
import { cacheRoot, type GuestAssets, resolveGuestAssets } from "./guest-assets.js";
import { GUEST_ARCHES, type GuestArch } from "./machine-model.js";
import type { MachineSpec } from "./qemu-args.js";

/** Name of the device-state file inside a snapshot directory. */
export const STATE_FILE = "restore.snap";
/** Name of the guest memory file inside a snapshot directory. */
export const MEMORY_FILE = "memory.bin";
/** Name of the engine's description of the machine inside a snapshot directory. */
export const MACHINE_FILE = "machine.json";

/** The engine format `machine.json` is written in (1, with absolute host paths, is refused). */
export const ENGINE_FORMAT = 2;

/** A root fs content address: `sha256:` and 64 lowercase hex digits. */
const ROOTFS_DIGEST = /^sha256:[0-9a-f]{64}$/;

/**
 * The engine's record of how a snapshot's machine was built (`machine.json`,
 * engine format 2). It names no host path when the machine was booted with
 * hashes (`MachineSpec.kernelHash`/`agentHash`/`rootfsDigest`): the guest is
 * resolved by its build hashes through the installed guest package or the
 * user cache, the root fs by its digest through the root fs store, so the
 * snapshot directory can move to another path or host.
 */
export interface MachineRecord {
  /** Engine snapshot format version. */
  engineFormat: 2;
  /** Guest architecture (absent: x86_64). Equals `spec.arch`. */
  arch?: GuestArch;
  /** The device model without host paths. */
  spec: Pick<MachineSpec, "memoryMib" | "vcpus" | "cmdline" | "network" | "arch">;
  /** The guest: by build hashes (relocatable), or by paths (a machine booted from files outside the guest stores). */
  guest: { kernelHash: string; agentHash: string } | { kernel: string; initrd: string };
  /** The root fs, if any: by digest (relocatable) or by path. */
  rootfs?: { digest: string } | { path: string };
  qemuVersion: string;
  accel: string;
  /** `-cpu` model. */
  cpuModel?: string;
  /** When it was captured (ISO 8601). */
  capturedAt: string;
}

/** A snapshot directory as the engine sees it. */
export interface SnapshotFiles {
  dir: string;
  stateFile: string;
  memoryFile: string;
  record: MachineRecord;
  /** The machine spec to restore with, its kernel, initrd and root fs resolved on this host. */
  spec: MachineSpec;
}

/** Where {@link openSnapshotFiles} finds a snapshot's inputs. */
export interface SnapshotInputs {
  /** Path of the root fs image (the caller resolved it, e.g. through the snapshot store). Default: `<cache>/oci/rootfs/<hex>.img` (or a legacy `<hex>.ext4`). */
  rootfs?: string;
  /** The guest assets to use (must have the recorded hashes). Default: `resolveGuestAssets()`. */
  guest?: GuestAssets;
  /**
   * Refuse a record naming the guest or root fs by host path
   * (`SNAPSHOT_INVALID`): a snapshot from elsewhere must not make this host
   * hand its files to QEMU. `@supermachine/core` always sets it.
   */
  byHashOnly?: boolean;
}

const QEMU_VM_MAGIC = 0x5145564d; // "QEVM"

/** The default root fs store of `@supermachine/oci`: `<cache>/oci/rootfs`. */
export function defaultRootfsStore(): string {
  return join(cacheRoot(), "oci", "rootfs");
}

/**
 * The `machine.json` record for a machine about to be captured: the guest
 * by its build hashes (from the spec, else from the resolved guest assets
 * when the spec's kernel and initrd are theirs), the root fs by its digest
 * when the spec gives one; otherwise by path (not relocatable).
 */
export function machineRecordFor(
  spec: MachineSpec,
  facts: { qemuVersion: string; accel: string; cpuModel: string },
): MachineRecord {
  let guest: MachineRecord["guest"] = { kernel: spec.kernel, initrd: spec.initrd };
  if (spec.kernelHash && spec.agentHash) {
    guest = { kernelHash: spec.kernelHash, agentHash: spec.agentHash };
  } else {
    try {
      const a = resolveGuestAssets(spec.arch ?? "x86_64");
      if (a.kernel === spec.kernel && a.initrd === spec.initrd) {
        guest = { kernelHash: a.kernelHash, agentHash: a.agentHash };
      }
    } catch {
      // no guest installed: keep the paths
    }
  }
  let rootfs: MachineRecord["rootfs"];
  if (spec.rootfs) {
    if (spec.rootfsDigest !== undefined && !ROOTFS_DIGEST.test(spec.rootfsDigest)) {
      throw new VmmError(
        "SNAPSHOT_FAILED",
        `rootfsDigest ${JSON.stringify(spec.rootfsDigest)} is not sha256:<64 hex>`,
      );
    }
    rootfs = spec.rootfsDigest ? { digest: spec.rootfsDigest } : { path: spec.rootfs };
  }
  const arch = spec.arch ?? "x86_64";
  return {
    engineFormat: ENGINE_FORMAT,
    arch,
    spec: {
      arch,
      memoryMib: spec.memoryMib,
      vcpus: spec.vcpus,
      ...(spec.cmdline !== undefined ? { cmdline: spec.cmdline } : {}),
      ...(spec.network !== undefined ? { network: spec.network } : {}),
    },
    guest,
    ...(rootfs ? { rootfs } : {}),
    qemuVersion: facts.qemuVersion,
    accel: facts.accel,
    cpuModel: facts.cpuModel,
    capturedAt: new Date().toISOString(),
  };
}

/** Writes `machine.json` into a snapshot directory. */
export function writeMachineRecord(dir: string, record: MachineRecord): void {
  writeFileSync(join(dir, MACHINE_FILE), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
}

function invalid(dir: string, what: string): VmmError {
  return new VmmError("SNAPSHOT_INVALID", `snapshot ${dir}: ${what}`, { details: { dir, problem: what } });
}

function missing(dir: string, input: string, what: string, details: Record<string, unknown>): VmmError {
  return new VmmError("SNAPSHOT_INPUT_MISSING", `snapshot ${dir}: ${what}`, {
    details: { dir, input, ...details },
  });
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Strictly checks a parsed `machine.json`. */
function parseRecord(dir: string, raw: unknown): MachineRecord {
  if (!isObj(raw)) throw invalid(dir, `${MACHINE_FILE} is not an object`);
  if (raw.engineFormat !== ENGINE_FORMAT) {
    throw invalid(
      dir,
      `${MACHINE_FILE} has engineFormat ${JSON.stringify(raw.engineFormat)}, this build reads ${ENGINE_FORMAT}` +
        (raw.engineFormat === 1 ? " (format 1 named host paths and cannot move: bake the image again)" : ""),
    );
  }
  const spec = raw.spec;
  if (
    !isObj(spec) ||
    !Number.isInteger(spec.memoryMib) ||
    (spec.memoryMib as number) < 1 ||
    !Number.isInteger(spec.vcpus) ||
    (spec.vcpus as number) < 1 ||
    (spec.cmdline !== undefined && typeof spec.cmdline !== "string") ||
    (spec.network !== undefined && typeof spec.network !== "boolean")
  ) {
    throw invalid(dir, `${MACHINE_FILE} lacks a complete machine spec`);
  }
  for (const arch of [spec.arch, raw.arch]) {
    if (arch !== undefined && !GUEST_ARCHES.includes(arch as GuestArch)) {
      throw invalid(dir, `${MACHINE_FILE} names an unknown guest architecture ${JSON.stringify(arch)}`);
    }
  }
  if (raw.arch !== undefined && spec.arch !== undefined && raw.arch !== spec.arch) {
    throw invalid(dir, `${MACHINE_FILE} names two guest architectures (${raw.arch}, ${spec.arch})`);
  }
  const guest = raw.guest;
  const str = (v: unknown) => typeof v === "string" && v.length > 0;
  if (
    !isObj(guest) ||
    !((str(guest.kernelHash) && str(guest.agentHash)) || (str(guest.kernel) && str(guest.initrd)))
  ) {
    throw invalid(dir, `${MACHINE_FILE} does not name its guest (kernelHash and agentHash)`);
  }
  const rootfs = raw.rootfs;
  if (
    rootfs !== undefined &&
    !(
      isObj(rootfs) &&
      ((typeof rootfs.digest === "string" && ROOTFS_DIGEST.test(rootfs.digest)) ||
        (rootfs.digest === undefined && str(rootfs.path) && (rootfs.path as string).startsWith("/")))
    )
  ) {
    throw invalid(
      dir,
      `${MACHINE_FILE} names its root fs neither by a sha256 digest nor by an absolute path`,
    );
  }
  if (!str(raw.qemuVersion) || !str(raw.accel)) throw invalid(dir, `${MACHINE_FILE} lacks qemuVersion/accel`);
  return raw as unknown as MachineRecord;
}

/**
 * Reads and checks a snapshot directory before any QEMU is started: every
 * file present, `machine.json` well formed, the memory file exactly the
 * recorded size, the device state a QEMU migration stream; then resolves
 * its inputs on this host: the guest by its build hashes (the installed
 * guest, or `inputs.guest`), the root fs by its digest (`inputs.rootfs`, or
 * the default root fs store). Throws `SNAPSHOT_INVALID` naming the problem,
 * or `SNAPSHOT_INPUT_MISSING` naming the input this host lacks
 * (`details.input`: `guest` or `rootfs`, with the hashes or digest).
 */
export function openSnapshotFiles(dir: string, inputs: SnapshotInputs = {}): SnapshotFiles {
  if (!existsSync(dir)) throw invalid(dir, "directory does not exist");
  const recordPath = join(dir, MACHINE_FILE);
  if (!existsSync(recordPath)) throw invalid(dir, `${MACHINE_FILE} is missing`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(recordPath, "utf8"));
  } catch (err) {
    throw invalid(dir, `${MACHINE_FILE} is not valid JSON (${(err as Error).message})`);
  }
  const record = parseRecord(dir, raw);
  const stateFile = join(dir, STATE_FILE);
  const memoryFile = join(dir, MEMORY_FILE);
  if (!existsSync(stateFile)) throw invalid(dir, `${STATE_FILE} (device state) is missing`);
  if (!existsSync(memoryFile)) throw invalid(dir, `${MEMORY_FILE} (guest memory) is missing`);
  const memSize = statSync(memoryFile).size;
  const want = record.spec.memoryMib * 1024 * 1024;
  if (memSize !== want)
    throw invalid(dir, `${MEMORY_FILE} is ${memSize} bytes, expected ${want} (truncated or wrong size)`);
  const head = Buffer.alloc(4);
  const fd = openSync(stateFile, "r");
  const n = readSync(fd, head, 0, 4, 0);
  closeSync(fd);
  if (n < 4 || head.readUInt32BE(0) !== QEMU_VM_MAGIC)
    throw invalid(dir, `${STATE_FILE} is not a QEMU device-state stream`);
  if (
    inputs.byHashOnly &&
    (!("kernelHash" in record.guest) || (record.rootfs && !("digest" in record.rootfs)))
  ) {
    throw invalid(
      dir,
      `${MACHINE_FILE} names its guest or root fs by host path; only records naming them by hash are restored here`,
    );
  }
  return { dir, stateFile, memoryFile, record, spec: resolveInputs(dir, record, inputs) };
}

/** The machine spec of a record with its guest and root fs found on this host. */
function resolveInputs(dir: string, record: MachineRecord, inputs: SnapshotInputs): MachineSpec {
  let kernel: string;
  let initrd: string;
  let hashes: { kernelHash?: string; agentHash?: string } = {};
  if ("kernelHash" in record.guest) {
    const want = record.guest;
    let found: GuestAssets | undefined = inputs.guest;
    let why = "";
    if (!found) {
      try {
        found = resolveGuestAssets(record.spec.arch ?? record.arch ?? "x86_64");
      } catch (err) {
        why = `: ${(err as Error).message}`;
      }
    }
    if (!found || found.kernelHash !== want.kernelHash || found.agentHash !== want.agentHash) {
      throw missing(
        dir,
        "guest",
        `needs the guest kernel ${want.kernelHash} and agent ${want.agentHash}` +
          (found
            ? `; this host's guest (${found.source}: ${found.manifest}) is kernel ${found.kernelHash}, agent ${found.agentHash}. Install the guest package version it was baked with, or bake it again here`
            : why),
        { kernelHash: want.kernelHash, agentHash: want.agentHash },
      );
    }
    kernel = found.kernel;
    initrd = found.initrd;
    hashes = { kernelHash: want.kernelHash, agentHash: want.agentHash };
  } else {
    kernel = record.guest.kernel;
    initrd = record.guest.initrd;
    for (const [what, path] of [
      ["kernel", kernel],
      ["initramfs", initrd],
    ] as const) {
      if (!existsSync(path))
        throw missing(dir, "guest", `${what} ${path} it was baked with no longer exists`, { path });
    }
  }
  let rootfs: string | undefined;
  let rootfsDigest: string | undefined;
  if (record.rootfs) {
    if ("digest" in record.rootfs) {
      rootfsDigest = record.rootfs.digest;
      const hex = rootfsDigest.slice("sha256:".length);
      // `<hex>.img`, or `<hex>.ext4` as builds before 0.5 named it
      rootfs =
        inputs.rootfs ??
        [`${hex}.img`, `${hex}.ext4`].map((n) => join(defaultRootfsStore(), n)).find((p) => existsSync(p)) ??
        join(defaultRootfsStore(), `${hex}.img`);
      if (!existsSync(rootfs)) {
        throw missing(dir, "rootfs", `needs root fs ${rootfsDigest}, not found at ${rootfs}`, {
          digest: rootfsDigest,
          path: rootfs,
        });
      }
    } else {
      rootfs = inputs.rootfs ?? record.rootfs.path;
      if (!existsSync(rootfs))
        throw missing(dir, "rootfs", `root fs ${rootfs} it was baked with no longer exists`, {
          path: rootfs,
        });
    }
  }
  return {
    ...record.spec,
    kernel,
    initrd,
    ...hashes,
    ...(rootfs ? { rootfs } : {}),
    ...(rootfsDigest ? { rootfsDigest } : {}),
  };
}
