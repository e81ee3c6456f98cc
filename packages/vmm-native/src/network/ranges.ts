import { type Cidr, cidrContains, parseCidr, parseIp } from "./addresses.js";

/**
 * IPv4 destinations no guest reaches unless a rule names them: addresses that
 * are not the public internet. "This network", RFC 1918 private ranges, CGNAT
 * (RFC 6598), loopback, link-local (cloud metadata at 169.254.169.254), IETF
 * protocol assignments, benchmarking, multicast, reserved and broadcast.
 */
export const NON_PUBLIC_V4: readonly string[] = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.0.0.0/24",
  "192.168.0.0/16",
  "198.18.0.0/15",
  "224.0.0.0/4",
  "240.0.0.0/4",
];

/**
 * IPv6 destinations no guest reaches unless a rule names them: unspecified and
 * loopback, IPv4-mapped (which would reach the IPv4 ranges above), discard,
 * unique local (ULA), link-local, the old site-local range and multicast.
 */
export const NON_PUBLIC_V6: readonly string[] = [
  "::/127",
  "::ffff:0:0/96",
  "100::/64",
  "fc00::/7",
  "fe80::/10",
  "fec0::/10",
  "ff00::/8",
];

const parsed: Cidr[] = [...NON_PUBLIC_V4, ...NON_PUBLIC_V6].map((c) => parseCidr(c)!);

/** True when `address` (an IP literal) is in one of the non-public ranges. */
export function isNonPublic(address: string): boolean {
  const ip = parseIp(address);
  return ip ? parsed.some((c) => cidrContains(c, ip)) : false;
}
