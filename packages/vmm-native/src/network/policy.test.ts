import { describe, expect, it } from "vitest";
import { VmmError } from "../errors.js";
import { formatCidr, parseCidr } from "./addresses.js";
import { allowsNothing, normalizePolicy, policyKey } from "./policy.js";
import { isNonPublic } from "./ranges.js";

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(VmmError);
    return (err as VmmError).code;
  }
  return undefined;
}

describe("parseCidr", () => {
  it("parses IPv4 and IPv6 addresses and networks and clears host bits", () => {
    expect(formatCidr(parseCidr("10.1.2.3/8")!)).toBe("10.0.0.0/8");
    expect(formatCidr(parseCidr("198.51.100.7")!)).toBe("198.51.100.7/32");
    expect(formatCidr(parseCidr("2001:db8::1/32")!)).toBe("2001:db8:0:0:0:0:0:0/32");
    expect(formatCidr(parseCidr("::ffff:10.0.0.1")!)).toBe("0:0:0:0:0:ffff:a00:1/128");
    expect(formatCidr(parseCidr("fe80::1:2/10")!)).toBe("fe80:0:0:0:0:0:0:0/10");
  });
  it("refuses what is not an address", () => {
    for (const s of ["10.0.0.0/33", "10.0.0/8", "example.com", "1.2.3.4/x", "::1/129", "256.1.1.1"]) {
      expect(parseCidr(s)).toBeUndefined();
    }
  });
});

describe("isNonPublic", () => {
  it("knows the host, private, link-local, CGNAT, multicast and IPv6 local ranges", () => {
    for (const a of [
      "127.0.0.1",
      "10.1.2.3",
      "172.16.0.1",
      "172.31.255.255",
      "192.168.7.7",
      "169.254.169.254",
      "100.64.1.1",
      "100.127.255.255",
      "224.0.0.1",
      "255.255.255.255",
      "0.0.0.0",
      "::1",
      "::",
      "fd00::2",
      "fe80::1",
      "ff02::1",
      "::ffff:10.0.0.1",
    ]) {
      expect(isNonPublic(a), a).toBe(true);
    }
    for (const a of ["198.51.100.1", "203.0.113.5", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2001:db8::1"]) {
      expect(isNonPublic(a), a).toBe(false);
    }
  });
});

describe("normalizePolicy", () => {
  it("defaults to the internet and DNS, no rules", () => {
    expect(normalizePolicy(undefined)).toEqual({
      allowInternetAccess: true,
      allowOut: [],
      denyOut: [],
      dns: true,
    });
    expect(normalizePolicy({})).toEqual(normalizePolicy(undefined));
  });

  it("reads strings: addresses, CIDRs, names, ports and ranges, bracketed IPv6", () => {
    const p = normalizePolicy({
      allowOut: [
        "10.0.0.0/8",
        "198.51.100.7:443",
        "Example.COM.",
        "api.example.com:8000-8100",
        "[2001:db8::1]:53",
        "fd00::/8",
        "host:5432",
      ],
    });
    expect(p.allowOut).toEqual([
      { kind: "cidr", cidr: "10.0.0.0/8", family: 4 },
      { kind: "cidr", cidr: "198.51.100.7/32", family: 4, ports: [443, 443] },
      { kind: "domain", domain: "example.com" },
      { kind: "domain", domain: "api.example.com", ports: [8000, 8100] },
      { kind: "cidr", cidr: "2001:db8:0:0:0:0:0:1/128", family: 6, ports: [53, 53] },
      { kind: "cidr", cidr: "fd00:0:0:0:0:0:0:0/8", family: 6 },
      { kind: "host", ports: [5432, 5432] },
    ]);
  });

  it("reads objects with a protocol and a port or range", () => {
    const p = normalizePolicy({
      denyOut: [
        { to: "203.0.113.0/24", protocol: "udp", port: [1000, 2000] },
        { to: "198.51.100.1", protocol: "icmp" },
      ],
    });
    expect(p.denyOut).toEqual([
      { kind: "cidr", cidr: "203.0.113.0/24", family: 4, protocol: "udp", ports: [1000, 2000] },
      { kind: "cidr", cidr: "198.51.100.1/32", family: 4, protocol: "icmp" },
    ]);
  });

  it("refuses malformed policies with NETWORK_POLICY_INVALID", () => {
    const bad: unknown[] = [
      "none",
      [],
      { allowOut: "10.0.0.0/8" },
      { allowOut: ["*.example.com"] },
      { allowOut: ["not a name"] },
      { allowOut: ["host"] }, // host needs a port
      { denyOut: ["host:22"] },
      { allowOut: [{ to: "1.2.3.4", protocol: "icmp", port: 1 }] },
      { allowOut: [{ to: "1.2.3.4", protocol: "sctp" }] },
      { allowOut: [{ to: "1.2.3.4", port: 0 }] },
      { allowOut: [{ to: "1.2.3.4", port: [20, 10] }] },
      { allowOut: ["1.2.3.4:70000"] },
      { allowInternetAccess: "yes" },
      { allowOut: [42] },
      { allowout: [] },
    ];
    for (const b of bad)
      expect(
        code(() => normalizePolicy(b as never)),
        JSON.stringify(b),
      ).toBe("NETWORK_POLICY_INVALID");
  });

  it("knows when nothing can get out, and keys equal policies equally", () => {
    expect(allowsNothing(normalizePolicy({ allowInternetAccess: false, dns: false }))).toBe(true);
    expect(allowsNothing(normalizePolicy({ allowInternetAccess: false }))).toBe(false);
    expect(
      allowsNothing(normalizePolicy({ allowInternetAccess: false, dns: false, allowOut: ["1.2.3.4"] })),
    ).toBe(false);
    expect(policyKey(normalizePolicy({ allowOut: ["10.0.0.1/8"] }))).toBe(
      policyKey(normalizePolicy({ allowOut: ["10.0.0.0/8"] })),
    );
    expect(policyKey(normalizePolicy({}))).not.toBe(policyKey(normalizePolicy({ dns: false })));
  });
});
