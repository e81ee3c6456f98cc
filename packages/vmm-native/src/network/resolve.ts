import { Resolver } from "node:dns/promises";
import { canonicalIp } from "./host-facts.js";
import type { ResolvedAddresses } from "./nft.js";

/** What resolving one name gave, and how long it may be kept. */
export interface Resolution extends ResolvedAddresses {
  /** Seconds until the shortest record expires (clamped to [10, 300]). */
  ttl: number;
}

const MIN_TTL = 10;
const MAX_TTL = 300;

async function lookup(
  resolver: Resolver,
  name: string,
  type: "A" | "AAAA",
): Promise<{ addresses: string[]; ttl: number }> {
  try {
    const records =
      type === "A"
        ? await resolver.resolve4(name, { ttl: true })
        : await resolver.resolve6(name, { ttl: true });
    return {
      addresses: records.map((r) => canonicalIp(r.address)).filter((a): a is string => a !== undefined),
      ttl: Math.min(...records.map((r) => r.ttl), MAX_TTL),
    };
  } catch {
    // no such name, no such record, or no answer: the rule matches nothing until a later refresh
    return { addresses: [], ttl: MIN_TTL };
  }
}

/**
 * Resolves a domain rule's name (A and AAAA) with the host's resolver, the
 * same one the guest's DNS queries reach. Never throws: an unresolvable name
 * resolves to no addresses, retried after {@link MIN_TTL} seconds.
 */
export async function resolveName(name: string): Promise<Resolution> {
  const resolver = new Resolver({ timeout: 2000, tries: 2 });
  const [a, aaaa] = await Promise.all([lookup(resolver, name, "A"), lookup(resolver, name, "AAAA")]);
  const ttls = [a, aaaa].filter((x) => x.addresses.length).map((x) => x.ttl);
  const ttl = ttls.length ? Math.max(MIN_TTL, Math.min(MAX_TTL, ...ttls)) : MIN_TTL;
  return { v4: a.addresses.sort(), v6: aaaa.addresses.sort(), ttl };
}

/** Resolves every name; one map entry per name. */
export async function resolveNames(
  names: Iterable<string>,
): Promise<{ map: Map<string, ResolvedAddresses>; ttl: number }> {
  const unique = [...new Set(names)];
  const results = await Promise.all(unique.map(resolveName));
  const map = new Map<string, ResolvedAddresses>();
  unique.forEach((n, i) => {
    map.set(n, { v4: results[i]!.v4, v6: results[i]!.v6 });
  });
  return { map, ttl: Math.min(MAX_TTL, ...results.map((r) => r.ttl)) };
}
