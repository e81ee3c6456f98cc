// The "internet" of the network test lab. Runs as root in a network namespace
// of its own (started by netlab.mjs through `unshare --net`): puts the lab's
// addresses on `lo` and serves on each of them
//   - TCP port 7777: one line "hello from <address>", then closes;
//   - UDP port 53 (IPv4 addresses): a DNS server answering A queries from a name table (TTL `ttl`);
//   - on the first public address, HTTP port 8080: GET /bytes/<n> returns n bytes.
// Nothing here can reach outside the namespace: its only link is the veth the
// lab's host namespace adds. Prints one line "ready" on stdout once serving;
// reads JSON lines on stdin: {"dns": {"name": "address" | null}} changes the table.
import { execFileSync } from "node:child_process";
import { createSocket } from "node:dgram";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { createInterface } from "node:readline";

const config = JSON.parse(process.argv[2]);
const ip = (...args) => execFileSync("ip", args, { stdio: ["ignore", "ignore", "inherit"] });

ip("link", "set", "lo", "up");
const v6 = (a) => a.includes(":");
for (const a of config.addresses) ip("addr", "add", v6(a) ? `${a}/128` : `${a}/32`, "dev", "lo");

const names = new Map(Object.entries(config.names));

/** A DNS answer to `query` (RFC 1035): A records from `names`, NXDOMAIN for unknown names. */
function answer(query) {
  if (query.length < 12) return undefined;
  let off = 12;
  const labels = [];
  while (off < query.length && query[off] !== 0) {
    const len = query[off];
    labels.push(
      query
        .subarray(off + 1, off + 1 + len)
        .toString("ascii")
        .toLowerCase(),
    );
    off += 1 + len;
  }
  const qEnd = off + 5; // zero label, QTYPE, QCLASS
  if (qEnd > query.length) return undefined;
  const qtype = query.readUInt16BE(off + 1);
  const name = labels.join(".");
  const addr = names.get(name);
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2); // id
  const known = addr !== undefined && addr !== null;
  header.writeUInt16BE(0x8180 | (known ? 0 : 3), 2); // response, RD, RA, rcode
  header.writeUInt16BE(1, 4);
  const withAnswer = known && qtype === 1;
  header.writeUInt16BE(withAnswer ? 1 : 0, 6);
  const parts = [header, query.subarray(12, qEnd)];
  if (withAnswer) {
    const rr = Buffer.alloc(16);
    rr.writeUInt16BE(0xc00c, 0); // name: pointer to the question
    rr.writeUInt16BE(1, 2); // A
    rr.writeUInt16BE(1, 4); // IN
    rr.writeUInt32BE(config.ttl, 6);
    rr.writeUInt16BE(4, 10);
    addr.split(".").forEach((b, i) => {
      rr[12 + i] = Number(b);
    });
    parts.push(rr);
  }
  return Buffer.concat(parts);
}

const listening = [];
for (const a of config.addresses) {
  listening.push(
    new Promise((resolve) => {
      createServer((s) => {
        s.on("error", () => {});
        s.end(`hello from ${a}\n`);
      }).listen(config.port, a, resolve);
    }),
  );
  if (v6(a)) continue;
  listening.push(
    new Promise((resolve) => {
      const udp = createSocket("udp4");
      udp.on("message", (msg, rinfo) => {
        const reply = answer(msg);
        if (reply) udp.send(reply, rinfo.port, rinfo.address);
      });
      udp.bind(53, a, resolve);
    }),
  );
}
listening.push(
  new Promise((resolve) => {
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    createHttpServer((req, res) => {
      const m = /^\/bytes\/(\d+)$/.exec(req.url ?? "");
      if (!m) {
        res.writeHead(200, { "content-type": "text/plain" }).end(`hello over http from ${config.http}\n`);
        return;
      }
      let left = Number(m[1]);
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": left });
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, chunk.length);
          left -= n;
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return res.once("drain", pump);
        }
        res.end();
      };
      pump();
    }).listen(config.httpPort, config.http, resolve);
  }),
);
await Promise.all(listening);
process.stdout.write("ready\n");

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const cmd = JSON.parse(line);
  for (const [name, addr] of Object.entries(cmd.dns ?? {})) {
    if (addr === null) names.delete(name);
    else names.set(name, addr);
  }
  process.stdout.write("ok\n");
}
process.exit(0);
