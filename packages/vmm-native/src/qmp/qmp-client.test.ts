// The QMP client against a real unix-socket peer speaking QMP (greeting, JSON
// lines, ids, events, errors, hang-ups); real QEMU in machine.integration.test.ts.
import { afterEach, describe, expect, it } from "vitest";
import { VmmError } from "../errors.js";
import { type QmpAnswer, type QmpCall, QmpPeer } from "../test-support/qmp-peer.js";
import { QmpClient } from "./qmp-client.js";
import type { QmpEvent } from "./qmp-types.js";

const peers: QmpPeer[] = [];
const clients: QmpClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(peers.splice(0).map((p) => p.close()));
});

async function peer(answer?: (call: QmpCall) => QmpAnswer, listen = true): Promise<QmpPeer> {
  const p = new QmpPeer(answer);
  peers.push(p);
  if (listen) await p.listen();
  return p;
}

async function connect(p: QmpPeer, opts: Parameters<typeof QmpClient.connect>[1] = {}): Promise<QmpClient> {
  const c = await QmpClient.connect(p.path, { timeoutMs: 10_000, ...opts });
  clients.push(c);
  return c;
}

async function rejection(p: Promise<unknown>): Promise<VmmError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof VmmError)) throw new Error(`expected a VmmError rejection, got ${String(err)}`);
  return err;
}

describe("QmpClient.connect", () => {
  it("reads the greeting and negotiates capabilities before anything else", async () => {
    const p = await peer();
    await connect(p);
    expect(p.calls.map((c) => c.raw)).toEqual(['{"execute":"qmp_capabilities","id":1}']);
  });

  it("waits for the greeting: no command is sent before it", async () => {
    const p = await peer();
    p.greet = false;
    const connecting = connect(p);
    await waitUntil(() => p.clients === 1);
    await new Promise((r) => setTimeout(r, 50));
    expect(p.calls).toEqual([]);
    p.send({ QMP: { version: {}, capabilities: [] } });
    await connecting;
    expect(p.commands()).toEqual([]);
    expect(p.calls.map((c) => c.execute)).toEqual(["qmp_capabilities"]);
  });

  it("retries until QEMU has created the socket", async () => {
    const p = await peer(undefined, false);
    const connecting = connect(p);
    await new Promise((r) => setTimeout(r, 100));
    await p.listen();
    await connecting;
    expect(p.calls.map((c) => c.execute)).toEqual(["qmp_capabilities"]);
  });

  it("fails with QEMU_START_FAILED when the socket never comes up", async () => {
    const p = await peer(undefined, false);
    const err = await rejection(QmpClient.connect(p.path, { timeoutMs: 200 }));
    expect(err.code).toBe("QEMU_START_FAILED");
    expect(err.message).toContain(p.path);
    expect((err.cause as NodeJS.ErrnoException).code).toBe("ENOENT");
  });

  it("stops retrying as soon as `abort` settles (QEMU exited)", async () => {
    const p = await peer(undefined, false);
    // a long timeout: only the abort can end this within the test's time
    const err = await rejection(QmpClient.connect(p.path, { timeoutMs: 600_000, abort: Promise.resolve() }));
    expect(err.code).toBe("QEMU_START_FAILED");
  });

  it("fails when QEMU refuses the capabilities negotiation", async () => {
    const p = await peer();
    p.capabilities = { error: { class: "CommandNotFound", desc: "nope" } };
    const err = await rejection(QmpClient.connect(p.path, { timeoutMs: 300 }));
    expect(err.code).toBe("QEMU_START_FAILED");
    expect((err.cause as VmmError).code).toBe("QMP_ERROR");
  });
});

