import { CoreError } from "../index.js";

function usage(message: string): CoreError {
  return new CoreError("INVALID_OPTIONS", message);
}

/** Commander collector for repeatable options (`-e A=1 -e B=2`). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/**
 * Docker-style environment entries: `K=V` sets, a bare `K` copies the host's
 * value (and is skipped when the host has none).
 */
export function parseEnvEntries(
  entries: readonly string[],
  hostEnv: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of entries) {
    const eq = entry.indexOf("=");
    const key = eq < 0 ? entry : entry.slice(0, eq);
    if (!/^[^=\s\0]+$/.test(key))
      throw usage(`invalid environment variable ${JSON.stringify(entry)}: want KEY=VALUE`);
    if (eq >= 0) env[key] = entry.slice(eq + 1);
    else if (hostEnv[key] !== undefined) env[key] = hostEnv[key] as string;
  }
  return env;
}

/** Lines of a Docker `--env-file`: `K=V` or `K`; blank lines and `#` comments are skipped; no quoting. */
export function parseEnvFile(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.replace(/^\s+/, ""))
    .filter((l) => l !== "" && !l.startsWith("#"));
}

/** A `-p` mapping: `HOST:GUEST`, or `GUEST` alone (any free host port). Hosts bind 127.0.0.1 only. */
export interface PortMapping {
  hostPort: number;
  guestPort: number;
}

function port(text: string, what: string, allowZero: boolean): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535 || (!allowZero && n === 0)) {
    throw usage(
      `invalid ${what} port ${JSON.stringify(text)}: want a number from ${allowZero ? 0 : 1} to 65535`,
    );
  }
  return n;
}

/** Parses `-p HOST:GUEST`, `-p 127.0.0.1:HOST:GUEST` or `-p GUEST`. */
export function parsePort(spec: string): PortMapping {
  const parts = spec.replace(/\/tcp$/, "").split(":");
  if (parts.length === 3 && parts[0] !== "127.0.0.1" && parts[0] !== "localhost") {
    throw usage(`-p ${spec}: forwarded ports listen on 127.0.0.1 only`);
  }
  if (parts.length === 1) return { hostPort: 0, guestPort: port(parts[0] as string, "guest", false) };
  if (parts.length === 2 || parts.length === 3) {
    const [h, g] = parts.slice(-2) as [string, string];
    return { hostPort: port(h, "host", true), guestPort: port(g, "guest", false) };
  }
  throw usage(`invalid -p ${JSON.stringify(spec)}: want HOST:GUEST or GUEST`);
}

/** A `-v HOST_PATH:GUEST_PATH` copy-in. */
export interface CopyIn {
  hostPath: string;
  guestPath: string;
}

/** Parses `-v HOST_PATH:GUEST_PATH` (the guest path must be absolute). */
export function parseVolume(spec: string): CopyIn {
  const i = spec.lastIndexOf(":");
  const hostPath = spec.slice(0, i);
  const guestPath = spec.slice(i + 1);
  if (i <= 0 || !guestPath.startsWith("/")) {
    throw usage(`invalid -v ${JSON.stringify(spec)}: want HOST_PATH:/GUEST/PATH (copied into the guest)`);
  }
  return { hostPath, guestPath };
}

/** Parses a duration: `30` (seconds), `500ms`, `30s`, `5m`, `2h`, `7d`. Returns milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw usage(`invalid duration ${JSON.stringify(text)}: want e.g. 30s, 5m, 2h, 7d`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? "s") as "s"];
  return Math.round(Number(m[1]) * unit);
}

/** Parses a memory size in MiB: `512`, `512m`, `1g` (binary units). */
export function parseMemoryMib(text: string): number {
  const m = /^(\d+)(m|mb|mib|g|gb|gib)?$/i.exec(text.trim());
  if (!m) throw usage(`invalid memory size ${JSON.stringify(text)}: want MiB, e.g. 512, 512m or 1g`);
  const n = Number(m[1]);
  return m[2]?.toLowerCase().startsWith("g") ? n * 1024 : n;
}

/** Parses a positive integer option. */
export function parseCount(text: string, what: string): number {
  if (!/^\d+$/.test(text)) throw usage(`invalid ${what} ${JSON.stringify(text)}: want a whole number`);
  return Number(text);
}

/** Quotes one word for a POSIX shell. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * Wraps argv so it runs as `user` in the guest: `su -s /bin/sh USER -c
 * 'exec ARGV...'` (util-linux and busybox `su` both take this form).
 */
export function asUser(user: string, argv: readonly string[]): string[] {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$/.test(user)) {
    throw usage(`invalid user ${JSON.stringify(user)}: want a user name from the image's /etc/passwd`);
  }
  return ["su", "-s", "/bin/sh", user, "-c", `exec ${argv.map(shellQuote).join(" ")}`];
}
