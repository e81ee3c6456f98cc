import { networkInterfaces } from "node:os";
import { formatIp, parseIp } from "./addresses.js";

/** One spelling per address (IPv6 uncompressed), so sets and comparisons agree. */
export function canonicalIp(address: string): string | undefined {
  const ip = parseIp(address);
  return ip ? formatIp(ip.family, ip.bytes) : undefined;
}

/**
 * Every address on the host's interfaces (loopback included), canonical and
 * sorted. "The host" is the network namespace this Node process runs in,
 * which is where the VM's uplink (slirp4netns) opens its sockets.
 */
export function hostAddresses(): string[] {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) {
    for (const i of list ?? []) {
      const c = canonicalIp(i.address);
      if (c) out.add(c);
    }
  }
  return [...out].sort();
}
