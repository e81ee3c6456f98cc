// The migration steps (snapshot capture and incoming restore) against a real
// unix-socket peer speaking QMP; the real QEMU runs them in
// machine.integration.test.ts.
import { afterEach, describe, expect, it } from "vitest";
import { VmmError } from "./errors.js";
import { migrateToFile, waitForIncoming } from "./migration.js";
import { QmpClient } from "./qmp/qmp-client.js";
import type { MigrationInfo, StatusInfo } from "./qmp/qmp-types.js";
import { type QmpAnswer, type QmpCall, QmpPeer } from "./test-support/qmp-peer.js";

const open: Array<{ peer: QmpPeer; client: QmpClient }> = [];
afterEach(async () => {
  for (const { peer, client } of open.splice(0)) {
    client.close();
    await peer.close();
  }
});

/**
 * A peer whose `query-migrate` answers walk through `migrate` (the last one
 * repeats), whose `query-status` answers walk through `status`, and which
 * answers every other command with `{}` (or `other`).
 */
async function scripted(script: {
  migrate?: MigrationInfo[];
  status?: StatusInfo[];
  other?: (call: QmpCall) => QmpAnswer;
}): Promise<{ peer: QmpPeer; client: QmpClient }> {
  let m = 0;
  let st = 0;
  const peer = new QmpPeer((call) => {
    if (call.execute === "query-migrate" && script.migrate)
      return { return: script.migrate[Math.min(m++, script.migrate.length - 1)] };
    if (call.execute === "query-status" && script.status)
      return { return: script.status[Math.min(st++, script.status.length - 1)] };
    return script.other ? script.other(call) : { return: {} };
  });
  await peer.listen();
  const client = await QmpClient.connect(peer.path);
  const pair = { peer, client };
  open.push(pair);
  return pair;
}

async function rejection(p: Promise<unknown>): Promise<VmmError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof VmmError)) throw new Error(`expected a VmmError rejection, got ${String(err)}`);
  return err;
}

const paused = { running: false, status: "paused" };
const inmigrate = { running: false, status: "inmigrate" };

describe("migrateToFile (snapshot capture)", () => {
  it("sets x-ignore-shared, migrates to the file and polls until completed", async () => {
    const { peer, client } = await scripted({
      migrate: [{ status: "setup" }, { status: "active" }, { status: "active" }, { status: "completed" }],
    });
    await migrateToFile(client, "/snap/restore.snap", true);
    expect(peer.commands()).toEqual([
      "migrate-set-capabilities",
      "migrate",
      "query-migrate",
      "query-migrate",
      "query-migrate",
      "query-migrate",
    ]);
    expect(peer.calls[1]?.arguments).toEqual({
      capabilities: [{ capability: "x-ignore-shared", state: true }],
    });
    expect(peer.calls[2]?.arguments).toEqual({ uri: "file:/snap/restore.snap" });
  });

  it("with ignoreShared false, turns x-ignore-shared off (RAM goes into the stream)", async () => {
    const { peer, client } = await scripted({ migrate: [{ status: "completed" }] });
    await migrateToFile(client, "/snap/full-state.tmp", false);
    expect(peer.calls[1]?.arguments).toEqual({
      capabilities: [{ capability: "x-ignore-shared", state: false }],
    });
    expect(peer.calls[2]?.arguments).toEqual({ uri: "file:/snap/full-state.tmp" });
  });

  it.each(["failed", "cancelled"])("a %s migration is SNAPSHOT_FAILED with QEMU's reason", async (status) => {
    const { client } = await scripted({
      migrate: [{ status: "active" }, { status, "error-desc": "No space left on device" }],
    });
    const err = await rejection(migrateToFile(client, "/snap/restore.snap", true));
    expect(err.code).toBe("SNAPSHOT_FAILED");
    expect(err.message).toBe(`migration to file:/snap/restore.snap ${status}: No space left on device`);
  });

  it("a migration that never completes is SNAPSHOT_FAILED after the timeout", async () => {
    const { peer, client } = await scripted({ migrate: [{ status: "active" }] });
    const err = await rejection(migrateToFile(client, "/snap/restore.snap", true, 150));
    expect(err.code).toBe("SNAPSHOT_FAILED");
    expect(err.message).toBe("migration to file:/snap/restore.snap did not finish in 150 ms");
    expect(peer.commands().filter((c) => c === "query-migrate").length).toBeGreaterThan(1);
  });

  it("a refused migrate command fails as QEMU said, without polling", async () => {
    const { peer, client } = await scripted({
      other: (c) =>
        c.execute === "migrate"
          ? { error: { class: "GenericError", desc: "disallowing migration" } }
          : { return: {} },
    });
    const err = await rejection(migrateToFile(client, "/snap/restore.snap", true));
    expect(err.code).toBe("QMP_ERROR");
    expect(err.message).toBe("QMP migrate failed: disallowing migration");
    expect(peer.commands()).toEqual(["migrate-set-capabilities", "migrate"]);
  });
});

describe("waitForIncoming (restore)", () => {
  it.each(["paused", "prelaunch", "running", "postmigrate"])(
    "returns once the VM left inmigrate for %s",
    async (status) => {
      const { peer, client } = await scripted({
        status: [inmigrate, inmigrate, { running: status === "running", status }],
        migrate: [{ status: "active" }],
      });
      await waitForIncoming(client, 10_000);
      expect(peer.commands()).toEqual([
        "query-status",
        "query-migrate",
        "query-status",
        "query-migrate",
        "query-status",
      ]);
    },
  );

  it("a failed incoming migration is RESTORE_FAILED with QEMU's reason", async () => {
    const { client } = await scripted({
      status: [inmigrate],
      migrate: [
        { status: "active" },
        { status: "failed", "error-desc": "load of migration failed: Input/output error" },
      ],
    });
    const err = await rejection(waitForIncoming(client, 10_000));
    expect(err.code).toBe("RESTORE_FAILED");
    expect(err.message).toBe("incoming migration failed: load of migration failed: Input/output error");
  });

  it("leaving inmigrate for another state is RESTORE_FAILED naming it", async () => {
    const { client } = await scripted({
      status: [inmigrate, { running: false, status: "internal-error" }],
      migrate: [{ status: "active" }, { status: "failed", "error-desc": "device state mismatch" }],
    });
    const err = await rejection(waitForIncoming(client, 10_000));
    expect(err.code).toBe("RESTORE_FAILED");
    expect(err.message).toBe("incoming migration ended in state internal-error: device state mismatch");
  });

  it("an incoming migration still running at the deadline is RESTORE_TIMEOUT", async () => {
    const { client } = await scripted({ status: [inmigrate], migrate: [{ status: "active" }] });
    const err = await rejection(waitForIncoming(client, 150));
    expect(err.code).toBe("RESTORE_TIMEOUT");
    expect(err.message).toBe("incoming migration did not finish in 150 ms");
  });

  it("a paused VM on the first poll returns at once", async () => {
    const { peer, client } = await scripted({ status: [paused] });
    await waitForIncoming(client, 10_000);
    expect(peer.commands()).toEqual(["query-status"]);
  });
});
