import { VmmError } from "../errors.js";
import { type Cidr, formatCidr, parseCidr } from "./addresses.js";

/** Protocols a rule can be limited to. Without one, a rule covers TCP, UDP and ICMP. */
export type EgressProtocol = "tcp" | "udp" | "icmp";

/** One allow or deny rule in object form. */
export interface EgressRuleSpec {
  /**
   * The destination: an IPv4/IPv6 address or CIDR (`203.0.113.0/24`), a domain
   * name (`api.example.com`, matched by the addresses it resolves to), or
   * `host`: the host's own loopback, which the guest reaches at 10.0.2.2 on
   * the ports the rule names (allow lists only; needs `port`).
   */
  to: string;
  /** Limit the rule to one protocol. Default: TCP, UDP and ICMP. */
  protocol?: EgressProtocol;
  /** A port or an inclusive `[first, last]` range (TCP and UDP only). Default: every port. */
  port?: number | readonly [number, number];
}

/**
 * An allow or deny rule: an {@link EgressRuleSpec}, or a string
 * `destination[:port]` / `destination[:first-last]` (IPv6 with a port in
 * brackets: `[2001:db8::1]:443`), covering TCP, UDP and ICMP.
 */
export type EgressRule = string | EgressRuleSpec;

/**
 * Where a VM's network card may send packets. Rules are checked in this
 * order: `allowOut` (accept), `denyOut` (refuse), then the built-in refusals
 * (the host itself, private, link-local, CGNAT, multicast and other
 * non-public ranges), then `allowInternetAccess`.
 */
export interface NetworkPolicy {
  /** Egress to public internet addresses. Default true. */
  allowInternetAccess?: boolean;
  /** Destinations always allowed, even non-public or host ones (which need naming here). */
  allowOut?: readonly EgressRule[];
  /** Destinations refused even when the internet is allowed. */
  denyOut?: readonly EgressRule[];
  /** Name resolution through the host's resolver (the guest asks 10.0.2.3). Default true. */
  dns?: boolean;
}

/** A validated rule. */
export type NormalizedRule =
  | { kind: "cidr"; cidr: string; family: 4 | 6; protocol?: EgressProtocol; ports?: [number, number] }
  | { kind: "domain"; domain: string; protocol?: EgressProtocol; ports?: [number, number] }
  | { kind: "host"; protocol?: "tcp" | "udp"; ports: [number, number] };

/** A validated policy with every default filled in. */
export interface NormalizedPolicy {
  allowInternetAccess: boolean;
  allowOut: NormalizedRule[];
  denyOut: NormalizedRule[];
  dns: boolean;
}

function invalid(message: string, rule?: unknown): VmmError {
  return new VmmError("NETWORK_POLICY_INVALID", message, { details: rule === undefined ? {} : { rule } });
}

const DOMAIN = /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

function port(n: unknown, rule: unknown): number {
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 65535) {
    throw invalid(`port must be an integer from 1 to 65535, got ${JSON.stringify(n)}`, rule);
  }
  return n;
}

function portRange(p: EgressRuleSpec["port"], rule: unknown): [number, number] | undefined {
  if (p === undefined) return undefined;
  if (Array.isArray(p)) {
    if (p.length !== 2) throw invalid("a port range is [first, last]", rule);
    const range: [number, number] = [port(p[0], rule), port(p[1], rule)];
    if (range[0] > range[1]) throw invalid(`port range ${range[0]}-${range[1]} is empty`, rule);
    return range;
  }
  const n = port(p, rule);
  return [n, n];
}

/** Splits `dest[:port]` / `[v6]:port` / `dest:first-last` into a rule spec. */
function parseRuleString(s: string): EgressRuleSpec {
  const text = s.trim();
  const bracketed = /^\[([^\]]+)\](?::(\d+)(?:-(\d+))?)?$/.exec(text);
  if (bracketed) {
    const [, to, a, b] = bracketed;
    return { to: to!, ...(a ? { port: b ? [Number(a), Number(b)] : Number(a) } : {}) };
  }
  // an IPv6 literal or CIDR has several colons and no port
  if ((text.match(/:/g) ?? []).length > 1) return { to: text };
  const withPort = /^(.+):(\d+)(?:-(\d+))?$/.exec(text);
  if (withPort) {
    const [, to, a, b] = withPort;
    return { to: to!, port: b ? [Number(a), Number(b)] : Number(a) };
  }
  return { to: text };
}

