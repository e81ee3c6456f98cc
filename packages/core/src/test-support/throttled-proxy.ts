import { once } from "node:events";
import { connect, createServer, type Server, type Socket } from "node:net";

/** A TCP proxy on 127.0.0.1 that slows what flows back from the target. */
export interface ThrottledProxy {
  /** `127.0.0.1:PORT`: use it where the target's host:port would go. */
  host: string;
  /** Stops listening and cuts every connection. Idempotent. */
  close(): Promise<void>;
}

/**
 * Forwards connections to `target` (`host:port` on 127.0.0.1), passing the
 * target's replies on at no more than `bytesPerSecond` per connection (in
 * 64 KiB steps). For tests that must watch something happen while a download
 * runs: a pull from a registry on the same machine ends within a few hundred
 * milliseconds, faster than a screen can be looked at twice.
 */
export async function startThrottledProxy(target: string, bytesPerSecond: number): Promise<ThrottledProxy> {
  const [targetHost, targetPort] = [
    target.slice(0, target.lastIndexOf(":")),
    Number(target.split(":").pop()),
  ];
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, targetHost);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    void (async () => {
      try {
        for await (const chunk of upstream as AsyncIterable<Buffer>) {
          for (let off = 0; off < chunk.length; off += 64 * 1024) {
            const piece = chunk.subarray(off, off + 64 * 1024);
            if (!client.write(piece)) await once(client, "drain");
            await new Promise((r) => setTimeout(r, (piece.length / bytesPerSecond) * 1000));
          }
        }
        client.end();
      } catch {
        client.destroy();
      }
    })();
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("proxy has no TCP address");
  let closed: Promise<void> | undefined;
  return {
    host: `127.0.0.1:${address.port}`,
    close() {
      closed ??= new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      });
      return closed;
    },
  };
}
