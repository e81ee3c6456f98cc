import { isIP } from "node:net";

/** An IPv4 or IPv6 network: family, address bytes (network part only) and prefix length. */
export interface Cidr {
  family: 4 | 6;
  bytes: Uint8Array;
  prefix: number;
}

function parseV4(s: string): Uint8Array | undefined {
  if (isIP(s) !== 4) return undefined;
  return Uint8Array.from(s.split(".").map(Number));
}

function parseV6(s: string): Uint8Array | undefined {
  if (isIP(s) !== 6) return undefined;
  let text = s.split("%")[0]!;
  const out = new Uint8Array(16);
  // a trailing dotted quad (::ffff:1.2.3.4) becomes two hex groups
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const v4 = parseV4(dotted[1]!)!;
    text = `${text.slice(0, -dotted[1]!.length)}${((v4[0]! << 8) | v4[1]!).toString(16)}:${((v4[2]! << 8) | v4[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes("::") ? text.split("::") : [text, undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  groups.forEach((g, i) => {
    const v = Number.parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

/** Address bytes of an IPv4 or IPv6 literal, or undefined when `s` is not one. */
export function parseIp(s: string): { family: 4 | 6; bytes: Uint8Array } | undefined {
  const v4 = parseV4(s);
  if (v4) return { family: 4, bytes: v4 };
  const v6 = parseV6(s);
  if (v6) return { family: 6, bytes: v6 };
  return undefined;
}

/**
 * Parses `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or `v6/n` into a {@link Cidr}
 * with the host bits cleared. Undefined when `s` is none of these.
 */
export function parseCidr(s: string): Cidr | undefined {
  const slash = s.indexOf("/");
  const ip = parseIp(slash < 0 ? s : s.slice(0, slash));
  if (!ip) return undefined;
  const max = ip.family === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) return undefined;
    prefix = Number(p);
  }
  const bytes = Uint8Array.from(ip.bytes);
  for (let bit = prefix; bit < max; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return { family: ip.family, bytes, prefix };
}

/** Text of an address's bytes (IPv6 in full, uncompressed form; nft and Node accept it). */
export function formatIp(family: 4 | 6, bytes: Uint8Array): string {
  if (family === 4) return Array.from(bytes).join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(":");
}

/** `address/prefix` text of a {@link Cidr}. */
export function formatCidr(c: Cidr): string {
  return `${formatIp(c.family, c.bytes)}/${c.prefix}`;
}

/** True when address `ip` (same family) lies inside `net`. */
export function cidrContains(net: Cidr, ip: { family: 4 | 6; bytes: Uint8Array }): boolean {
  if (net.family !== ip.family) return false;
  for (let bit = 0; bit < net.prefix; bit++) {
    const mask = 0x80 >> (bit & 7);
    if ((net.bytes[bit >> 3]! & mask) !== (ip.bytes[bit >> 3]! & mask)) return false;
  }
  return true;
}
