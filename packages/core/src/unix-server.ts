import { rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";

/**
 * A unix-socket server that tracks its connections, so closing it also ends
 * them and removes the socket file. Binding is synchronous: the socket file
 * exists when {@link UnixSocketServer.listen} returns.
 */
export class UnixSocketServer {
  private readonly conns = new Set<Socket>();
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly server: Server,
    /** Path of the unix socket. */
    readonly path: string,
  ) {}

  /** Binds `path` (replacing a stale file) and hands every connection to `onConnection`. */
  static listen(
    path: string,
    onConnection: (sock: Socket) => void,
    options: { pauseOnConnect?: boolean; allowHalfOpen?: boolean } = {},
  ): UnixSocketServer {
    rmSync(path, { force: true });
    const server = createServer(options);
    const self = new UnixSocketServer(server, path);
    server.on("connection", (sock) => {
      self.conns.add(sock);
      sock.once("close", () => self.conns.delete(sock));
      sock.on("error", () => sock.destroy());
      onConnection(sock);
    });
    server.listen(path);
    return self;
  }

  /** Stops listening, ends open connections, removes the socket file. Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      for (const c of this.conns) c.destroy();
      this.server.close(() => resolve());
    }).then(() => rmSync(this.path, { force: true }));
    return this.closing;
  }
}
