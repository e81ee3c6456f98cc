import { VmmError } from "./errors.js";
import type { QmpClient } from "./qmp/qmp-client.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Migrates the paused VM's state to `uri` (e.g. `file:/x`, `unix:/x`) and
 * waits for QEMU to report it completed. With `ignoreShared`, RAM blocks
 * mapped shared from a file are skipped, so the stream holds device state only.
 */
export async function migrateTo(
  qmp: QmpClient,
  uri: string,
  ignoreShared: boolean,
  timeoutMs = 120_000,
): Promise<void> {
  await qmp.execute("migrate-set-capabilities", {
    capabilities: [{ capability: "x-ignore-shared", state: ignoreShared }],
  });
  await qmp.execute("migrate", { uri });
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 20)) {
    const info = await qmp.execute("query-migrate", {});
    if (info.status === "completed") return;
    if (info.status === "failed" || info.status === "cancelled") {
      throw new VmmError(
        "SNAPSHOT_FAILED",
        `migration to ${uri} ${info.status}: ${info["error-desc"] ?? "no reason given"}`,
      );
    }
    if (Date.now() > deadline)
      throw new VmmError("SNAPSHOT_FAILED", `migration to ${uri} did not finish in ${timeoutMs} ms`);
    await sleep(delay);
  }
}

/** {@link migrateTo} a file QEMU opens itself (`file:` URI). */
export async function migrateToFile(
  qmp: QmpClient,
  path: string,
  ignoreShared: boolean,
  timeoutMs = 120_000,
): Promise<void> {
  await migrateTo(qmp, `file:${path}`, ignoreShared, timeoutMs);
}

/** Waits until an incoming migration has loaded (the VM leaves the `inmigrate` state). */
export async function waitForIncoming(qmp: QmpClient, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 10)) {
    const st = await qmp.execute("query-status", {});
    if (st.status !== "inmigrate") {
      if (
        st.status === "paused" ||
        st.status === "prelaunch" ||
        st.status === "running" ||
        st.status === "postmigrate"
      )
        return;
      const mig = await qmp.execute("query-migrate", {});
      throw new VmmError(
        "RESTORE_FAILED",
        `incoming migration ended in state ${st.status}: ${mig["error-desc"] ?? mig.status ?? ""}`,
      );
    }
    const mig = await qmp.execute("query-migrate", {});
    if (mig.status === "failed")
      throw new VmmError(
        "RESTORE_FAILED",
        `incoming migration failed: ${mig["error-desc"] ?? "no reason given"}`,
      );
    if (Date.now() > deadline)
      throw new VmmError("RESTORE_TIMEOUT", `incoming migration did not finish in ${timeoutMs} ms`);
    await sleep(delay);
  }
}
