import { connect, createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { TcpForwarder } from "./tcp-forwarder.js";

// The guest side is played by a real TCP echo server on loopback: the
// forwarder's own job (bind 127.0.0.1, accept, splice with half-close, stop)
// is what is under test here; VM routing is covered by the integration tests.
let echo: Server | undefined;
afterEach(() => echo?.close());

async function echoServer(): Promise<number> {
  echo = createServer({ allowHalfOpen: true }, (s) => {
    const parts: Buffer[] = [];
    s.on("data", (d) => parts.push(d));
    s.on("end", () => s.end(Buffer.concat([Buffer.from("echo:"), ...parts])));
  });
  await new Promise<void>((r) => echo!.listen(0, "127.0.0.1", r));
  return (echo!.address() as { port: number }).port;
}

function roundTrip(addr: string, payload: string): Promise<string> {
  const [host, port] = addr.split(":");
  return new Promise((resolve, reject) => {
    const s = connect({ host, port: Number(port), allowHalfOpen: true });
    let got = "";
    s.on("data", (d) => {
      got += d;
    });
    s.on("end", () => resolve(got));
    s.on("error", reject);
    s.end(payload);
  });
}

describe("TcpForwarder", () => {
  it("binds 127.0.0.1 on a free port and splices each connection with half-close", async () => {
    const port = await echoServer();
    const fwd = await TcpForwarder.listen(0, 8080, async () =>
      connect({ host: "127.0.0.1", port, allowHalfOpen: true }),
    );
    expect(fwd.localAddr).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(fwd.guestPort).toBe(8080);
    const answers = await Promise.all([roundTrip(fwd.localAddr, "a"), roundTrip(fwd.localAddr, "b")]);
    expect(answers.sort()).toEqual(["echo:a", "echo:b"]);
    const addr = fwd.localAddr;
    await fwd.stop();
    await fwd.stop();
    // the address stays readable after stop (for logs), and nothing listens there any more
    expect(fwd.localAddr).toBe(addr);
    expect(fwd.port).toBe(Number(addr.split(":")[1]));
    await expect(roundTrip(addr, "c")).rejects.toThrow(/ECONNREFUSED/);
  });

  it("closes the client connection when the guest side cannot be reached", async () => {
    const fwd = await TcpForwarder.listen(0, 1, async () => {
      throw new Error("no guest");
    });
    const reply = await roundTrip(fwd.localAddr, "x").catch(() => "closed");
    expect(["", "closed"]).toContain(reply);
    await fwd.close();
  });
});