function normalizeRule(input: EgressRule, list: "allowOut" | "denyOut"): NormalizedRule {
  const spec: EgressRuleSpec =
    typeof input === "string"
      ? parseRuleString(input)
      : input && typeof input === "object"
        ? input
        : (() => {
            throw invalid(`${list} entries are strings or {to, protocol?, port?}`, input);
          })();
  if (typeof spec.to !== "string" || !spec.to.trim())
    throw invalid(`${list} rule needs a destination`, input);
  const protocol = spec.protocol;
  if (protocol !== undefined && protocol !== "tcp" && protocol !== "udp" && protocol !== "icmp") {
    throw invalid(`protocol must be tcp, udp or icmp, got ${JSON.stringify(protocol)}`, input);
  }
  const ports = portRange(spec.port, input);
  if (ports && protocol === "icmp") throw invalid("an ICMP rule has no port", input);
  const to = spec.to.trim().toLowerCase();
  if (to === "host") {
    if (list === "denyOut") throw invalid("`host` is always refused; it can only appear in allowOut", input);
    if (!ports) throw invalid("an allowOut rule for `host` must name its port(s)", input);
    if (protocol === "icmp") throw invalid("`host` rules are TCP or UDP", input);
    return { kind: "host", ports, ...(protocol ? { protocol } : {}) };
  }
  const extra = { ...(protocol ? { protocol } : {}), ...(ports ? { ports } : {}) };
  const cidr: Cidr | undefined = parseCidr(to);
  if (cidr) return { kind: "cidr", cidr: formatCidr(cidr), family: cidr.family, ...extra };
  const domain = to.endsWith(".") ? to.slice(0, -1) : to;
  if (domain.startsWith("*.")) {
    throw invalid(
      `wildcard ${JSON.stringify(spec.to)}: domains are matched by resolving them, so name each host`,
      input,
    );
  }
  if (!DOMAIN.test(domain)) {
    throw invalid(`${JSON.stringify(spec.to)} is not an IP address, CIDR, domain name or \`host\``, input);
  }
  return { kind: "domain", domain, ...extra };
}

/**
 * Validates a policy and fills in its defaults (internet allowed, DNS on, no
 * rules). Throws `NETWORK_POLICY_INVALID` naming the bad rule.
 */
export function normalizePolicy(policy: NetworkPolicy | undefined = {}): NormalizedPolicy {
  if (policy === null || typeof policy !== "object" || Array.isArray(policy)) {
    throw invalid("a network policy is an object {allowInternetAccess?, allowOut?, denyOut?, dns?}");
  }
  for (const key of Object.keys(policy)) {
    if (!["allowInternetAccess", "allowOut", "denyOut", "dns"].includes(key)) {
      throw invalid(`unknown network policy option ${JSON.stringify(key)}`);
    }
  }
  const bool = (name: "allowInternetAccess" | "dns"): boolean => {
    const v = policy[name];
    if (v === undefined) return true;
    if (typeof v !== "boolean") throw invalid(`${name} must be a boolean, got ${JSON.stringify(v)}`);
    return v;
  };
  const list = (name: "allowOut" | "denyOut"): NormalizedRule[] => {
    const v = policy[name];
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw invalid(`${name} must be an array of rules`);
    return v.map((r) => normalizeRule(r, name));
  };
  return {
    allowInternetAccess: bool("allowInternetAccess"),
    allowOut: list("allowOut"),
    denyOut: list("denyOut"),
    dns: bool("dns"),
  };
}

/** True when the policy lets nothing out at all (no uplink is then needed). */
export function allowsNothing(p: NormalizedPolicy): boolean {
  return !p.allowInternetAccess && !p.dns && p.allowOut.length === 0;
}

/** A stable text key of a normalized policy: VMs with equal keys can share a namespace. */
export function policyKey(p: NormalizedPolicy): string {
  return JSON.stringify(p);
}
