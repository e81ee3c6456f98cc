import { VmmError } from "../errors.js";

/**
 * Maps a host path QEMU was given to what QEMU must use inside its sandbox:
 * another path (a bind mount) or `/dev/fdset/N` (an inherited descriptor).
 * Returns undefined for values it does not know.
 */
export type PathMapper = (hostPath: string) => string | undefined;

/** URI schemes QEMU puts in front of a path in option values (`unix:/x`, `file:/x`). */
const SCHEMES = ["unix:", "file:"];

/** Splits a QEMU `a=b,c=d` option string at single commas (`,,` is a literal comma). */
export function splitOptionString(s: string): string[] {
  const parts: string[] = [];
  let cur = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "," && s[i + 1] === ",") {
      cur += ",";
      i++;
    } else if (c === ",") {
      parts.push(cur);
      cur = "";
    } else {
      cur += c;
    }
  }
  parts.push(cur);
  return parts;
}

/** Joins option parts back, doubling commas inside each part. */
export function joinOptionString(parts: string[]): string {
  return parts.map((p) => p.replaceAll(",", ",,")).join(",");
}

function mapValue(value: string, map: PathMapper): string | undefined {
  const direct = map(value);
  if (direct !== undefined) return direct;
  for (const scheme of SCHEMES) {
    if (!value.startsWith(scheme)) continue;
    const inner = map(value.slice(scheme.length));
    if (inner !== undefined) return scheme + inner;
  }
  return undefined;
}

function mapPart(part: string, map: PathMapper): string {
  const eq = part.indexOf("=");
  if (eq < 0) return mapValue(part, map) ?? part;
  const mapped = mapValue(part.slice(eq + 1), map);
  return mapped === undefined ? part : `${part.slice(0, eq + 1)}${mapped}`;
}

/** Options whose next argument is free text, never a path (the kernel command line). */
const FREE_TEXT = new Set(["-append"]);

/**
 * Rewrites every host path in a QEMU argument vector that `map` knows:
 * whole arguments (`-kernel /x`) and values inside option strings
 * (`mem-path=/x`, `unix:/x`). Then checks that no absolute path is left
 * that the sandbox does not show under `allowedPrefixes`: a QEMU option
 * naming a file the launcher was not told about fails here, with the
 * option named, instead of as a puzzling ENOENT inside the sandbox.
 */
export function rewriteQemuPaths(args: string[], map: PathMapper, allowedPrefixes: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const prev = args[i - 1];
    if (arg.startsWith("-") || (prev !== undefined && FREE_TEXT.has(prev))) {
      out.push(arg);
      continue;
    }
    const whole = map(arg);
    if (whole !== undefined) {
      out.push(whole);
      continue;
    }
    out.push(joinOptionString(splitOptionString(arg).map((p) => mapPart(p, map))));
  }
  for (let i = 0; i < out.length; i++) {
    const prev = out[i - 1];
    if (out[i]!.startsWith("-") || (prev !== undefined && FREE_TEXT.has(prev))) continue;
    for (const part of splitOptionString(out[i]!)) {
      const eq = part.indexOf("=");
      let value = eq < 0 ? part : part.slice(eq + 1);
      for (const scheme of SCHEMES) if (value.startsWith(scheme)) value = value.slice(scheme.length);
      if (value.startsWith("/") && !allowedPrefixes.some((p) => value.startsWith(p))) {
        throw new VmmError(
          "CONFINEMENT_FAILED",
          `QEMU option ${prev ?? ""} ${out[i]} names ${value}, a host file the sandbox does not show; ` +
            "the launcher must be told about it (VmFiles)",
          { details: { option: prev, value } },
        );
      }
    }
  }
  return out;
}
