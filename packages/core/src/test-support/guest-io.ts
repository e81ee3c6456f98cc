import { createConnection } from "node:net";
import type { ExecChild } from "../index.js";

/** Reads a spawned child's stream to the end (until the empty Buffer). */
export async function readAll(read: () => Promise<Buffer>): Promise<{ text: string; chunks: number }> {
  const parts: Buffer[] = [];
  for (let c = await read(); c.length > 0; c = await read()) parts.push(c);
  return { text: Buffer.concat(parts).toString(), chunks: parts.length };
}

/** Reads stdout until the text read so far matches `re`; returns it. */
export async function readStdoutUntil(child: ExecChild, re: RegExp): Promise<string> {
  let text = "";
  while (!re.test(text)) {
    const c = await child.readStdout();
    if (c.length === 0) throw new Error(`stdout ended before ${re}; got ${JSON.stringify(text)}`);
    text += c.toString();
  }
  return text;
}

/** One HTTP/1.0 GET over a unix socket; resolves with the whole response (or rejects). */
export function httpOverUnix(path: string, urlPath = "/"): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let out = "";
    sock.setEncoding("utf8");
    sock.on("connect", () => sock.write(`GET ${urlPath} HTTP/1.0\r\nHost: guest\r\n\r\n`));
    sock.on("data", (d) => (out += d));
    sock.on("error", reject);
    sock.on("close", () => resolve(out));
  });
}

/** Retries `fn` until it returns a truthy value or `timeoutMs` passes (errors count as misses). */
export async function retry<T>(fn: () => Promise<T>, timeoutMs = 20_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = new Error(`no result: ${JSON.stringify(v)}`);
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw last;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * PID of the QEMU process behind a `Vm`. The public API deliberately exposes
 * no pid, so this reads the VM's private worker: only for tests that must
 * kill a specific VM "from outside".
 */
export function vmQemuPid(vm: unknown): number {
  const pid = (vm as { worker?: { machine?: { pid?: number } } }).worker?.machine?.pid;
  if (typeof pid !== "number") throw new Error("cannot find the QEMU pid of this Vm (internals changed?)");
  return pid;
}
