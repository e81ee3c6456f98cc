import type { NormalizedPolicy, NormalizedRule } from "./policy.js";
import { isNonPublic, NON_PUBLIC_V4, NON_PUBLIC_V6 } from "./ranges.js";

/** Name of the nftables table the engine owns inside each VM network namespace. */
export const NFT_TABLE = "supermachine";

/**
 * The uplink's DNS address inside a VM namespace: slirp4netns relays DNS
 * (UDP and TCP port 53) sent there to the first nameserver of the host's
 * /etc/resolv.conf, loopback resolvers (systemd-resolved's 127.0.0.53)
 * included. QEMU's user network reads a resolv.conf naming it, so the
 * guest's 10.0.2.3 ends up there.
 */
export const UPLINK_DNS = "10.0.2.3";

/**
 * The uplink's gateway inside a VM namespace. slirp4netns maps it to the
 * host's loopback unless started with `--disable-host-loopback` (done unless
 * a `host` rule needs it; then only the named ports get through).
 */
export const UPLINK_GATEWAY = "10.0.2.2";

/** Name of the namespace's interface to the uplink (the tap slirp4netns makes). */
export const UPLINK_INTERFACE = "tap0";

/** Addresses a domain rule currently resolves to. */
export interface ResolvedAddresses {
  v4: string[];
  v6: string[];
}

/** Everything that varies at run time: the host's own addresses and what domain rules resolve to. */
export interface DynamicSets {
  /** Every address of the host's interfaces (both families). */
  hostAddresses: string[];
  /** Per domain name, its current addresses. */
  domains: ReadonlyMap<string, ResolvedAddresses>;
}

type Family = 4 | 6;

function setName(list: "allow" | "deny", index: number, family: Family): string {
  return `${list}${index}_v${family}`;
}

function elements(xs: readonly string[]): string {
  return xs.length ? ` elements = { ${[...new Set(xs)].join(", ")} };` : "";
}

function setDecl(name: string, family: Family, xs: readonly string[]): string {
  return `  set ${name} { type ${family === 4 ? "ipv4_addr" : "ipv6_addr"}; flags interval;${elements(xs)} }`;
}

/** The protocol/port part of a rule (empty: any protocol, any port). */
function match(rule: { protocol?: string; ports?: [number, number] }, family: Family): string {
  const ports = rule.ports
    ? rule.ports[0] === rule.ports[1]
      ? `${rule.ports[0]}`
      : rule.ports.join("-")
    : "";
  if (rule.protocol === "icmp") return family === 4 ? "meta l4proto icmp" : "meta l4proto ipv6-icmp";
  if (rule.protocol) return ports ? `${rule.protocol} dport ${ports}` : `meta l4proto ${rule.protocol}`;
  return ports ? `meta l4proto { tcp, udp } th dport ${ports}` : "";
}

function line(...parts: string[]): string {
  return `    ${parts.filter(Boolean).join(" ")}`;
}

function ruleLines(rule: NormalizedRule, list: "allow" | "deny", index: number, verdict: string): string[] {
  if (rule.kind === "host") return []; // rendered with the DNS rule, see renderRuleset
  if (rule.kind === "cidr") {
    const daddr = rule.family === 4 ? "ip daddr" : "ip6 daddr";
    return [line(daddr, rule.cidr, match(rule, rule.family), verdict)];
  }
  return ([4, 6] as const).map((f) =>
    line(f === 4 ? "ip daddr" : "ip6 daddr", `@${setName(list, index, f)}`, match(rule, f), verdict),
  );
}

/** Host and domain addresses that belong in each named set. */
function setContents(
  policy: NormalizedPolicy,
  dyn: DynamicSets,
): Map<string, { family: Family; xs: string[] }> {
  const sets = new Map<string, { family: Family; xs: string[] }>();
  const v4 = (a: string) => !a.includes(":");
  sets.set("host_v4", { family: 4, xs: dyn.hostAddresses.filter(v4) });
  sets.set("host_v6", { family: 6, xs: dyn.hostAddresses.filter((a) => !v4(a)) });
  for (const [list, rules] of [
    ["allow", policy.allowOut],
    ["deny", policy.denyOut],
  ] as const) {
    rules.forEach((rule, i) => {
      if (rule.kind !== "domain") return;
      const r = dyn.domains.get(rule.domain) ?? { v4: [], v6: [] };
      // a name never opens a non-public or host address (DNS rebinding): those need a CIDR rule
      const keep = (a: string) => list === "deny" || !(isNonPublic(a) || dyn.hostAddresses.includes(a));
      sets.set(setName(list, i, 4), { family: 4, xs: r.v4.filter(keep) });
      sets.set(setName(list, i, 6), { family: 6, xs: r.v6.filter(keep) });
    });
  }
  return sets;
}

