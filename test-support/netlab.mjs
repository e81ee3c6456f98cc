// Network test lab: two network namespaces this process makes (as root), so
// that every packet a test sends stays inside them.
//
//   internet namespace                       host namespace (code under test runs here)
//   lo: 198.51.100.1, 198.51.100.2,          lo: 127.0.0.1, ::1, 203.0.113.77 and
//       2001:db8:100::1 (public)                 2001:db8:77::77 (other host addresses)
//       198.51.100.53 (DNS), 10.1.2.3,       vh: 203.0.113.2/24, 2001:db8:1::2/64, default
//       192.168.7.7, 169.254.169.254,            routes via 203.0.113.1 and 2001:db8:1::1
//       100.64.1.1, fd00:7::7 (ULA)          /etc/resolv.conf: nameserver 198.51.100.53 (a bind mount)
//   vn: 203.0.113.1/24, 2001:db8:1::1/64     servers: TCP 7777 on each host address
//         <---------------- veth ---------------->
//   servers: TCP 7777 on every address,      node netlab-host.mjs DRIVER (the test's driver module)
//   DNS (UDP 53) on every IPv4 address, HTTP 8080 on 198.51.100.1
//
// Both namespaces are held by processes started with the parent-death signal:
// when the test process dies they die, and the namespaces with them.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

/** The lab's addresses, names and ports. */
export const LAB = {
  /** Stand-ins for the public internet (TEST-NET-2). */
  public: ["198.51.100.1", "198.51.100.2"],
  /** A stand-in for the public IPv6 internet (documentation prefix). */
  public6: "2001:db8:100::1",
  /** The lab's DNS server (also answering on every other internet address). */
  dns: "198.51.100.53",
  /** Non-public destinations a guest must not reach by default. */
  private: {
    rfc1918a: "10.1.2.3",
    rfc1918b: "192.168.7.7",
    metadata: "169.254.169.254",
    cgnat: "100.64.1.1",
  },
  /** A non-public IPv6 destination (unique local). */
  private6: "fd00:7::7",
  /** The host namespace's own addresses (besides 127.0.0.1 and ::1), and its gateways. */
  host: {
    veth: "203.0.113.2",
    extra: "203.0.113.77",
    gateway: "203.0.113.1",
    veth6: "2001:db8:1::2",
    extra6: "2001:db8:77::77",
    gateway6: "2001:db8:1::1",
  },
  /** TCP port every server listens on. */
  port: 7777,
  /** HTTP port on the first public address. */
  httpPort: 8080,
  /** Names the lab's DNS server answers (A records). */
  names: {
    "public.test": "198.51.100.1",
    "other.test": "198.51.100.2",
    "private.test": "10.1.2.3",
    "metadata.test": "169.254.169.254",
  },
  /** TTL of the DNS answers (seconds). */
  ttl: 5,
};

const HOST_SETUP = `set -e
inet=$1; resolv=$2; shift 2
mount --bind "$resolv" /etc/resolv.conf
ip link set lo up
ip addr add ${LAB.host.extra}/32 dev lo
ip -6 addr add ${LAB.host.extra6}/128 dev lo
ip link add vh type veth peer name vn netns "$inet"
ip addr add ${LAB.host.veth}/24 dev vh
ip -6 addr add ${LAB.host.veth6}/64 dev vh nodad
ip link set vh up
nsenter -t "$inet" -n sh -c 'ip addr add ${LAB.host.gateway}/24 dev vn && ip -6 addr add ${LAB.host.gateway6}/64 dev vn nodad && ip link set vn up'
ip route add default via ${LAB.host.gateway}
ip -6 route add default via ${LAB.host.gateway6}
echo "0 2147483647" > /proc/sys/net/ipv4/ping_group_range
exec "$@"`;

function lines(stream) {
  const queue = [];
  const waiters = [];
  const rl = createInterface({ input: stream });
  rl.on("line", (l) => {
    const w = waiters.shift();
    if (w) w.resolve(l);
    else queue.push(l);
  });
  rl.on("close", () => {
    for (const w of waiters.splice(0)) w.reject(new Error("the lab process closed its output"));
  });
  return {
    next: () =>
      queue.length
        ? Promise.resolve(queue.shift())
        : new Promise((resolve, reject) => waiters.push({ resolve, reject })),
    rl,
  };
}

function exited(child) {
  return new Promise((r) => {
    if (child.exitCode !== null || child.signalCode !== null) r();
    else child.once("exit", () => r());
  });
}

/**
 * Starts the lab and, in its host namespace, `node netlab-host.mjs driver`.
 * Needs root. `call(op, args)` runs one of the driver's exports there.
 */
