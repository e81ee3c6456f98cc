import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LAB, type NetLab, startNetLab } from "../../../test-support/netlab.js";

// Every packet in these tests stays inside the two network namespaces the lab
// makes (see test-support/netlab.mjs): the VMs, their namespaces and uplinks all
// run in the lab's host namespace, whose only route leads to the lab's own
// "internet" namespace.

const driver = fileURLToPath(new URL("./test-support/netlab-driver.mjs", import.meta.url));
const [PUBLIC1, PUBLIC2] = LAB.public;
const PRIVATE = Object.values(LAB.private);

interface Sh {
  exitCode: number;
  out: string;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

async function waitFor<T>(what: string, f: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe("network policy (in a lab of network namespaces)", () => {
  let lab: NetLab;
  let snap: string;
  /** Runs `f` on a VM restored under `policy`, stopping the VM afterwards whatever happens. */
  const withVm = async (policy: unknown, f: (id: number) => Promise<void>, dir = snap) => {
    const { id } = await lab.call<{ id: number }>("start", { dir, policy });
    try {
      await f(id);
    } finally {
      await lab.call("stop", { id });
    }
  };
  const sh = (id: number, cmd: string) => lab.call<Sh>("sh", { id, cmd });
  const tcp = (id: number, addr: string, port = LAB.port) =>
    sh(id, `timeout 10 nc -w 5 ${addr} ${port} </dev/null`);
  /** A DNS query sent over UDP to `server` (every lab internet address runs a DNS server). */
  const udp = (id: number, server: string) => sh(id, `timeout 4 nslookup -type=a public.test ${server}`);
  const ping = (id: number, addr: string) => sh(id, `ping -c 1 -W 3 ${addr}`);
  const refused = (r: Sh) => {
    expect(r.out).not.toContain("hello");
    expect(r.exitCode).not.toBe(0);
  };

  beforeAll(async () => {
    lab = await startNetLab({ driver });
    snap = await lab.call<string>("snapshot", {});
  });
  afterAll(async () => {
    await lab?.close();
  });

  it("default: the public internet over TCP, UDP and ICMP, and DNS, work", async () => {
    await withVm(undefined, async (id) => {
      expect((await tcp(id, PUBLIC1)).out).toBe(`hello from ${PUBLIC1}`);
      expect((await tcp(id, PUBLIC2)).out).toBe(`hello from ${PUBLIC2}`);
      expect((await tcp(id, LAB.public6)).out).toBe(`hello from ${LAB.public6}`);
      const dns = await sh(id, "nslookup -type=a public.test");
      expect(dns.out).toContain(`Address: ${LAB.names["public.test"]}`);
      expect((await sh(id, `wget -q -O - http://public.test:${LAB.httpPort}/`)).out).toBe(
        `hello over http from ${PUBLIC1}`,
      );
      expect((await udp(id, PUBLIC2)).out).toContain(`Address: ${PUBLIC1}`);
      expect((await ping(id, PUBLIC1)).exitCode).toBe(0);
    });
  });

  it("default: the host (every address and gateway alias) and non-public addresses are refused", async () => {
    await withVm(undefined, async (id) => {
      // the host: its loopback through QEMU's gateway alias, its own addresses
      // (QEMU's IPv6 gateway fec0::2 stands for the host's ::1; IPv4-mapped addresses are IPv4 to the filter)
      for (const addr of [
        "10.0.2.2",
        "fec0::2",
        LAB.host.veth,
        LAB.host.extra,
        LAB.host.veth6,
        LAB.host.extra6,
      ]) {
        refused(await tcp(id, addr));
      }
      // the host's own gateway is another machine, not an alias of the host
      for (const addr of [LAB.host.gateway, LAB.host.gateway6]) {
        expect((await tcp(id, addr)).out).not.toContain("hello from host");
      }
      // IPv6 unique local, and IPv4 private through an IPv4-mapped IPv6 address
      refused(await tcp(id, LAB.private6));
      refused(await tcp(id, `::ffff:${LAB.private.rfc1918a}`));
      // private, link-local (cloud metadata), CGNAT: TCP, UDP and ICMP
      for (const addr of PRIVATE) {
        refused(await tcp(id, addr));
        refused(await udp(id, addr));
        refused(await ping(id, addr));
      }
    });
  });

  it("naming a refused destination in allowOut opens it, so the refusals are the policy's", async () => {
    await withVm(
      {
        allowOut: [
          ...PRIVATE,
          LAB.private6,
          LAB.host.extra,
          LAB.host.extra6,
          { to: "host", port: LAB.port, protocol: "tcp" },
        ],
      },
      async (id) => {
        for (const addr of PRIVATE) {
          expect((await tcp(id, addr)).out).toBe(`hello from ${addr}`);
          expect((await udp(id, addr)).out).toContain(`Address: ${PUBLIC1}`);
          expect((await ping(id, addr)).exitCode).toBe(0);
        }
        expect((await tcp(id, LAB.host.extra)).out).toBe(`hello from host ${LAB.host.extra}`);
        expect((await tcp(id, LAB.host.extra6)).out).toBe(`hello from host ${LAB.host.extra6}`);
        expect((await tcp(id, LAB.private6)).out).toBe(`hello from ${LAB.private6}`);
        expect((await tcp(id, `::ffff:${LAB.private.rfc1918a}`)).out).toBe(
          `hello from ${LAB.private.rfc1918a}`,
        );
        // `host` is the host's loopback, at QEMU's gateway address
        expect((await tcp(id, "10.0.2.2")).out).toBe("hello from host 127.0.0.1");
        refused(await tcp(id, "10.0.2.2", 7778));
      },
    );
  });

  it("denyOut by name and port, and rules limited to one protocol", async () => {
    await withVm(
      {
        denyOut: [`other.test:${LAB.port}`],
        allowOut: [{ to: LAB.private.rfc1918a, protocol: "udp", port: 53 }],
      },
      async (id) => {
        refused(await tcp(id, PUBLIC2));
        expect((await udp(id, PUBLIC2)).out).toContain(`Address: ${PUBLIC1}`); // port 53 is not denied
        expect((await ping(id, PUBLIC2)).exitCode).toBe(0); // a rule with a port is TCP/UDP only
        expect((await tcp(id, PUBLIC1)).out).toBe(`hello from ${PUBLIC1}`);
        expect((await udp(id, LAB.private.rfc1918a)).out).toContain(`Address: ${PUBLIC1}`);
        refused(await tcp(id, LAB.private.rfc1918a));
        refused(await ping(id, LAB.private.rfc1918a));
      },
    );
  });

  it("without internet access only allowOut gets out; a name never opens a non-public address; dns: false", async () => {
    await withVm(
      {
        allowInternetAccess: false,
        allowOut: ["public.test", "private.test", "metadata.test"],
      },
      async (id) => {
        expect((await tcp(id, PUBLIC1)).out).toBe(`hello from ${PUBLIC1}`);
        expect((await ping(id, PUBLIC1)).exitCode).toBe(0);
        refused(await tcp(id, PUBLIC2));
        refused(await ping(id, PUBLIC2));
        expect((await sh(id, "nslookup -type=a other.test")).out).toContain(`Address: ${PUBLIC2}`); // DNS still works
        // names resolving to non-public addresses (DNS rebinding) stay refused
        refused(await tcp(id, LAB.private.rfc1918a));
        refused(await tcp(id, LAB.private.metadata));
      },
    );

    await withVm({ allowInternetAccess: false, dns: false, allowOut: [PUBLIC1] }, async (quiet) => {
      expect((await sh(quiet, "timeout 4 nslookup -type=a public.test")).exitCode).not.toBe(0);
      expect((await tcp(quiet, PUBLIC1)).out).toBe(`hello from ${PUBLIC1}`);
    });
  });

  it("domain rules follow DNS changes", async () => {
    await lab.setDns({ "moving.test": PUBLIC1 });
    await withVm({ allowInternetAccess: false, allowOut: ["moving.test"] }, async (id) => {
      expect((await tcp(id, PUBLIC1)).out).toBe(`hello from ${PUBLIC1}`);
      refused(await tcp(id, PUBLIC2));
      await lab.setDns({ "moving.test": PUBLIC2 });
      await waitFor("the rule to follow the name", async () => {
        const r = await tcp(id, PUBLIC2);
        return r.out.includes("hello") ? r : undefined;
      });
      refused(await tcp(id, PUBLIC1));
    });
  });

  it("a VM without a network card has only lo", async () => {
    const noNic = await lab.call<string>("snapshot", { network: false });
    const id = (await lab.call<{ id: number }>("start", { dir: noNic })).id;
    // sit0 is the IPv6-in-IPv4 tunnel template of a kernel with CONFIG_IPV6_SIT (no link, no
    // device); the guest kernel config drops it
    const ifaces = (await sh(id, "ls /sys/class/net")).out.split("\n").filter((n) => n !== "sit0");
    expect(ifaces).toEqual(["lo"]);
    await lab.call("stop", { id });
    await withVm(undefined, async (withNic) => {
      expect((await sh(withNic, "ls /sys/class/net")).out.split("\n")).toContain("eth0");
    });
  });

  it("QEMU waits in -incoming defer inside its namespace; one namespace per policy; nothing is left after close", async () => {
    const self = await lab.call<number>("netns", { pid: lab.hostPid });
    const spare = await lab.call<{ id: number; pid: number }>("prepare", { dir: snap });
    const spareNs = await lab.call<number>("netns", { pid: spare.pid });
    expect(spareNs).not.toBe(self);
    const other = await lab.call<{ id: number; pid: number }>("start", { dir: snap });
    expect(await lab.call<number>("netns", { pid: other.pid })).toBe(spareNs);
    const denied = await lab.call<{ id: number; pid: number }>("start", {
      dir: snap,
      policy: { allowInternetAccess: false },
    });
    expect(await lab.call<number>("netns", { pid: denied.pid })).not.toBe(spareNs);
    expect(await lab.call("namespaces")).toBe(2);
    const restored = await lab.call<{ id: number }>("complete", { id: spare.id });
    expect((await tcp(restored.id, PUBLIC1)).out).toBe(`hello from ${PUBLIC1}`);
    const procs = await lab.call<{ pid: number; comm: string }[]>("processes");
    expect(procs.filter((p) => p.comm === "slirp4netns").length).toBe(2);
    for (const id of [restored.id, other.id, denied.id]) await lab.call("stop", { id });
    expect(await lab.call("namespaces")).toBe(0);
    expect(await lab.call("processes")).toEqual([]);
  });
});

describe("network namespaces and a SIGKILLed owner", () => {
  it("leaves no QEMU, uplink or namespace holder behind", async () => {
    const lab = await startNetLab({ driver });
    try {
      const snap = await lab.call<string>("snapshot", {});
      await lab.call("start", { dir: snap });
      await lab.call("start", { dir: snap, policy: { allowInternetAccess: false } });
      const procs = await lab.call<{ pid: number; comm: string }[]>("processes");
      // two QEMUs (maybe under a sandbox), two uplinks, two namespace holders
      const count = (re: RegExp) => procs.filter((p) => re.test(p.comm)).length;
      expect([count(/^qemu-system/), count(/^slirp4netns$/), count(/^sleep$/)]).toEqual([2, 2, 2]);
      await lab.killHost();
      // every process the owner had started dies with it
      const left = await waitFor("helpers to die", async () => {
        const l = procs.filter((p) => alive(p.pid));
        return l.length === 0 ? l : undefined;
      });
      expect(left).toEqual([]);
    } finally {
      await lab.close();
    }
  });
});
