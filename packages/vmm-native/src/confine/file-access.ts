import {
  chmodSync,
  chownSync,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  lstatSync,
  openSync,
  type Stats,
} from "node:fs";
import { join } from "node:path";
import { VmmError } from "../errors.js";
import type { QemuIdentity } from "./options.js";

/*
 * How QEMU, running as its own uid under root, reaches the files of a VM
 * without the snapshot store being opened to anyone:
 *
 * - Directories stay private (0700, the caller's): QEMU never walks a host
 *   path. bubblewrap, still root, bind-mounts each file into QEMU's empty
 *   root, so only the file's own mode matters.
 * - Files that QEMU opens by path (the kernel and initramfs, the memory file)
 *   must be readable by QEMU's uid or gid. The kernel and initramfs hold no
 *   secrets and are world-readable. The memory file belongs to the caller
 *   with QEMU's group: 0640 (read-only for QEMU), 0660 while a bake or
 *   replay helper writes it.
 * - Files that QEMU can take as descriptors are opened here and inherited
 *   (`-add-fd`, `/dev/fdset/N`): the root fs, the device state a restore
 *   loads, /dev/kvm. Their modes never matter to QEMU.
 */

/** True when a process of identity `id` may read a file with stats `st` (mode bits only). */
export function readableBy(st: Stats, id: QemuIdentity): boolean {
  if (st.uid === id.uid) return (st.mode & 0o400) !== 0;
  if (st.gid === id.gid) return (st.mode & 0o040) !== 0;
  return (st.mode & 0o004) !== 0;
}

/**
 * Prepares a guest memory file for QEMU. Writable (bake, replay helper): created
 * if missing, then owner = the caller, group = QEMU's, mode 0660. Read-only
 * (restore): must be readable by QEMU; a file of the caller's that is not
 * gets QEMU's group and group read (0640) — others never gain access.
 */
export function prepareMemoryFile(path: string, writable: boolean, id: QemuIdentity | undefined): void {
  const me = process.getuid?.() ?? -1;
  if (writable) {
    const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw new VmmError("CONFINEMENT_FAILED", `memory file ${path} is not a regular file`);
      if (id) {
        fchownSync(fd, me, id.gid);
        fchmodSync(fd, 0o660);
      }
    } finally {
      closeSync(fd);
    }
    return;
  }
  if (!id) return;
  const st = lstatSync(path);
  if (!st.isFile()) throw new VmmError("CONFINEMENT_FAILED", `memory file ${path} is not a regular file`);
  if (readableBy(st, id)) return;
  if (st.uid !== me) {
    throw new VmmError(
      "CONFINEMENT_FAILED",
      `memory file ${path} is not readable by QEMU's uid ${id.uid}/gid ${id.gid} and belongs to uid ${st.uid}`,
    );
  }
  chownSync(path, me, id.gid);
  chmodSync(path, (st.mode & 0o600) | 0o040);
}

/** After capture: the memory file becomes read-only for QEMU (0640 with QEMU's group) or 0600. */
export function sealMemoryFile(path: string, id: QemuIdentity | undefined): void {
  chmodSync(path, id ? 0o640 : 0o600);
}

/** Checks that QEMU's uid can read a file bound into its sandbox (kernel, initramfs). */
export function requireReadable(path: string, what: string, id: QemuIdentity | undefined): void {
  if (!id) return;
  const st = lstatSync(path);
  if (!readableBy(st, id)) {
    throw new VmmError(
      "CONFINEMENT_FAILED",
      `${what} ${path} is not readable by QEMU's uid ${id.uid}; it holds no secrets: make it world-readable (chmod a+r)`,
    );
  }
}

/**
 * The directory QEMU creates its sockets in. Under root:
 * owner the caller, group QEMU's, mode 1770 (QEMU may create entries; the
 * sticky bit stops it from renaming or removing entries it does not own).
 * Otherwise 0700.
 */
export function prepareQemuDir(dir: string, id: QemuIdentity | undefined): void {
  if (id) {
    chownSync(dir, process.getuid?.() ?? -1, id.gid);
    chmodSync(dir, 0o1770);
  } else {
    chmodSync(dir, 0o700);
  }
}

/**
 * Once QEMU has created them: the sockets in its directory become the
 * caller's, mode 0600. Under root, QEMU can then no
 * longer swap them for something else (say, a symlink to another socket that
 * the engine would connect to as root): the sticky directory forbids
 * renaming or removing another user's entry. QEMU keeps using them through
 * the descriptors it holds.
 */
export function sealQemuDirEntries(dir: string, names: string[], id: QemuIdentity | undefined): void {
  const me = process.getuid?.() ?? -1;
  for (const name of names) {
    const p = join(dir, name);
    let st: Stats;
    try {
      st = lstatSync(p);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) {
      throw new VmmError("CONFINEMENT_FAILED", `${p} is a symlink; QEMU's directory was tampered with`);
    }
    if (id) chownSync(p, me, -1);
    chmodSync(p, 0o600);
  }
}

/**
 * The console FIFO, made by the engine (0600): under root it gets QEMU's
 * group and group write (0620), so QEMU can open it for writing and nothing
 * else; the engine holds the read end.
 */
export function prepareConsolePipe(path: string, id: QemuIdentity | undefined): void {
  const st = lstatSync(path);
  if (!st.isFIFO()) throw new VmmError("CONFINEMENT_FAILED", `console pipe ${path} is not a FIFO`);
  if (id) {
    chownSync(path, process.getuid?.() ?? -1, id.gid);
    chmodSync(path, 0o620);
  }
}

/** Prepares a socket the engine listens on for QEMU to connect to (a migration stream). */
export function shareSocketWithQemu(path: string, id: QemuIdentity | undefined): void {
  if (id) {
    chownSync(path, process.getuid?.() ?? -1, id.gid);
    chmodSync(path, 0o660);
  } else {
    chmodSync(path, 0o600);
  }
}