export async function startNetLab({ driver, env = process.env }) {
  if (process.getuid?.() !== 0)
    throw new Error("the network lab needs root (network namespaces, veth pairs)");
  const work = mkdtempSync(join(tmpdir(), "sm-netlab-"));
  const addresses = [...LAB.public, LAB.dns, ...Object.values(LAB.private), LAB.public6, LAB.private6];
  const internet = spawn(
    "setpriv",
    [
      "--pdeathsig",
      "KILL",
      "--",
      "unshare",
      "--net",
      "--",
      process.execPath,
      join(here, "netlab-internet.mjs"),
      JSON.stringify({
        addresses,
        names: LAB.names,
        ttl: LAB.ttl,
        port: LAB.port,
        http: LAB.public[0],
        httpPort: LAB.httpPort,
      }),
    ],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const inetOut = lines(internet.stdout);
  const children = [internet];
  const killAll = async () => {
    for (const c of children) c.kill("SIGKILL");
    await Promise.all(children.map(exited));
    rmSync(work, { recursive: true, force: true });
  };
  try {
    if ((await inetOut.next()) !== "ready") throw new Error("the lab internet did not start");
    const resolv = join(work, "resolv.conf");
    writeFileSync(resolv, `nameserver ${LAB.dns}\n`);
    const host = spawn(
      "setpriv",
      [
        "--pdeathsig",
        "KILL",
        "--",
        "unshare",
        "--net",
        "--mount",
        "--",
        "bash",
        "-c",
        HOST_SETUP,
        "netlab-host",
        String(internet.pid),
        resolv,
        process.execPath,
        join(here, "netlab-host.mjs"),
        driver,
        JSON.stringify({
          ...LAB,
          hostAddresses: ["127.0.0.1", "::1", LAB.host.veth, LAB.host.extra, LAB.host.veth6, LAB.host.extra6],
        }),
      ],
      { stdio: ["pipe", "pipe", "inherit"], env },
    );
    children.push(host);
    const hostOut = lines(host.stdout);
    const first = JSON.parse(await hostOut.next());
    if (!first.ready) throw new Error("the lab host did not start");
    const pending = new Map();
    hostOut.rl.removeAllListeners("line");
    hostOut.rl.on("line", (l) => {
      let msg;
      try {
        msg = JSON.parse(l);
      } catch {
        return; // not ours (something the driver printed)
      }
      const p = pending.get(msg.id);
      if (!p) return;
      pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.value);
      else p.reject(Object.assign(new Error(msg.error.message), { code: msg.error.code }));
    });
    exited(host).then(() => {
      for (const p of pending.values()) p.reject(new Error("the lab host process exited"));
      pending.clear();
    });
    let nextId = 1;
    return {
      /** Pid of the Node process in the host namespace (the one that owns the VMs). */
      hostPid: host.pid,
      /** Pid of the process holding the internet namespace. */
      internetPid: internet.pid,
      /** Runs the driver's export `op` in the host namespace; rejects if it takes over `timeoutMs` (180 s). */
      call(op, args = {}, timeoutMs = 180_000) {
        const id = nextId++;
        return new Promise((resolve, reject) => {
          const timer = setTimeout(() => {
            pending.delete(id);
            reject(new Error(`lab op ${op} ${JSON.stringify(args)} did not answer within ${timeoutMs} ms`));
          }, timeoutMs);
          const done = (f) => (v) => {
            clearTimeout(timer);
            f(v);
          };
          pending.set(id, { resolve: done(resolve), reject: done(reject) });
          host.stdin.write(`${JSON.stringify({ id, op, args })}\n`);
        });
      },
      /** Changes the lab DNS table: `{name: address | null}`. */
      async setDns(table) {
        internet.stdin.write(`${JSON.stringify({ dns: table })}\n`);
        if ((await inetOut.next()) !== "ok") throw new Error("the lab DNS did not take the change");
      },
      /** SIGKILLs the host-namespace Node process (as a crash would). */
      async killHost() {
        host.kill("SIGKILL");
        await exited(host);
      },
      /** Lets the driver clean up (its `close` export), then stops everything. Idempotent. */
      async close() {
        if (host.exitCode === null && host.signalCode === null) {
          host.stdin.end();
          const timer = setTimeout(() => host.kill("SIGKILL"), 30_000);
          await exited(host);
          clearTimeout(timer);
        }
        internet.stdin.end();
        await killAll();
      },
    };
  } catch (err) {
    await killAll();
    throw err;
  }
}
