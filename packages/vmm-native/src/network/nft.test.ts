import { describe, expect, it } from "vitest";
import { renderRuleset, renderSetUpdate, UPLINK_DNS, UPLINK_GATEWAY } from "./nft.js";
import { normalizePolicy } from "./policy.js";

const dyn = (
  domains: Record<string, { v4: string[]; v6: string[] }> = {},
  hostAddresses = ["127.0.0.1", "203.0.113.2"],
) => ({
  hostAddresses,
  domains: new Map(Object.entries(domains)),
});

/** The rules of the output chain, in order. */
function outputRules(text: string): string[] {
  const start = text.indexOf("chain output {");
  return text
    .slice(start, text.indexOf("\n  }", start))
    .split("\n")
    .slice(2)
    .map((l) => l.trim())
    .filter(Boolean);
}

describe("renderRuleset", () => {
  it("default: answers, loopback, neighbour discovery, DNS, the host and non-public ranges refused, then the internet", () => {
    const text = renderRuleset(normalizePolicy({}), dyn());
    expect(text).toContain("type filter hook output priority filter; policy drop;");
    expect(text).toContain(
      "set host_v4 { type ipv4_addr; flags interval; elements = { 127.0.0.1, 203.0.113.2 }; }",
    );
    expect(outputRules(text)).toEqual([
      "ct state established,related accept",
      'oifname "lo" jump refuse',
      "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept",
      `ip daddr ${UPLINK_DNS} meta l4proto { tcp, udp } th dport 53 accept`,
      "ip daddr @host_v4 jump refuse",
      "ip6 daddr @host_v6 jump refuse",
      expect.stringMatching(
        /^ip daddr \{ 0\.0\.0\.0\/8, 10\.0\.0\.0\/8, 100\.64\.0\.0\/10, 127\.0\.0\.0\/8, 169\.254\.0\.0\/16, .* \} jump refuse$/,
      ),
      expect.stringMatching(/^ip6 daddr \{ ::\/127, .*fc00::\/7, fe80::\/10, .* \} jump refuse$/),
      "meta l4proto { tcp, udp, icmp, ipv6-icmp } accept",
      "jump refuse",
    ]);
    // no host port is redirected
    expect(text).not.toContain("nat");
  });

  it("allowOut before denyOut before the built-in refusals; ports, protocols, domains; no internet, no DNS", () => {
    const policy = normalizePolicy({
      allowInternetAccess: false,
      dns: false,
      allowOut: [
        { to: "10.1.2.3", protocol: "udp", port: 53 },
        "example.com:443",
        { to: "host", port: [5432, 5433], protocol: "tcp" },
        { to: "fd00::/8", protocol: "icmp" },
      ],
      denyOut: ["198.51.100.0/24"],
    });
    const text = renderRuleset(
      policy,
      dyn({
        "example.com": { v4: ["198.51.100.9", "10.9.9.9", "203.0.113.2"], v6: ["2001:db8:0:0:0:0:0:9"] },
      }),
    );
    const rules = outputRules(text);
    expect(rules[1]).toBe(`ip daddr ${UPLINK_GATEWAY} tcp dport 5432-5433 accept`);
    expect(rules.slice(4, 10)).toEqual([
      "ip daddr 10.1.2.3/32 udp dport 53 accept",
      "ip daddr @allow1_v4 meta l4proto { tcp, udp } th dport 443 accept",
      "ip6 daddr @allow1_v6 meta l4proto { tcp, udp } th dport 443 accept",
      "ip6 daddr fd00:0:0:0:0:0:0:0/8 meta l4proto ipv6-icmp accept",
      "ip daddr 198.51.100.0/24 jump refuse",
      "ip daddr @host_v4 jump refuse",
    ]);
    expect(rules.at(-1)).toBe("jump refuse");
    expect(rules).not.toContain("meta l4proto { tcp, udp, icmp, ipv6-icmp } accept");
    expect(text).not.toContain(UPLINK_DNS);
    // a name's non-public and host addresses never enter an allow set
    expect(text).toContain("set allow1_v4 { type ipv4_addr; flags interval; elements = { 198.51.100.9 }; }");
    expect(text).toContain(
      "set allow1_v6 { type ipv6_addr; flags interval; elements = { 2001:db8:0:0:0:0:0:9 }; }",
    );
    // the guest's 10.0.2.2 is QEMU's gateway, which QEMU sends to the namespace's loopback:
    // the named ports go on to the uplink's gateway, which slirp4netns maps to the host's loopback
    expect(text).toContain(`ip daddr 127.0.0.1 tcp dport 5432-5433 dnat to ${UPLINK_GATEWAY}`);
    expect(text).toContain('oifname "tap0" ip saddr 127.0.0.0/8 masquerade');
  });

  it("deny sets keep every address a name resolves to", () => {
    const text = renderRuleset(
      normalizePolicy({ denyOut: ["evil.example"] }),
      dyn({ "evil.example": { v4: ["10.0.0.1"], v6: [] } }),
    );
    expect(text).toContain("set deny0_v4 { type ipv4_addr; flags interval; elements = { 10.0.0.1 }; }");
    expect(text).toContain("set deny0_v6 { type ipv6_addr; flags interval; }");
  });
});

describe("renderSetUpdate", () => {
  it("replaces the contents of every named set in one transaction", () => {
    const policy = normalizePolicy({ allowOut: ["a.example"] });
    expect(
      renderSetUpdate(policy, dyn({ "a.example": { v4: ["198.51.100.2"], v6: [] } }, ["127.0.0.1"])),
    ).toBe(
      [
        "flush set inet supermachine host_v4",
        "add element inet supermachine host_v4 { 127.0.0.1 }",
        "flush set inet supermachine host_v6",
        "flush set inet supermachine allow0_v4",
        "add element inet supermachine allow0_v4 { 198.51.100.2 }",
        "flush set inet supermachine allow0_v6",
        "",
      ].join("\n"),
    );
  });
});
