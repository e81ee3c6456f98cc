// Runs the host session against the real in-guest agent, built for the host
// (`build-agent.sh --native`) and spawned as `sm-init --stdio` (frames on fd 0/1).
import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Duplex, Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FrameDecoder } from "./decoder.js";
import { describeFrame } from "./describe.js";
import { encodeFrame, encodeHeader, encodeRawFrame } from "./encoder.js";
import { AgentError } from "./errors.js";
import type { Frame } from "./messages.js";
import { AgentSession } from "./session.js";

// The agent lives in this repository: a missing build script fails the suite (beforeAll), never skips it.
const script = fileURLToPath(new URL("../../vmm-native/guest/build-agent.sh", import.meta.url));

interface Agent {
  child: ChildProcessWithoutNullStreams;
  stderr: string[];
}

function spawnAgent(bin: string): Agent {
  const child = spawn(bin, ["--stdio"], { stdio: ["pipe", "pipe", "pipe"] });
  const stderr: string[] = [];
  child.stderr.on("data", (c: Buffer) => stderr.push(c.toString()));
  return { child, stderr };
}

function transportOf(a: Agent): Duplex {
  return Duplex.from({ readable: a.child.stdout, writable: a.child.stdin });
}

/** Resolves like `p`, or rejects once `ms` passed, naming what it waited for. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

describe("AgentSession against the real sm-init --stdio", () => {
  let bin = "";
  let agent: Agent;
  let session: AgentSession;
  let dir = "";

  beforeAll(async () => {
    const out = execFileSync("bash", [script, "--native"], { encoding: "utf8" })
      .trim()
      .split("\n")
      .pop() as string;
    bin = join(out, "sm-init");
    expect(existsSync(bin)).toBe(true);
    dir = mkdtempSync(join(tmpdir(), "sm-agent-it-"));
    agent = spawnAgent(bin);
    session = await AgentSession.open(transportOf(agent), { handshakeTimeoutMs: 10_000 });
  });

  afterAll(async () => {
    await session?.close();
    agent?.child.kill("SIGKILL");
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("handshakes and pings", async () => {
    expect(session.agent.version).toBe(1);
    expect(session.agent.agentVersion).toMatch(/sm-init/);
    // each PONG resolves its own ping: round trips through a real pipe take some time
    const rtts = await Promise.all([session.ping(), session.ping(), session.ping()]);
    for (const rtt of rtts) {
      expect(Number.isFinite(rtt)).toBe(true);
      expect(rtt).toBeGreaterThan(0);
    }
  });

  it("streams output in order, with stderr separate and the exit status", async () => {
    const proc = session.exec({
      argv: [
        "sh",
        "-c",
        "i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done; echo oops >&2; exit 7",
      ],
    });
    expect(await proc.started).toBeGreaterThan(0);
    let text = "";
    for await (const c of proc.stdout) text += String(c);
    const lines = text.trim().split("\n");
    expect(lines).toHaveLength(3000);
    for (const [i, l] of lines.entries()) expect(l).toBe(`line ${i}`);
    const r = await proc.wait();
    expect(r.exitCode).toBe(7);
    expect(r.signal).toBeNull();
  });

  it("echoes stdin through cat", async () => {
    const proc = session.exec({ argv: ["cat"] });
    const chunks = Array.from({ length: 50 }, (_, i) => `chunk ${i} ${"x".repeat(i * 100)}\n`);
    const reading = (async () => {
      let s = "";
      for await (const c of proc.stdout) s += String(c);
      return s;
    })();
    for (const c of chunks) proc.stdin.write(c);
    proc.stdin.end();
    expect(await reading).toBe(chunks.join(""));
    expect((await proc.wait()).exitCode).toBe(0);
    const r = await session.run({
      argv: ["cat"],
      stdin: Readable.from([Buffer.from("a"), Buffer.from("b")]),
    });
    expect(r.stdout.toString()).toBe("ab");
  });

  it("runs under a tty and follows resize", async () => {
    const proc = session.exec({
      argv: ["sh", "-c", "stty size; read x; stty size"],
      tty: true,
      cols: 100,
      rows: 30,
    });
    let out = "";
    proc.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    await within(
      (async () => {
        while (!out.includes("30 100")) await new Promise((r) => proc.stdout.once("data", r));
      })(),
      30_000,
      'the first "30 100"',
    );
    proc.resize(120, 40);
    proc.stdin.write("\n");
    const r = await proc.wait();
    expect(out).toContain("30 100");
    expect(out).toContain("40 120");
    expect(r.exitCode).toBe(0);
  });

  it("delivers SIGINT to a running process", async () => {
    const proc = session.exec({ argv: ["sleep", "100"] });
    await proc.started;
    proc.signal(2);
    const r = await proc.wait();
    expect(r).toMatchObject({ exitCode: -1, signal: 2, timedOut: false });
  });

  it("a timeout kills the whole process tree", async () => {
    const proc = session.exec({
      argv: ["sh", "-c", "sleep 1000 & echo $!; (sleep 1000 & echo $!; wait) & wait"],
      timeoutMs: 500,
    });
    let out = "";
    proc.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    const r = await proc.wait();
    expect(r.timedOut).toBe(true);
    expect(r.signal).toBe(9);
    const pids = out.trim().split("\n").map(Number);
    expect(pids).toHaveLength(2);
    const shPid = await proc.started;
    for (const pid of [shPid, ...pids]) expect(gone(pid), `pid ${pid}`).toBe(true);
  });

  it("writes a 64 MiB file and reads it back with the same sha256", async () => {
    const size = 64 * 1024 * 1024;
    const path = join(dir, "big.bin");
    const hashIn = createHash("sha256");
    async function* source() {
      for (let left = size; left > 0; ) {
        const n = Math.min(left, 1 << 20);
        const b = randomBytes(n);
        hashIn.update(b);
        left -= n;
        yield b;
      }
    }
    const t0 = performance.now();
    expect(await session.writeFile(path, source(), { mode: 0o600 })).toBe(size);
    const t1 = performance.now();
    expect(statSync(path).size).toBe(size);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const rs = session.createReadStream(path);
    const hashOut = createHash("sha256");
    let got = 0;
    for await (const c of rs) {
      hashOut.update(c as Buffer);
      got += (c as Buffer).length;
    }
    const t2 = performance.now();
    expect(await rs.info).toMatchObject({ size });
    expect(got).toBe(size);
    expect(hashOut.digest("hex")).toBe(hashIn.digest("hex"));
    console.log(`64 MiB: write ${(t1 - t0).toFixed(0)} ms, read ${(t2 - t1).toFixed(0)} ms`);
    expect((await session.readFile(path, { maxBytes: size })).length).toBe(size);
    await expect(session.readFile(path, { maxBytes: 1000 })).rejects.toMatchObject({ code: "OUTPUT_LIMIT" });
  });

  it("small files: mkdirs, empty file, NOT_FOUND", async () => {
    const p = join(dir, "a/b/c.txt");
    expect(await session.writeFile(p, "héllo", { mkdirs: true })).toBe(6);
    expect((await session.readFile(p)).toString()).toBe("héllo");
    expect(await session.writeFile(join(dir, "empty"), Buffer.alloc(0))).toBe(0);
    expect((await session.readFile(join(dir, "empty"))).length).toBe(0);
    const err = await session.readFile(join(dir, "nope")).catch((e) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect(err.agentCode).toBe("NOT_FOUND");
  });

  it("runs 32 execs concurrently", async () => {
    const results = await Promise.all(
      Array.from({ length: 32 }, (_, i) =>
        session.run({
          argv: [
            "sh",
            "-c",
            `echo start ${i}; head -c 200000 /dev/zero | tr '\\0' x; echo; echo end ${i} >&2`,
          ],
        }),
      ),
    );
    results.forEach((r, i) => {
      expect(r.exitCode).toBe(0);
      expect(r.stdout.toString()).toBe(`start ${i}\n${"x".repeat(200000)}\n`);
      expect(r.stderr.toString()).toBe(`end ${i}\n`);
    });
  });

  it("connects to a TCP server with half-close both ways", async () => {
    const server = createServer({ allowHalfOpen: true }, (sock) => {
      const parts: Buffer[] = [];
      sock.on("data", (c) => parts.push(c));
      sock.on("end", () => sock.end(Buffer.concat(parts).toString().toUpperCase()));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    try {
      const sock = await session.tcpConnect(port);
      sock.end("hello over the agent");
      const parts: Buffer[] = [];
      for await (const c of sock) parts.push(c as Buffer);
      expect(Buffer.concat(parts).toString()).toBe("HELLO OVER THE AGENT");
      const refused = await session.tcpConnect(1).catch((e) => e);
      expect(refused).toBeInstanceOf(AgentError);
      expect(refused.errno).toBe(111);
    } finally {
      server.close();
    }
  });

  it("a 200 MiB flood keeps host buffering within the window", async () => {
    const proc = session.exec({ argv: ["sh", "-c", "yes | head -c 209715200"] });
    const rss0 = process.memoryUsage().rss;
    let total = 0;
    let maxBuffered = 0;
    let n = 0;
    for await (const c of proc.stdout) {
      total += (c as Buffer).length;
      maxBuffered = Math.max(maxBuffered, proc.stdout.inbound.bufferedBytes);
      // A slow consumer now and then: the agent must stop sending while we do not read.
      if (++n % 500 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    const rss1 = process.memoryUsage().rss;
    expect(total).toBe(209715200);
    expect(maxBuffered).toBeLessThanOrEqual(session.hostWindow);
    expect((await proc.wait()).exitCode).toBe(0);
    console.log(
      `flood: max buffered ${maxBuffered} B, rss delta ${((rss1 - rss0) / 1048576).toFixed(1)} MiB`,
    );
  });

  it("failing to start is exit 127 with a message", async () => {
    const r = await session.run({ argv: ["/nonexistent/prog"] });
    expect(r.exitCode).toBe(127);
    expect(r.stderr.length).toBeGreaterThan(0);
  });

  it("configures, starts, watches and signals a workload", async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    server.close(); // free a port number for the workload to listen on
    const a = spawnAgent(bin);
    const s = await AgentSession.open(transportOf(a), { handshakeTimeoutMs: 10_000 });
    try {
      const prog = `require("net").createServer().listen(${port}, "127.0.0.1")`;
      await s.configureWorkload({ argv: [process.execPath, "-e", prog], hold: true, watchPort: port });
      expect((await s.waitForEvent("WORKLOAD_READY")).kind).toBe("WORKLOAD_READY");
      await expect(s.configureWorkload({ argv: ["true"] })).rejects.toMatchObject({ agentCode: "STATE" });
      const pid = await s.startWorkload();
      expect(pid).toBeGreaterThan(0);
      expect((await s.waitForEvent("LISTENING")).value).toBe(port);
      await s.signalWorkload(15);
      const exited = await s.waitForEvent("WORKLOAD_EXITED");
      expect(exited.value & 0x7f).toBe(15); // raw wait status: killed by SIGTERM
    } finally {
      await s.close();
      a.child.kill("SIGKILL");
    }
  });

  it("answers malformed frames with ERROR frames and keeps serving", async () => {
    const a = spawnAgent(bin);
    const dec = new FrameDecoder({ maxPayload: 1 << 20 });
    const frames: Frame[] = [];
    let wake: (() => void) | undefined;
    a.child.stdout.on("data", (c: Buffer) => {
      frames.push(...dec.decode(c));
      wake?.();
    });
    const next = async (): Promise<Frame> => {
      const deadline = Date.now() + 30_000;
      while (frames.length === 0) {
        await within(
          new Promise<void>((r) => (wake = r)),
          Math.max(1, deadline - Date.now()),
          `a frame from the agent (stderr: ${a.stderr.join("").slice(0, 300)})`,
        );
      }
      return frames.shift() as Frame;
    };
    const send = (b: Buffer) => a.child.stdin.write(b);
    try {
      // A request before HELLO.
      send(encodeFrame({ type: "READ_FILE", stream: 5, flags: 0, path: "/etc/hostname" }));
      expect(await next()).toMatchObject({ type: "ERROR", stream: 5, code: 9 });
      send(
        encodeFrame({
          type: "HELLO",
          stream: 0,
          flags: 0,
          minVersion: 1,
          maxVersion: 1,
          maxPayload: 65536,
          initialWindow: 262144,
          nonce: 42n,
        }),
      );
      expect(await next()).toMatchObject({ type: "HELLO_OK", nonce: 42n });
      const cases: Array<[string, Buffer, Partial<Frame>]> = [
        ["bad magic", Buffer.from("XXXXXXXXXXXX"), { type: "ERROR", stream: 0, code: 1 }],
        ["unknown type", encodeRawFrame(0x7f, 0, 0, Buffer.alloc(3)), { type: "ERROR", stream: 0, code: 3 }],
        [
          "too large",
          Buffer.concat([encodeHeader(0x12, 0, 9, 300000), Buffer.alloc(300000)]),
          { type: "ERROR", stream: 0, code: 2 },
        ],
        [
          "bad EXEC payload",
          encodeRawFrame(0x10, 0, 7, Buffer.alloc(5)),
          { type: "ERROR", stream: 7, code: 4 },
        ],
        [
          "bad WINDOW payload",
          encodeRawFrame(0x40, 0, 0, Buffer.alloc(1)),
          { type: "ERROR", stream: 0, code: 4 },
        ],
      ];
      for (const [what, bytes, want] of cases) {
        send(bytes);
        const got = await next();
        expect(got, `${what}: ${describeFrame(got)}`).toMatchObject(want);
      }
      send(encodeFrame({ type: "PING", stream: 0, flags: 0, token: 7n }));
      expect(await next()).toMatchObject({ type: "PONG", token: 7n });
      // Same stream id twice.
      const exec = (stream: number): Buffer =>
        encodeFrame({
          type: "EXEC",
          stream,
          flags: 0,
          execFlags: 0,
          timeoutMs: 0,
          cols: 0,
          rows: 0,
          argv: ["sleep", "100"],
          env: [],
          cwd: "",
          chain: [],
        });
      send(exec(11));
      send(exec(11));
      const seen: Frame[] = [];
      while (!seen.some((f) => f.type === "ERROR" && f.stream === 0)) seen.push(await next());
      expect(seen.find((f) => f.type === "ERROR")).toMatchObject({ code: 6 });
    } finally {
      a.child.kill("SIGKILL");
      console.log(`agent stderr: ${a.stderr.join("").slice(0, 500)}`);
    }
  });
});
