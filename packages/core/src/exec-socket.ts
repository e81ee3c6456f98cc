import { createInterface } from "node:readline";
import { runExec } from "./exec.js";
import type { GuestSession } from "./guest-session.js";
import type { ExecOptions } from "./options.js";
import { UnixSocketServer } from "./unix-server.js";

/** One request line on `Vm.execPath`. Buffers are base64 strings. */
interface ExecLine {
  id?: unknown;
  argv: string[];
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
  chain?: string[];
  stageFiles?: Record<string, string>;
}

/**
 * Serves `Vm.execPath`: a unix socket speaking newline-delimited JSON.
 * Each request `{"id":1,"argv":["uname","-a"],"env":{},"cwd":"/","timeoutMs":0,"stageFiles":{"/p":"<base64>"}}`
 * gets one reply `{"id":1,"exitCode":0,"timedOut":false,"stdout":"<base64>","stderr":"<base64>"}`,
 * or `{"id":1,"error":{"code":"…","message":"…"}}`. Requests on one
 * connection run concurrently; replies carry the request's id.
 */
export function listenExecSocket(path: string, session: GuestSession): UnixSocketServer {
  return UnixSocketServer.listen(path, (sock) => {
    const lines = createInterface({ input: sock, crlfDelay: Number.POSITIVE_INFINITY });
    lines.on("line", (line) => {
      if (!line.trim()) return;
      void handle(session, line).then((reply) => {
        if (!sock.destroyed) sock.write(`${JSON.stringify(reply)}\n`);
      });
    });
  });
}

async function handle(session: GuestSession, line: string): Promise<Record<string, unknown>> {
  let req: ExecLine;
  try {
    req = JSON.parse(line) as ExecLine;
  } catch {
    return { error: { code: "INVALID_OPTIONS", message: "request is not valid JSON" } };
  }
  try {
    const opts: ExecOptions = {
      argv: req.argv,
      env: req.env,
      cwd: req.cwd,
      timeoutMs: req.timeoutMs,
      chain: req.chain,
      stageFiles: Object.fromEntries(
        Object.entries(req.stageFiles ?? {}).map(([p, b]) => [p, Buffer.from(b, "base64")]),
      ),
    };
    const r = await runExec(session, opts);
    return {
      id: req.id,
      exitCode: r.exitCode,
      timedOut: r.timedOut ?? false,
      stdout: r.stdout.toString("base64"),
      stderr: r.stderr.toString("base64"),
    };
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return { id: req.id, error: { code: e.code ?? "EXEC_FAILED", message: e.message ?? String(err) } };
  }
}
