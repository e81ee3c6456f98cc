import { rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { type GuestConnector, splice } from "./tcp-forwarder.js";

/**
 * A unix socket whose every connection is spliced to a new byte stream into
 * the guest (`Vm.vsockPath`). The socket file exists as soon as `listen`
 * returns (binding a unix socket is synchronous).
 */
export class VsockProxy {
  private readonly conns = new Set<Socket>();
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly server: Server,
    /** Path of the unix socket. */
    readonly path: string,
  ) {}

  /** Binds `path` and forwards each connection through `connect`. */
  static listen(path: string, connect: GuestConnector): VsockProxy {
    rmSync(path, { force: true });
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
    const proxy = new VsockProxy(server, path);
    server.on("connection", (sock) => {
      proxy.conns.add(sock);
      sock.once("close", () => proxy.conns.delete(sock));
      connect().then(
        (guest) => {
          splice(sock, guest);
          sock.resume();
        },
        () => sock.destroy(),
      );
    });
    server.listen(path);
    return proxy;
  }

  /** Stops listening, closes open connections, removes the socket file. Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      for (const c of this.conns) c.destroy();
      this.server.close(() => resolve());
    }).then(() => rmSync(this.path, { force: true }));
    return this.closing;
  }
}
