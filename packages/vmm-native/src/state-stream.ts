import { closeSync, constants, createWriteStream, fsyncSync, openSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { shareSocketWithQemu } from "./confine/file-access.js";
import type { QemuIdentity } from "./confine/options.js";
import { VmmError } from "./errors.js";
import { migrateTo, waitForIncoming } from "./migration.js";
import type { QmpClient } from "./qmp/qmp-client.js";
import { connectWhenListening } from "./unix-connect.js";

/*
 * Migration streams pass through the engine: QEMU connects to a socket the
 * engine listens on in QEMU's run directory, and the engine writes the file
 * (or forwards the stream to another QEMU). QEMU never opens a path in the
 * snapshot store, so a confined QEMU needs no access to it, and a full state
 * (guest RAM included) goes from one QEMU to another without touching disk.
 */

/** One QEMU as a migration endpoint. */
export interface MigrationEnd {
  qmp: QmpClient;
  /** Its run directory (host path) where sockets are made. */
  qemuDir: string;
  /** The path QEMU must be given for a host path in {@link qemuDir}. */
  qemuPath(hostPath: string): string;
  /** QEMU's own identity when it runs as another user. */
  identity?: QemuIdentity;
}

let seq = 0;

async function listenFor(end: MigrationEnd): Promise<{ server: Server; path: string }> {
  const path = join(end.qemuDir, `mig-${process.pid}-${++seq}.sock`);
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.off("error", reject);
      resolve();
    });
  });
  shareSocketWithQemu(path, end.identity);
  return { server, path };
}

function firstConnection(server: Server, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new VmmError("SNAPSHOT_FAILED", "QEMU did not connect to the migration socket")),
      timeoutMs,
    );
    server.once("connection", (s) => {
      clearTimeout(timer);
      server.close();
      resolve(s);
    });
  });
}

function closeServer(server: Server, path: string): void {
  server.close();
  rmSync(path, { force: true });
}

/**
 * Writes the paused VM's migration stream into `dest` (created or replaced,
 * mode 0600, fsynced). With `ignoreShared`, RAM mapped shared from a file
 * is skipped (device state only).
 */
export async function migrateToHostFile(
  src: MigrationEnd,
  dest: string,
  ignoreShared: boolean,
  timeoutMs = 120_000,
): Promise<void> {
  const { server, path } = await listenFor(src);
  const fd = openSync(
    dest,
    constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
    0o600,
  );
  let ok = false;
  try {
    const conn = firstConnection(server, timeoutMs);
    conn.catch(() => {});
    const migrated = migrateTo(src.qmp, `unix:${src.qemuPath(path)}`, ignoreShared, timeoutMs);
    const socket = await Promise.race([conn, migrated.then(() => conn)]);
    await Promise.all([migrated, pipeline(socket, createWriteStream("", { fd, autoClose: false }))]);
    fsyncSync(fd);
    ok = true;
  } finally {
    closeSync(fd);
    closeServer(server, path);
    if (!ok) rmSync(dest, { force: true });
  }
}

/**
 * Migrates the paused VM `src` (its full state: `x-ignore-shared` off) into
 * `dst`, a QEMU waiting in `-incoming defer`, through the engine, and waits
 * until `dst` has loaded it.
 */
export async function migrateBetween(
  src: MigrationEnd,
  dst: MigrationEnd,
  timeoutMs = 120_000,
): Promise<void> {
  const inPath = join(dst.qemuDir, "incoming.sock");
  await dst.qmp.execute("migrate-incoming", { uri: `unix:${dst.qemuPath(inPath)}` });
  const { server, path } = await listenFor(src);
  let forward: Socket | undefined;
  try {
    const conn = firstConnection(server, timeoutMs);
    conn.catch(() => {});
    const migrated = migrateTo(src.qmp, `unix:${src.qemuPath(path)}`, false, timeoutMs);
    migrated.catch(() => {});
    const incoming = await Promise.race([conn, migrated.then(() => conn)]);
    forward = await connectWhenListening(inPath, Date.now() + 10_000);
    incoming.pipe(forward);
    forward.pipe(incoming);
    await migrated;
    await waitForIncoming(dst.qmp, timeoutMs);
  } finally {
    forward?.destroy();
    closeServer(server, path);
    rmSync(inPath, { force: true });
  }
}
