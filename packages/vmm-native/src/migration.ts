import { VmmError } from "./errors.js";
import type { QmpClient } from "./qmp/qmp-client.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Writes the paused VM's state to `path` through QEMU's `file:` migration.
 * With `ignoreShared`, RAM blocks mapped shared from a file are skipped, so
 * the stream holds device state only.
 */
export async function migrateToFile(
  qmp: QmpClient,
  path: string,
  ignoreShared: boolean,
  timeoutMs = 120_000,
): Promise<void> {
  await qmp.execute("migrate-set-capabilities", {
    capabilities: [{ capability: "x-ignore-shared", state: ignoreShared }],
  });
  await qmp.execute("migrate", { uri: `file:${path}` });
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 20)) {
    const info = await qmp.execute("query-migrate", {});
    if (info.status === "completed") return;
    if (info.status === "failed" || info.status === "cancelled") {
      throw new VmmError(
        "SNAPSHOT_FAILED",
        `migration to ${path} ${info.status}: ${info["error-desc"] ?? "no reason given"}`,
      );
    }
    if (Date.now() > deadline)
      throw new VmmError("SNAPSHOT_FAILED", `migration to ${path} did not finish in ${timeoutMs} ms`);
    await sleep(delay);
  }
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
