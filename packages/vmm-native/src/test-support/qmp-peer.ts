import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** One command as the client sent it. */
export interface QmpCall {
  execute: string;
  arguments?: Record<string, unknown>;
  id?: unknown;
  /** The exact line received. */
  raw: string;
}

/** How the peer answers a command: a QMP `return`, a QMP `error`, or nothing (`undefined`). */
export type QmpAnswer =
  | { return: unknown }
  | { error: { class: string; desc: string } }
  | undefined
  | Promise<{ return: unknown } | { error: { class: string; desc: string } } | undefined>;

/**
 * A QMP server on a real unix socket, speaking the wire protocol the way QEMU
 * does (greeting, one JSON object per line, `id` echoed, events): what the
 * QMP client and the migration steps are tested against. `answer` decides
 * the reply to each command but `qmp_capabilities` (see `capabilities`).
 */
export class QmpPeer {
  readonly path: string;
  readonly calls: QmpCall[] = [];
  private readonly dir: string;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  /** Set to false before a client connects to withhold the greeting. */
  greet = true;
  /** The answer to `qmp_capabilities` (`undefined`: none). */
  capabilities: QmpAnswer = { return: {} };

  constructor(public answer: (call: QmpCall) => QmpAnswer = () => ({ return: {} })) {
    this.dir = mkdtempSync(join(tmpdir(), "sm-qmp-"));
    this.path = join(this.dir, "qmp.sock");
  }

  /** Starts listening on {@link path}. */
  async listen(): Promise<void> {
    const server = createServer((sock) => this.serve(sock));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.path, () => resolve());
    });
  }

  private serve(sock: Socket): void {
    this.sockets.add(sock);
    sock.on("close", () => this.sockets.delete(sock));
    sock.on("error", () => {});
    sock.setEncoding("utf8");
    if (this.greet) {
      this.send({
        QMP: { version: { qemu: { major: 10, minor: 0, micro: 2 }, package: "" }, capabilities: [] },
      });
    }
    let buf = "";
    sock.on("data", (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const raw = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const msg = JSON.parse(raw) as Omit<QmpCall, "raw">;
        const call = { ...msg, raw };
        this.calls.push(call);
        // answers may be held (promises); each is sent when it settles, with the command's id
        void Promise.resolve(
          call.execute === "qmp_capabilities" ? this.capabilities : this.answer(call),
        ).then((answer) => {
          if (answer && !sock.destroyed)
            sock.write(
              `${JSON.stringify({ ...answer, ...(call.id === undefined ? {} : { id: call.id }) })}\r\n`,
            );
        });
      }
    });
  }

  /** Writes one message (as a JSON line) to every connected client. */
  send(msg: unknown): void {
    this.sendRaw(`${JSON.stringify(msg)}\r\n`);
  }

  /** Writes raw bytes to every connected client. */
  sendRaw(text: string): void {
    for (const s of this.sockets) s.write(text);
  }

  /** Sends a QMP event. */
  event(name: string, data?: Record<string, unknown>): void {
    this.send({ event: name, ...(data ? { data } : {}), timestamp: { seconds: 1, microseconds: 2 } });
  }

  /** Number of clients connected now. */
  get clients(): number {
    return this.sockets.size;
  }

  /** Drops every client connection (as QEMU exiting would). */
  hangUp(): void {
    for (const s of this.sockets) s.destroy();
  }

  /** Commands received, by name, `qmp_capabilities` left out. */
  commands(): string[] {
    return this.calls.map((c) => c.execute).filter((n) => n !== "qmp_capabilities");
  }

  async close(): Promise<void> {
    this.hangUp();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
