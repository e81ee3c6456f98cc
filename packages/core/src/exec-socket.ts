import type { Socket } from "node:net";
import { DEFAULT_OUTPUT_CAP } from "./exec.js";
import type { ExecOptions, ExecOutput } from "./options.js";
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
  maxOutputBytes?: number;
}

/** Runs one exec (the VM's `exec`, with its caps and host-side timeout). */
export type ExecFn = (options: ExecOptions) => Promise<ExecOutput>;

/** Longest request line accepted (it carries `stageFiles` as base64). */
export const EXEC_SOCKET_MAX_LINE = 96 * 1024 * 1024;
/**
 * Largest `maxOutputBytes` a request may ask for: both streams as base64 in
 * one JSON line must stay far below V8's string limit (~512 MiB).
 */
export const EXEC_SOCKET_MAX_OUTPUT = 128 * 1024 * 1024;
/** Requests of one connection that run at once; reading pauses beyond. */
const MAX_IN_FLIGHT = 8;
/** Reading pauses while this many reply bytes wait for the client to read them. */
const MAX_UNREAD_REPLIES = 64 * 1024 * 1024;

/**
 * Serves `Vm.execPath`: a unix socket speaking newline-delimited JSON.
 * Each request `{"id":1,"argv":["uname","-a"],"env":{},"cwd":"/","timeoutMs":0,"stageFiles":{"/p":"<base64>"},"maxOutputBytes":1048576}`
 * gets one reply `{"id":1,"exitCode":0,"timedOut":false,"stdout":"<base64>","stderr":"<base64>"}`,
 * or `{"id":1,"error":{"code":"…","message":"…"}}`. Requests on one
 * connection run concurrently (up to 8); replies carry the request's id.
 *
 * Bounded whatever the client or the guest does: request lines longer than
 * {@link EXEC_SOCKET_MAX_LINE} end the connection, output is capped per
 * request (`maxOutputBytes`, at most {@link EXEC_SOCKET_MAX_OUTPUT}), a
 * client that does not read its replies stops being read, and a reply that
 * cannot be encoded becomes an error reply instead of an exception.
 */
export function listenExecSocket(path: string, exec: ExecFn): UnixSocketServer {
  return UnixSocketServer.listen(path, (sock) => serveConnection(sock, exec));
}

function serveConnection(sock: Socket, exec: ExecFn): void {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let inFlight = 0;
  let refused = false;
  const queue: string[] = [];

  const updateFlow = () => {
    if (sock.destroyed || refused) return;
    if (inFlight >= MAX_IN_FLIGHT || sock.writableLength > MAX_UNREAD_REPLIES) sock.pause();
    else sock.resume();
  };
  const reply = (obj: Record<string, unknown>) => {
    if (sock.destroyed) return;
    let line: string;
    try {
      line = `${JSON.stringify(obj)}\n`;
    } catch (err) {
      line = `${JSON.stringify({
        id: obj.id,
        error: {
          code: "EXEC_OUTPUT_TOO_LARGE",
          message: `reply could not be encoded: ${(err as Error).message}`,
        },
      })}\n`;
    }
    sock.write(line);
  };
  const startNext = () => {
    while (inFlight < MAX_IN_FLIGHT && queue.length > 0) {
      const line = queue.shift() as string;
      inFlight++;
      void handle(exec, line)
        .then(reply, (err: unknown) =>
          reply({ error: { code: "EXEC_FAILED", message: (err as Error)?.message ?? String(err) } }),
        )
        .finally(() => {
          inFlight--;
          startNext();
          updateFlow();
        });
    }
    updateFlow();
  };

  sock.on("drain", updateFlow);
  sock.on("data", (chunk: Buffer) => {
    if (refused) return; // read and dropped, so the client can finish writing and see our end
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl >= 0; nl = chunk.indexOf(10, start)) {
      pending.push(chunk.subarray(start, nl));
      const line = Buffer.concat(pending, pendingBytes + nl - start).toString("utf8");
      pending = [];
      pendingBytes = 0;
      start = nl + 1;
      if (line.trim()) queue.push(line);
    }
    if (start < chunk.length) {
      pending.push(chunk.subarray(start));
      pendingBytes += chunk.length - start;
      if (pendingBytes > EXEC_SOCKET_MAX_LINE) {
        reply({
          error: {
            code: "INVALID_OPTIONS",
            message: `request line longer than ${EXEC_SOCKET_MAX_LINE} bytes; closing the connection`,
          },
        });
        pending = [];
        pendingBytes = 0;
        queue.length = 0;
        refused = true;
        sock.end();
        sock.resume();
        return;
      }
    }
    startNext();
  });
}

async function handle(exec: ExecFn, line: string): Promise<Record<string, unknown>> {
  let req: ExecLine;
  try {
    req = JSON.parse(line) as ExecLine;
  } catch {
    return { error: { code: "INVALID_OPTIONS", message: "request is not valid JSON" } };
  }
  if (!req || typeof req !== "object")
    return { error: { code: "INVALID_OPTIONS", message: "request must be a JSON object" } };
  try {
    const maxOutputBytes = req.maxOutputBytes ?? DEFAULT_OUTPUT_CAP;
    if (typeof maxOutputBytes !== "number" || maxOutputBytes > EXEC_SOCKET_MAX_OUTPUT) {
      return {
        id: req.id,
        error: {
          code: "INVALID_OPTIONS",
          message: `maxOutputBytes must be a number up to ${EXEC_SOCKET_MAX_OUTPUT} on execPath`,
        },
      };
    }
    const opts: ExecOptions = {
      argv: req.argv,
      env: req.env,
      cwd: req.cwd,
      timeoutMs: req.timeoutMs,
      chain: req.chain,
      maxOutputBytes,
      stageFiles: Object.fromEntries(
        Object.entries(req.stageFiles ?? {}).map(([p, b]) => [p, Buffer.from(String(b), "base64")]),
      ),
    };
    const r = await exec(opts);
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
