import { closeSync, existsSync, openSync, readFileSync, readSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { VmmError } from "./errors.js";
import { GUEST_ARCHES, type GuestArch } from "./machine-model.js";
import type { MachineSpec } from "./qemu-args.js";

/** Name of the device-state file inside a snapshot directory. */
export const STATE_FILE = "restore.snap";
/** Name of the guest memory file inside a snapshot directory. */
export const MEMORY_FILE = "memory.bin";
/** Name of the engine's description of the machine inside a snapshot directory. */
export const MACHINE_FILE = "machine.json";

/** The engine's record of how a snapshot's machine was built (`machine.json`). */
export interface MachineRecord {
  /** Engine snapshot format version. */
  engineFormat: 1;
  /** Guest architecture (absent in records written before aarch64 guests: x86_64). Equals `spec.arch`. */
  arch?: GuestArch;
  spec: MachineSpec;
  qemuVersion: string;
  accel: string;
  /** `-cpu` model (absent in records written before it was recorded: `max` under TCG, `host` otherwise). */
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
}

const QEMU_VM_MAGIC = 0x5145564d; // "QEVM"

/** Writes `machine.json` into a snapshot directory. */
export function writeMachineRecord(dir: string, record: MachineRecord): void {
  writeFileSync(join(dir, MACHINE_FILE), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
}

function invalid(dir: string, what: string): VmmError {
  return new VmmError("SNAPSHOT_INVALID", `snapshot ${dir}: ${what}`, { details: { dir, problem: what } });
}

/**
 * Reads and checks a snapshot directory before any QEMU is started: every
 * file present, `machine.json` well formed, the memory file exactly the
 * recorded size, the device state a QEMU migration stream, and the kernel,
 * initramfs and root fs it needs still on disk. Throws `SNAPSHOT_INVALID`
 * naming the problem.
 */
export function openSnapshotFiles(dir: string): SnapshotFiles {
  if (!existsSync(dir)) throw invalid(dir, "directory does not exist");
  const recordPath = join(dir, MACHINE_FILE);
  if (!existsSync(recordPath)) throw invalid(dir, `${MACHINE_FILE} is missing`);
  let record: MachineRecord;
  try {
    record = JSON.parse(readFileSync(recordPath, "utf8")) as MachineRecord;
  } catch (err) {
    throw invalid(dir, `${MACHINE_FILE} is not valid JSON (${(err as Error).message})`);
  }
  if (record.engineFormat !== 1)
    throw invalid(dir, `${MACHINE_FILE} has unknown engineFormat ${record.engineFormat}`);
  const spec = record.spec;
  if (
    !spec ||
    typeof spec.memoryMib !== "number" ||
    typeof spec.vcpus !== "number" ||
    !spec.kernel ||
    !spec.initrd
  ) {
    throw invalid(dir, `${MACHINE_FILE} lacks a complete machine spec`);
  }
  if (spec.arch !== undefined && !GUEST_ARCHES.includes(spec.arch)) {
    throw invalid(dir, `${MACHINE_FILE} names an unknown guest architecture ${JSON.stringify(spec.arch)}`);
  }
  const stateFile = join(dir, STATE_FILE);
  const memoryFile = join(dir, MEMORY_FILE);
  if (!existsSync(stateFile)) throw invalid(dir, `${STATE_FILE} (device state) is missing`);
  if (!existsSync(memoryFile)) throw invalid(dir, `${MEMORY_FILE} (guest memory) is missing`);
  const memSize = statSync(memoryFile).size;
  const want = spec.memoryMib * 1024 * 1024;
  if (memSize !== want)
    throw invalid(dir, `${MEMORY_FILE} is ${memSize} bytes, expected ${want} (truncated or wrong size)`);
  const head = Buffer.alloc(4);
  const fd = openSync(stateFile, "r");
  const n = readSync(fd, head, 0, 4, 0);
  closeSync(fd);
  if (n < 4 || head.readUInt32BE(0) !== QEMU_VM_MAGIC)
    throw invalid(dir, `${STATE_FILE} is not a QEMU device-state stream`);
  for (const [what, path] of [
    ["kernel", spec.kernel],
    ["initramfs", spec.initrd],
    ["root fs", spec.rootfs],
  ] as const) {
    if (path && !existsSync(path)) throw invalid(dir, `${what} ${path} it was baked with no longer exists`);
  }
  return { dir, stateFile, memoryFile, record };
}
