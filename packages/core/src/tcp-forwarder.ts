import { type AddressInfo, createServer, type Server, type Socket } from "node:net";
import type { Duplex } from "node:stream";

/** Opens a byte stream to a port inside the guest. */
export type GuestConnector = () => Promise<Duplex>;

/** Pipes one host socket and one guest stream into each other, with half-close both ways. */
export function splice(host: Socket, guest: Duplex): void {
  host.pipe(guest);
  guest.pipe(host);
  const destroyBoth = () => {
    host.destroy();
    guest.destroy();
  };
  host.on("error", destroyBoth);
  guest.on("error", destroyBoth);
  host.on("close", () => guest.destroy());
  guest.on("close", () => host.end());
}

/** A connection handler that splices each paused host socket to a new guest stream. */
export function forwardTo(connect: GuestConnector): (sock: Socket) => void {
  return (sock) => {
    connect().then(
      (guest) => {
        splice(sock, guest);
        sock.resume();
      },
      () => sock.destroy(),
    );
  };
}

/**
 * Forwards TCP connections accepted on 127.0.0.1 to a port inside a VM.
 * Returned by `Vm.exposeTcp`. `stop()` stops accepting; connections already
 * open carry on until they close.
 */
export class TcpForwarder {
  private stopped: Promise<void> | undefined;
  private readonly conns = new Set<Socket>();
  /** The address bound at listen time; kept after `stop()` so it can still be logged or reported. */
  private bound: AddressInfo = { address: "127.0.0.1", family: "IPv4", port: 0 };

  private constructor(
    private readonly server: Server,
    /** Guest port connections are routed to. */
    readonly guestPort: number,
  ) {}

  /** Binds `127.0.0.1:hostPort` (0 = any free port) and starts forwarding. */
  static async listen(hostPort: number, guestPort: number, connect: GuestConnector): Promise<TcpForwarder> {
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
    const fwd = new TcpForwarder(server, guestPort);
    const forward = forwardTo(connect);
    server.on("connection", (sock) => {
      fwd.conns.add(sock);
      sock.once("close", () => fwd.conns.delete(sock));
      forward(sock);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(hostPort, "127.0.0.1", () => {
        server.off("error", reject);
        fwd.bound = server.address() as AddressInfo;
        resolve();
      });
    });
    return fwd;
  }

  /** The bound address, `"127.0.0.1:PORT"` (still the same after `stop()`). */
  get localAddr(): string {
    return `${this.bound.address}:${this.bound.port}`;
  }

  /** The bound host port (still the same after `stop()`). */
  get port(): number {
    return this.bound.port;
  }

  /** Stops accepting new connections. Idempotent; open connections continue. */
  stop(): Promise<void> {
    this.stopped ??= new Promise((resolve) => this.server.close(() => resolve()));
    return this.stopped;
  }

  /** Stops accepting and destroys open connections too (used when the VM goes away). */
  async close(): Promise<void> {
    for (const c of this.conns) c.destroy();
    await this.stop();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
