import { mkdtempSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { EXEC_SOCKET_MAX_OUTPUT, type ExecFn, listenExecSocket } from "./exec-socket.js";
import type { ExecOptions, ExecOutput } from "./options.js";
import type { UnixSocketServer } from "./unix-server.js";

// The JSON-lines server of Vm.execPath, driven with an exec function written
// here (the VM side is covered by the integration tests).
let dir: string | undefined;
let server: UnixSocketServer | undefined;

afterEach(async () => {
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  server = undefined;
  dir = undefined;
});

function serve(exec: ExecFn): string {
  dir = mkdtempSync(join(tmpdir(), "sm-execsock-"));
  server = listenExecSocket(join(dir, "exec.sock"), exec);
  return server.path;
}

/** Sends raw bytes (in the given pieces), collects `n` reply lines. */
function talk(path: string, pieces: string[], n: number): Promise<Array<Record<string, unknown>>> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = "";
    const out: Array<Record<string, unknown>> = [];
    sock.setEncoding("utf8");
    sock.on("connect", async () => {
      for (const p of pieces) {
        sock.write(p);
        await new Promise((r) => setTimeout(r, 5));
      }
    });
    sock.on("data", (d) => {
      buf += d;
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        out.push(JSON.parse(buf.slice(0, nl)));
        buf = buf.slice(nl + 1);
      }
      if (out.length >= n) {
        sock.destroy();
        resolve(out);
      }
    });
    sock.on("error", reject);
  });
}

const echoExec: ExecFn = async (o: ExecOptions): Promise<ExecOutput> => ({
  stdout: Buffer.from(o.argv.join(" ")),
  stderr: Buffer.from(String(o.maxOutputBytes)),
  exitCode: 0,
  timedOut: false,
});

describe("execPath server", () => {
  it("splits requests across and within chunks and answers each by id", async () => {
    const path = serve(echoExec);
    const a = JSON.stringify({ id: "a", argv: ["echo", "one"] });
    const b = JSON.stringify({ id: "b", argv: ["echo", "two"], maxOutputBytes: 10 });
    const replies = await talk(path, [a.slice(0, 7), `${a.slice(7)}\n${b}`, "\n\n"], 2);
    const byId = new Map(replies.map((r) => [r.id, r]));
    expect(Buffer.from(String(byId.get("a")?.stdout), "base64").toString()).toBe("echo one");
    expect(Buffer.from(String(byId.get("a")?.stderr), "base64").toString()).toBe(String(64 * 1024 * 1024));
    expect(Buffer.from(String(byId.get("b")?.stderr), "base64").toString()).toBe("10");
  });

  it("answers bad requests with typed errors", async () => {
    const path = serve(echoExec);
    const replies = await talk(
      path,
      [
        "not json\n",
        "42\n",
        `${JSON.stringify({ id: 3, argv: ["x"], maxOutputBytes: EXEC_SOCKET_MAX_OUTPUT + 1 })}\n`,
      ],
      3,
    );
    expect(replies.map((r) => (r.error as { code: string }).code)).toEqual([
      "INVALID_OPTIONS",
      "INVALID_OPTIONS",
      "INVALID_OPTIONS",
    ]);
  });

  it("turns a reply that cannot be encoded into an error reply instead of throwing", async () => {
    const path = serve(async () => ({
      stdout: Buffer.alloc(0),
      stderr: Buffer.alloc(0),
      exitCode: 10n as unknown as number, // JSON.stringify throws on a BigInt
      timedOut: false,
    }));
    const [reply] = await talk(path, [`${JSON.stringify({ id: 7, argv: ["x"] })}\n`], 1);
    expect(reply).toMatchObject({ id: 7, error: { code: "EXEC_OUTPUT_TOO_LARGE" } });
  });

  it("runs at most 8 requests of a connection at once", async () => {
    let running = 0;
    let most = 0;
    const path = serve(async (o) => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, 20));
      running--;
      return echoExec(o);
    });
    const lines = Array.from({ length: 30 }, (_, i) => `${JSON.stringify({ id: i, argv: ["n"] })}\n`).join(
      "",
    );
    const replies = await talk(path, [lines], 30);
    expect(new Set(replies.map((r) => r.id)).size).toBe(30);
    expect(most).toBe(8);
  });
});
