// Runs a shell command in a VM over the agent socket and prints its output.
//   node vm-inspect.mjs /tmp/agent.sock 'cmd'
import net from "node:net";
import { Client } from "./client.mjs";

const [path, cmd] = process.argv.slice(2);
const sock = net.connect(path);
await new Promise((res, rej) => {
  sock.once("connect", res);
  sock.once("error", rej);
});
const c = new Client(sock, sock);
await c.hello(BigInt(Date.now()));
const r = await c.exec(1, ["sh", "-c", cmd]);
process.stdout.write(r.stdout);
process.stderr.write(r.stderr);
console.log(`[exit ${r.exit.code} signal ${r.exit.signal}]`);
sock.destroy();