describe("QmpClient.execute", () => {
  it("sends the command with its arguments and a fresh id, and resolves with `return`", async () => {
    const p = await peer((c) =>
      c.execute === "query-status" ? { return: { running: true, status: "running" } } : { return: {} },
    );
    const c = await connect(p);
    expect(await c.execute("query-status", {})).toEqual({ running: true, status: "running" });
    await c.execute("migrate", { uri: "file:/x/state" });
    expect(p.calls.map((x) => x.raw)).toEqual([
      '{"execute":"qmp_capabilities","id":1}',
      '{"execute":"query-status","id":2}',
      '{"execute":"migrate","arguments":{"uri":"file:/x/state"},"id":3}',
    ]);
  });

  it("matches replies to commands by id, whatever their order", async () => {
    const held: Array<() => void> = [];
    const p = await peer(
      (c) =>
        new Promise((resolve) => {
          held.push(() => resolve({ return: { status: c.execute === "stop" ? "paused" : "running" } }));
        }),
    );
    const c = await connect(p);
    const a = c.execute("stop", {});
    const b = c.execute("cont", {});
    await waitUntil(() => held.length === 2);
    held[1]?.(); // answer cont first
    held[0]?.();
    expect(await Promise.all([a, b])).toEqual([{ status: "paused" }, { status: "running" }]);
  });

  it("turns a QMP error into QMP_ERROR with the command and error class", async () => {
    const p = await peer(() => ({ error: { class: "GenericError", desc: "migration is disabled" } }));
    const c = await connect(p);
    const err = await rejection(c.execute("migrate", { uri: "file:/x" }));
    expect(err.code).toBe("QMP_ERROR");
    expect(err.message).toBe("QMP migrate failed: migration is disabled");
    expect(err.details).toMatchObject({ command: "migrate", errorClass: "GenericError" });
  });

  it("times out with QMP_TIMEOUT, ignores the late reply, and keeps working", async () => {
    let late: (() => void) | undefined;
    const p = await peer((c) =>
      c.execute === "stop"
        ? new Promise((resolve) => {
            late = () => resolve({ return: { late: true } });
          })
        : { return: { ok: true } },
    );
    const c = await connect(p);
    const err = await rejection(c.execute("stop", {}, 100));
    expect(err.code).toBe("QMP_TIMEOUT");
    expect(err.message).toContain("stop");
    late?.();
    expect(await c.execute("cont", {})).toEqual({ ok: true });
  });

  it("reads messages split across chunks, several per chunk, and skips non-JSON lines", async () => {
    const p = await peer(() => undefined);
    const c = await connect(p);
    const events: string[] = [];
    c.on("event", (e) => events.push(e.event));
    const a = c.execute("stop", {});
    const b = c.execute("cont", {});
    await waitUntil(() => p.commands().length === 2);
    p.sendRaw('{"return": {"n": 1}, "i');
    p.sendRaw('d": 2}\r\nnot json at all\r\n{"event": "RESUME"}\r\n{"return": {"n": 2}, "id": 3}\r\n');
    expect(await Promise.all([a, b])).toEqual([{ n: 1 }, { n: 2 }]);
    expect(events).toEqual(["RESUME"]);
  });
});

describe("QmpClient events", () => {
  it("emits every event and waitForEvent resolves with the first match", async () => {
    const p = await peer();
    const c = await connect(p);
    const seen: QmpEvent[] = [];
    c.on("event", (e) => seen.push(e));
    const done = c.waitForEvent("MIGRATION", (e) => e.data?.status === "completed");
    p.event("STOP");
    p.event("MIGRATION", { status: "active" });
    p.event("MIGRATION", { status: "completed" });
    const got = await done;
    expect(got).toEqual({
      event: "MIGRATION",
      data: { status: "completed" },
      timestamp: { seconds: 1, microseconds: 2 },
    });
    expect(seen.map((e) => `${e.event}${e.data ? `:${e.data.status}` : ""}`)).toEqual([
      "STOP",
      "MIGRATION:active",
      "MIGRATION:completed",
    ]);
  });

  it("waitForEvent times out with QMP_TIMEOUT", async () => {
    const p = await peer();
    const c = await connect(p);
    const err = await rejection(c.waitForEvent("SHUTDOWN", undefined, 100));
    expect(err.code).toBe("QMP_TIMEOUT");
    expect(err.message).toContain("SHUTDOWN");
  });
});

describe("QmpClient when the connection ends", () => {
  it("rejects pending and later calls with the closeReason error (e.g. VM_EXITED)", async () => {
    const p = await peer(() => undefined);
    const reason = new VmmError("VM_EXITED", "QEMU exited (killed by SIGKILL)");
    const c = await connect(p, { closeReason: async () => reason });
    const pending = c.execute("query-status", {});
    const waiting = c.waitForEvent("STOP");
    await waitUntil(() => p.commands().length === 1);
    p.hangUp();
    expect(await rejection(pending)).toBe(reason);
    expect(await rejection(waiting)).toBe(reason);
    expect(await rejection(c.execute("cont", {}))).toBe(reason);
    expect(await rejection(c.waitForEvent("STOP"))).toBe(reason);
  });

  it("without a closeReason, or one that does not settle within a second, rejects with QMP_ERROR", async () => {
    for (const closeReason of [undefined, () => new Promise<Error>(() => {})]) {
      const p = await peer(() => undefined);
      const c = await connect(p, { closeReason });
      const pending = c.execute("query-status", {});
      await waitUntil(() => p.commands().length === 1);
      p.hangUp();
      const err = await rejection(pending);
      expect(err.code).toBe("QMP_ERROR");
      expect(err.message).toBe("QMP socket closed");
    }
  });

  it("close() rejects pending calls with VM_CLOSED, ends the connection, and is idempotent", async () => {
    const p = await peer(() => undefined);
    const c = await connect(p);
    const pending = c.execute("query-status", {});
    await waitUntil(() => p.commands().length === 1);
    c.close();
    c.close();
    expect((await rejection(pending)).code).toBe("VM_CLOSED");
    expect((await rejection(c.execute("cont", {}))).code).toBe("VM_CLOSED");
    await waitUntil(() => p.clients === 0);
  });
});

/** Polls `cond` until it holds; throws after 5 s. */
async function waitUntil(cond: () => boolean): Promise<void> {
  for (const deadline = Date.now() + 5_000; !cond(); await new Promise((r) => setTimeout(r, 5))) {
    if (Date.now() > deadline) throw new Error(`condition not met within 5 s: ${cond}`);
  }
}
