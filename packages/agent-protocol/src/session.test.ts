import { describe, expect, it, vi } from "vitest";
import { encodeFrame, encodeRawFrame } from "./encoder.js";
import {
  AgentError,
  HandshakeError,
  OperationAbortedError,
  OutputLimitError,
  ProtocolError,
  SessionClosedError,
} from "./errors.js";
import type { Frame } from "./messages.js";
import { AgentSession } from "./session.js";
import { FakeAgent } from "./test-fake-agent.js";

async function connect(window = 262144, hostWindow?: number) {
  const agent = new FakeAgent();
  const [session] = await Promise.all([
    AgentSession.open(agent.hostSide, hostWindow ? { initialWindow: hostWindow } : {}),
    agent.handshake(window),
  ]);
  return { agent, session };
}

const exitFrame = (stream: number, exitCode = 0): Frame => ({
  type: "EXIT",
  stream,
  flags: 0,
  exitCode,
  termSignal: 0,
  timedOut: 0,
  peakRssKib: 0n,
});

describe("handshake", () => {
  it("discards stale bytes and HELLO_OKs with another nonce", async () => {
    const agent = new FakeAgent();
    const opening = AgentSession.open(agent.hostSide);
    const hello = await agent.next("HELLO");
    expect(hello).toMatchObject({ minVersion: 1, maxVersion: 1, maxPayload: 65536, initialWindow: 262144 });
    agent.sendRaw(Buffer.from("stale console garbage SM\x13\x00"));
    agent.send({ type: "STDOUT", stream: 4, flags: 0, data: Buffer.from("old session") });
    agent.send({
      type: "HELLO_OK",
      stream: 0,
      flags: 0,
      version: 1,
      maxPayload: 65536,
      initialWindow: 1000,
      nonce: hello.nonce + 1n,
      features: 0,
      agentVersion: "stale",
    });
    agent.send({
      type: "HELLO_OK",
      stream: 0,
      flags: 0,
      version: 1,
      maxPayload: 131072,
      initialWindow: 4096,
      nonce: hello.nonce,
      features: 3,
      agentVersion: "real",
    });
    agent.send({ type: "EVENT", stream: 0, flags: 0, kind: 1, value: 0, detail: "" });
    const session = await opening;
    expect(session.agent).toEqual({
      version: 1,
      maxPayload: 131072,
      initialWindow: 4096,
      features: 3,
      agentVersion: "real",
    });
    expect((await session.waitForEvent("WORKLOAD_READY")).kind).toBe("WORKLOAD_READY");
    await session.close();
  });

  it("fails with HandshakeError when the agent refuses the version", async () => {
    const agent = new FakeAgent();
    const opening = AgentSession.open(agent.hostSide);
    await agent.next("HELLO");
    agent.send({ type: "ERROR", stream: 0, flags: 0, code: 8, errno: 0, message: "want v2" });
    await expect(opening).rejects.toBeInstanceOf(HandshakeError);
  });

  it("fails with HandshakeError on timeout and on abort", async () => {
    await expect(
      AgentSession.open(new FakeAgent().hostSide, { handshakeTimeoutMs: 20 }),
    ).rejects.toBeInstanceOf(HandshakeError);
    const ac = new AbortController();
    const p = AgentSession.open(new FakeAgent().hostSide, { signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toBeInstanceOf(HandshakeError);
  });

  it("rejects with SessionClosedError when the transport ends first", async () => {
    const agent = new FakeAgent();
    const p = AgentSession.open(agent.hostSide);
    await agent.next("HELLO");
    agent.side.end();
    await expect(p).rejects.toBeInstanceOf(SessionClosedError);
  });
});

describe("session", () => {
  it("pings: resolves on the PONG with its token, with the round trip in ms", async () => {
    const { agent, session } = await connect();
    vi.useFakeTimers({ toFake: ["performance"] });
    try {
      const p = session.ping();
      const q = session.ping();
      const [ping, ping2] = [await agent.next("PING"), await agent.next("PING")];
      expect(ping2.token).not.toBe(ping.token);
      vi.advanceTimersByTime(25);
      agent.send({ type: "PONG", stream: 0, flags: 0, token: ping2.token });
      expect(await q).toBe(25);
      vi.advanceTimersByTime(10);
      agent.send({ type: "PONG", stream: 0, flags: 0, token: ping.token });
      expect(await p).toBe(35);
    } finally {
      vi.useRealTimers();
    }
    await session.close();
  });

  it("runs an exec: request fields, output in order, stdin, exit", async () => {
    const { agent, session } = await connect();
    const proc = session.exec({
      argv: ["cat"],
      env: { A: "1" },
      cwd: "/tmp",
      tty: true,
      cols: 100,
      rows: 30,
      timeoutMs: 5,
    });
    const req = await agent.next("EXEC");
    expect(req).toMatchObject({
      execFlags: 1,
      timeoutMs: 5,
      cols: 100,
      rows: 30,
      argv: ["cat"],
      env: ["A=1"],
      cwd: "/tmp",
    });
    agent.send({ type: "STARTED", stream: req.stream, flags: 0, pid: 77 });
    expect(await proc.started).toBe(77);
    proc.stdin.write("ping\n");
    proc.stdin.end();
    const stdin = await agent.next("STDIN");
    expect(Buffer.from(stdin.data).toString()).toBe("ping\n");
    expect((await agent.next("STDIN")).flags).toBe(1);
    proc.resize(120, 40);
    expect(await agent.next("RESIZE")).toMatchObject({ cols: 120, rows: 40 });
    proc.signal(2);
    expect(await agent.next("SIGNAL")).toMatchObject({ signum: 2 });
    for (const s of ["a", "b", "c"])
      agent.send({ type: "STDOUT", stream: req.stream, flags: 0, data: Buffer.from(s) });
    agent.send({ type: "STDOUT", stream: req.stream, flags: 1, data: Buffer.alloc(0) });
    agent.send({ type: "STDERR", stream: req.stream, flags: 1, data: Buffer.from("e") });
    agent.send({
      type: "EXIT",
      stream: req.stream,
      flags: 0,
      exitCode: -1,
      termSignal: 2,
      timedOut: 0,
      peakRssKib: 999n,
    });
    const chunks: string[] = [];
    for await (const c of proc.stdout) chunks.push(String(c));
    expect(chunks.join("")).toBe("abc");
    expect(await proc.wait()).toEqual({ exitCode: -1, signal: 2, timedOut: false, peakRssKib: 999 });
    expect(session.openStreams).toBe(0);
    await session.close();
  });

  it("run() collects output and reports ERROR replies as AgentError", async () => {
    const { agent, session } = await connect();
    const p = session.run({ argv: ["echo"] });
    const req = await agent.next("EXEC");
    expect((await agent.next("STDIN")).flags).toBe(1); // no input: stdin closed at once
    agent.send({ type: "STDOUT", stream: req.stream, flags: 1, data: Buffer.from("hi\n") });
    agent.send({ type: "STDERR", stream: req.stream, flags: 1, data: Buffer.alloc(0) });
    agent.send(exitFrame(req.stream, 3));
    const r = await p;
    expect(r.stdout.toString()).toBe("hi\n");
    expect(r.exitCode).toBe(3);

    const q = session.run({ argv: ["x"] });
    const req2 = await agent.next("EXEC");
    agent.send({ type: "ERROR", stream: req2.stream, flags: 0, code: 14, errno: 0, message: "too many" });
    const err = await q.catch((e) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect(err).toMatchObject({ code: "AGENT_LIMIT", agentCode: "LIMIT", agentMessage: "too many" });
    await session.close();
  });

  it("run() with maxOutputBytes fails with OutputLimitError and resets the exec", async () => {
    const { agent, session } = await connect();
    const p = session.run({ argv: ["yes"], maxOutputBytes: 1000 });
    const req = await agent.next("EXEC");
    agent.send({ type: "STDOUT", stream: req.stream, flags: 0, data: Buffer.alloc(800, 0x79) });
    agent.send({ type: "STDOUT", stream: req.stream, flags: 0, data: Buffer.alloc(800, 0x79) });
    await agent.next("RESET", true);
    agent.send(exitFrame(req.stream, -1));
    await expect(p).rejects.toBeInstanceOf(OutputLimitError);
    await session.close();
  });

  it("an AbortSignal resets the exec", async () => {
    const { agent, session } = await connect();
    const ac = new AbortController();
    const p = session.run({ argv: ["sleep", "100"], signal: ac.signal });
    const req = await agent.next("EXEC");
    ac.abort();
    await agent.next("RESET", true);
    agent.send({ type: "STDOUT", stream: req.stream, flags: 1, data: Buffer.alloc(0) });
    agent.send({ type: "STDERR", stream: req.stream, flags: 1, data: Buffer.alloc(0) });
    agent.send({
      type: "EXIT",
      stream: req.stream,
      flags: 0,
      exitCode: -1,
      termSignal: 9,
      timedOut: 0,
      peakRssKib: 0n,
    });
    await expect(p).rejects.toBeInstanceOf(OperationAbortedError);
    await session.close();
  });
});

describe("flow control", () => {
  it("a flooding guest that honours the window never makes the host buffer more than the window", async () => {
    const window = 16384;
    const { agent, session } = await connect(262144, window);
    const proc = session.exec({ argv: ["yes"] });
    const req = await agent.next("EXEC");
    let credit = window;
    let sent = 0;
    const total = 50 * window;
    let maxBuffered = 0;
    // Slow consumer: reads one chunk per event-loop turn.
    const reading = (async () => {
      let got = 0;
      for await (const c of proc.stdout) {
        got += (c as Buffer).length;
        maxBuffered = Math.max(maxBuffered, proc.stdout.inbound.bufferedBytes);
        await new Promise((r) => setImmediate(r));
      }
      return got;
    })();
    while (sent < total) {
      if (credit === 0) {
        const w = await agent.next("WINDOW", true);
        expect(w.stream).toBe(req.stream);
        credit += w.increment;
        continue;
      }
      const n = Math.min(credit, 1000, total - sent);
      agent.send({ type: "STDOUT", stream: req.stream, flags: 0, data: Buffer.alloc(n, 0x79) });
      credit -= n;
      sent += n;
      maxBuffered = Math.max(maxBuffered, proc.stdout.inbound.bufferedBytes);
      expect(proc.stdout.inbound.outstanding).toBeLessThanOrEqual(window);
    }
    agent.send({ type: "STDOUT", stream: req.stream, flags: 1, data: Buffer.alloc(0) });
    agent.send({ type: "STDERR", stream: req.stream, flags: 1, data: Buffer.alloc(0) });
    agent.send(exitFrame(req.stream));
    expect(await reading).toBe(total);
    expect(maxBuffered).toBeLessThanOrEqual(window);
    await session.close();
  });

  it("grants no window while nobody reads", async () => {
    const { agent, session } = await connect(262144, 8192);
    const proc = session.exec({ argv: ["yes"] });
    const req = await agent.next("EXEC");
    agent.send({ type: "STDOUT", stream: req.stream, flags: 0, data: Buffer.alloc(8192) });
    await agent.settle();
    expect(agent.pending().filter((f) => f.type === "WINDOW")).toHaveLength(0);
    expect(proc.stdout.inbound.bufferedBytes).toBe(8192);
    proc.stdout.resume();
    expect((await agent.next("WINDOW", true)).increment).toBe(8192);
    await session.close();
  });

  it("a guest overrunning the window fails the session with ProtocolError FLOW_CONTROL", async () => {
    const { agent, session } = await connect(262144, 4096);
    const proc = session.exec({ argv: ["yes"] });
    const req = await agent.next("EXEC");
    const closed = new Promise<SessionClosedError>((r) => session.once("close", r));
    agent.send({ type: "STDOUT", stream: req.stream, flags: 0, data: Buffer.alloc(4097) });
    const err = await proc.wait().catch((e) => e);
    expect(err).toBeInstanceOf(SessionClosedError);
    expect(err.cause).toBeInstanceOf(ProtocolError);
    expect(err.cause.reason).toBe("FLOW_CONTROL");
    expect(await closed).toBe(err);
  });

  it("stdin respects the agent's window and the Writable's backpressure", async () => {
    const { agent, session } = await connect(4096);
    const proc = session.exec({ argv: ["cat"] });
    const req = await agent.next("EXEC");
    const data = Buffer.alloc(20000, 0x61);
    const writable = proc.stdin.write(data);
    expect(writable).toBe(true); // below the Writable's highWaterMark
    let got = 0;
    while (got < 4096) got += (await agent.next("STDIN")).data.length;
    await agent.settle();
    expect(got).toBe(4096);
    expect(agent.pending().filter((f) => f.type === "STDIN")).toHaveLength(0);
    let total = got;
    while (total < data.length) {
      agent.send({ type: "WINDOW", stream: req.stream, flags: 0, increment: 4096 });
      let chunk = 0;
      while (chunk < Math.min(4096, data.length - total)) chunk += (await agent.next("STDIN")).data.length;
      total += chunk;
    }
    expect(total).toBe(20000);
    await session.close();
  });

  it("splits outgoing data by the agent's max payload", async () => {
    const agent = new FakeAgent();
    const [session] = await Promise.all([AgentSession.open(agent.hostSide), agent.handshake(1 << 20, 4096)]);
    const p = session.writeFile("/f", Buffer.alloc(10000, 1));
    const req = await agent.next("WRITE_FILE");
    const sizes: number[] = [];
    for (;;) {
      const f = await agent.next("FILE_DATA");
      sizes.push(f.data.length);
      if (f.flags & 1) break;
    }
    expect(sizes).toEqual([4096, 4096, 1808]);
    agent.send({ type: "OK", stream: req.stream, flags: 0, value: 10000n });
    expect(await p).toBe(10000);
    await session.close();
  });
});

describe("files, tcp, workload, events", () => {
  it("writes a file from an async iterable and reads one back as a stream", async () => {
    const { agent, session } = await connect();
    async function* gen() {
      yield Buffer.from("hello ");
      yield "world";
    }
    const w = session.writeFile("/tmp/x", gen(), { mode: 0o600, mkdirs: true });
    const req = await agent.next("WRITE_FILE");
    expect(req).toMatchObject({ path: "/tmp/x", mode: 0o600, writeFlags: 1 });
    let body = "";
    for (;;) {
      const f = await agent.next("FILE_DATA");
      body += Buffer.from(f.data).toString();
      if (f.flags & 1) break;
    }
    expect(body).toBe("hello world");
    agent.send({ type: "OK", stream: req.stream, flags: 0, value: 11n });
    expect(await w).toBe(11);

    const r = session.createReadStream("/tmp/x");
    const rq = await agent.next("READ_FILE");
    agent.send({ type: "FILE_INFO", stream: rq.stream, flags: 0, size: 11n, mode: 0o4755 });
    agent.send({ type: "FILE_DATA", stream: rq.stream, flags: 0, data: Buffer.from("hello ") });
    agent.send({ type: "FILE_DATA", stream: rq.stream, flags: 1, data: Buffer.from("world") });
    agent.send({ type: "OK", stream: rq.stream, flags: 0, value: 11n });
    expect(await r.info).toEqual({ size: 11, mode: 0o4755 });
    const parts: Buffer[] = [];
    for await (const c of r) parts.push(c as Buffer);
    expect(Buffer.concat(parts).toString()).toBe("hello world");
    await session.close();
  });

  it("readFile rejects with AgentError NOT_FOUND; writeFile stops sending at ERROR", async () => {
    const { agent, session } = await connect(4096);
    const r = session.readFile("/nope");
    const rq = await agent.next("READ_FILE");
    agent.send({ type: "ERROR", stream: rq.stream, flags: 0, code: 10, errno: 2, message: "no such file" });
    await expect(r).rejects.toMatchObject({ code: "AGENT_NOT_FOUND", errno: 2 });

    const w = session.writeFile("/ro/x", Buffer.alloc(100000));
    const wq = await agent.next("WRITE_FILE");
    agent.send({ type: "ERROR", stream: wq.stream, flags: 0, code: 11, errno: 30, message: "read-only" });
    await expect(w).rejects.toMatchObject({ code: "AGENT_IO", errno: 30 });
    await agent.settle();
    const sent = agent
      .pending()
      .filter((f) => f.type === "FILE_DATA")
      .reduce((n, f) => n + (f as { data: Uint8Array }).data.length, 0);
    expect(sent).toBeLessThanOrEqual(4096);
    await session.close();
  });

  it("writeFile aborts with RESET and OperationAbortedError", async () => {
    const { agent, session } = await connect(4096);
    const ac = new AbortController();
    const w = session.writeFile("/x", Buffer.alloc(100000), { signal: ac.signal });
    // expectation attached at once: w may reject while the test waits for the RESET
    const rejected = expect(w).rejects.toBeInstanceOf(OperationAbortedError);
    const wq = await agent.next("WRITE_FILE");
    ac.abort();
    await agent.next("RESET", true);
    await rejected;
    agent.send({ type: "ERROR", stream: wq.stream, flags: 0, code: 12, errno: 0, message: "cancelled" });
    await session.close();
  });

  it("tcpConnect gives a half-closable Duplex; refused connections reject", async () => {
    const { agent, session } = await connect();
    const c = session.tcpConnect(8080);
    const req = await agent.next("TCP_CONNECT");
    expect(req).toMatchObject({ port: 8080, host: "" });
    agent.send({ type: "CONNECTED", stream: req.stream, flags: 0 });
    const sock = await c;
    sock.end("GET /");
    expect(Buffer.from((await agent.next("TCP_DATA")).data).toString()).toBe("GET /");
    expect((await agent.next("TCP_DATA")).flags).toBe(1);
    agent.send({ type: "TCP_DATA", stream: req.stream, flags: 0, data: Buffer.from("200 OK") });
    agent.send({ type: "TCP_DATA", stream: req.stream, flags: 1, data: Buffer.alloc(0) });
    agent.send({ type: "OK", stream: req.stream, flags: 0, value: 0n });
    const parts: Buffer[] = [];
    for await (const x of sock) parts.push(x as Buffer);
    expect(Buffer.concat(parts).toString()).toBe("200 OK");

    const d = session.tcpConnect(9, "::1");
    const req2 = await agent.next("TCP_CONNECT");
    agent.send({ type: "ERROR", stream: req2.stream, flags: 0, code: 11, errno: 111, message: "refused" });
    await expect(d).rejects.toMatchObject({ code: "AGENT_IO", errno: 111 });
    await session.close();
  });

  it("configures, starts and signals the workload; events are sticky for late subscribers", async () => {
    const { agent, session } = await connect();
    const iter = session.events();
    const cfg = session.configureWorkload({
      argv: ["/srv/app"],
      env: ["X=1"],
      hold: true,
      watchPort: 8080,
      user: "app",
    });
    const c = await agent.next("WORKLOAD_CONFIG");
    expect(c).toMatchObject({
      workloadFlags: 3,
      watchPort: 8080,
      argv: ["/srv/app"],
      env: ["X=1"],
      user: "app",
    });
    agent.send({ type: "OK", stream: c.stream, flags: 0, value: 0n });
    await cfg;
    agent.send({ type: "EVENT", stream: 0, flags: 0, kind: 1, value: 0, detail: "" });
    const start = session.startWorkload();
    const s = await agent.next("WORKLOAD_START");
    agent.send({ type: "OK", stream: s.stream, flags: 0, value: 1234n });
    expect(await start).toBe(1234);
    agent.send({ type: "EVENT", stream: 0, flags: 0, kind: 3, value: 8080, detail: "" });
    expect((await iter.next()).value).toMatchObject({ kind: "WORKLOAD_READY" });
    expect((await iter.next()).value).toMatchObject({ kind: "LISTENING", value: 8080 });
    // Late subscribers still see them.
    expect(await session.waitForEvent("LISTENING")).toMatchObject({ value: 8080 });
    expect(session.latestEvent("WORKLOAD_READY")).toBeDefined();
    const sig = session.signalWorkload(15);
    const sq = await agent.next("WORKLOAD_SIGNAL");
    agent.send({ type: "ERROR", stream: sq.stream, flags: 0, code: 15, errno: 0, message: "no workload" });
    await expect(sig).rejects.toMatchObject({ code: "AGENT_STATE" });
    await session.close();
    expect((await iter.next()).done).toBe(true);
  });

  it("workloadLogs reads the tail like a file and reports the total written", async () => {
    const { agent, session } = await connect();
    const logs = session.workloadLogs({ maxBytes: 10 });
    const rq = await agent.next("WORKLOAD_LOGS");
    expect(rq.maxBytes).toBe(10);
    agent.send({ type: "FILE_INFO", stream: rq.stream, flags: 0, size: 10n, mode: 0 });
    agent.send({ type: "FILE_DATA", stream: rq.stream, flags: 0, data: Buffer.from("0123") });
    agent.send({ type: "FILE_DATA", stream: rq.stream, flags: 1, data: Buffer.from("456789") });
    agent.send({ type: "OK", stream: rq.stream, flags: 0, value: 123456n });
    expect(await logs).toEqual({ tail: Buffer.from("0123456789"), totalBytes: 123456 });

    // a hostile agent sending more than asked for is cut off
    const over = session.workloadLogs({ maxBytes: 4 });
    const oq = await agent.next("WORKLOAD_LOGS");
    agent.send({ type: "FILE_INFO", stream: oq.stream, flags: 0, size: 4n, mode: 0 });
    agent.send({ type: "FILE_DATA", stream: oq.stream, flags: 0, data: Buffer.from("too much") });
    await expect(over).rejects.toMatchObject({ code: "OUTPUT_LIMIT" });
    expect((await agent.next("RESET")).stream).toBe(oq.stream);
    await session.close();
  });

  it("workloadLogs refuses an agent that does not announce the logs feature", async () => {
    const agent = new FakeAgent();
    const [session] = await Promise.all([
      AgentSession.open(agent.hostSide),
      agent.handshake(262144, 65536, 3),
    ]);
    await expect(session.workloadLogs()).rejects.toMatchObject({ code: "AGENT_UNKNOWN_TYPE" });
    await session.close();
  });
});

describe("failure and close", () => {
  it("close() rejects every pending operation and is idempotent", async () => {
    const { agent, session } = await connect();
    const ops = [
      session.exec({ argv: ["sleep"] }).wait(),
      session.exec({ argv: ["sleep"] }).started,
      session.writeFile("/x", Buffer.alloc(1 << 20)),
      session.readFile("/y"),
      session.tcpConnect(1),
      session.configureWorkload({ argv: [] }),
      session.ping(),
      session.waitForEvent("LISTENING"),
    ];
    await agent.next("EXEC");
    await session.close();
    await session.close();
    for (const op of ops) await expect(op).rejects.toBeInstanceOf(SessionClosedError);
    expect(() => session.exec({ argv: ["x"] })).toThrow(SessionClosedError);
    await expect(session.ping()).rejects.toBeInstanceOf(SessionClosedError);
    await expect(session.run({ argv: ["x"] })).rejects.toBeInstanceOf(SessionClosedError);
    await expect(session.writeFile("/x", "y")).rejects.toBeInstanceOf(SessionClosedError);
  });

  it("transport end and malformed frames reject pending operations with the cause", async () => {
    const a = await connect();
    const w = a.session.exec({ argv: ["x"] }).wait();
    a.agent.side.end();
    const e1 = await w.catch((e) => e);
    expect(e1).toBeInstanceOf(SessionClosedError);
    expect(String(e1.cause)).toMatch(/EOF/);

    for (const [bytes, reason] of [
      [encodeRawFrame(0x7e, 0, 0, Buffer.alloc(0)), "UNKNOWN_TYPE"],
      [encodeRawFrame(0x11, 0, 1, Buffer.alloc(2)), "BAD_PAYLOAD"],
      [Buffer.from("not a frame!"), "BAD_FRAME"],
      [
        encodeFrame({
          type: "EXEC",
          stream: 1,
          flags: 0,
          execFlags: 0,
          timeoutMs: 0,
          cols: 0,
          rows: 0,
          argv: [],
          env: [],
          cwd: "",
          chain: [],
        }),
        "UNEXPECTED_FRAME",
      ],
      [encodeFrame({ type: "PONG", stream: 0, flags: 0, token: 999n }), "UNEXPECTED_FRAME"],
    ] as const) {
      const { agent, session } = await connect();
      const p = session.readFile("/z");
      await agent.next("READ_FILE");
      agent.sendRaw(bytes);
      const err = await p.catch((e) => e);
      expect(err).toBeInstanceOf(SessionClosedError);
      expect(err.cause).toBeInstanceOf(ProtocolError);
      expect(err.cause.reason).toBe(reason);
      expect(session.closed).toBe(true);
    }
  });

  it("frames for streams that are not open are dropped", async () => {
    const { agent, session } = await connect();
    agent.send({ type: "STDOUT", stream: 4242, flags: 0, data: Buffer.from("late") });
    const p = session.ping();
    const ping = await agent.next("PING");
    agent.send({ type: "PONG", stream: 0, flags: 0, token: ping.token });
    await p;
    expect(session.closed).toBe(false);
    await session[Symbol.asyncDispose]();
    expect(session.closed).toBe(true);
  });
});