/** True when a policy names host ports (`{to: "host"}` rules). */
export function hasHostRules(policy: NormalizedPolicy): boolean {
  return policy.allowOut.some((r) => r.kind === "host");
}

/**
 * The nftables ruleset (for `nft -f`) of one VM network namespace. Only
 * traffic the namespace itself sends is filtered (QEMU's user network opens
 * ordinary sockets there): an `output` hook with policy drop, answers to
 * accepted connections pass, the host ports of `host` rules, the
 * namespace's own loopback is refused, then DNS to {@link UPLINK_DNS}, `allowOut`,
 * `denyOut`, the host's own addresses and the non-public ranges, and last
 * the public internet if allowed.
 *
 * QEMU's user network sends what the guest addresses to its gateway
 * (10.0.2.2) to the namespace's loopback; for the ports of `host` rules a
 * `nat` table redirects that to {@link UPLINK_GATEWAY}, which the uplink
 * maps to the host's loopback.
 */
export function renderRuleset(policy: NormalizedPolicy, dyn: DynamicSets): string {
  const out: string[] = [`table inet ${NFT_TABLE} {`];
  for (const [name, s] of setContents(policy, dyn)) out.push(setDecl(name, s.family, s.xs));
  out.push(
    // refused connections fail at once (a reset or an ICMP error reaches QEMU's socket, which tells the guest)
    "  chain refuse {",
    "    meta l4proto tcp reject with tcp reset",
    "    reject with icmpx admin-prohibited",
    "  }",
    "  chain output {",
    "    type filter hook output priority filter; policy drop;",
    "    ct state established,related accept",
  );
  // host ports: redirected from the loopback by the nat table below (this hook still sees oif lo)
  for (const r of policy.allowOut) {
    if (r.kind === "host") out.push(line(`ip daddr ${UPLINK_GATEWAY}`, match(r, 4), "accept"));
  }
  out.push(
    '    oifname "lo" jump refuse',
    "    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept",
  );
  if (policy.dns) out.push(line(`ip daddr ${UPLINK_DNS} meta l4proto { tcp, udp } th dport 53 accept`));
  policy.allowOut.forEach((r, i) => {
    out.push(...ruleLines(r, "allow", i, "accept"));
  });
  policy.denyOut.forEach((r, i) => {
    out.push(...ruleLines(r, "deny", i, "jump refuse"));
  });
  out.push(
    "    ip daddr @host_v4 jump refuse",
    "    ip6 daddr @host_v6 jump refuse",
    line(`ip daddr { ${NON_PUBLIC_V4.join(", ")} } jump refuse`),
    line(`ip6 daddr { ${NON_PUBLIC_V6.join(", ")} } jump refuse`),
  );
  if (policy.allowInternetAccess) out.push("    meta l4proto { tcp, udp, icmp, ipv6-icmp } accept");
  out.push("    jump refuse");
  out.push("  }", "}", "");
  if (hasHostRules(policy)) {
    out.push(
      `table ip ${NFT_TABLE}_nat {`,
      "  chain output {",
      "    type nat hook output priority -100; policy accept;",
      ...policy.allowOut.flatMap((r) =>
        r.kind === "host" ? [line("ip daddr 127.0.0.1", match(r, 4), `dnat to ${UPLINK_GATEWAY}`)] : [],
      ),
      "  }",
      "  chain postrouting {",
      "    type nat hook postrouting priority 100; policy accept;",
      `    oifname "${UPLINK_INTERFACE}" ip saddr 127.0.0.0/8 masquerade`,
      "  }",
      "}",
      "",
    );
  }
  return out.join("\n");
}

/** An `nft -f` transaction that replaces the contents of every named set (host and domain addresses). */
export function renderSetUpdate(policy: NormalizedPolicy, dyn: DynamicSets): string {
  const out: string[] = [];
  for (const [name, s] of setContents(policy, dyn)) {
    out.push(`flush set inet ${NFT_TABLE} ${name}`);
    if (s.xs.length) out.push(`add element inet ${NFT_TABLE} ${name} { ${[...new Set(s.xs)].join(", ")} }`);
  }
  return `${out.join("\n")}\n`;
}
