/** A parsed `WWW-Authenticate` challenge. */
export interface AuthChallenge {
  /** Lower-cased scheme: `bearer` or `basic` (others are kept but unsupported). */
  scheme: string;
  /** Parameters such as `realm`, `service`, `scope`. */
  params: Record<string, string>;
}

/** Parses the challenges of a `WWW-Authenticate` header (quoted and token values, several challenges). */
export function parseWwwAuthenticate(header: string): AuthChallenge[] {
  const out: AuthChallenge[] = [];
  const re =
    /\s*([A-Za-z][A-Za-z0-9_-]*)(?:\s+|$)|\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?/y;
  let current: AuthChallenge | undefined;
  let pos = 0;
  while (pos < header.length) {
    re.lastIndex = pos;
    const m = re.exec(header);
    if (!m || m.index !== pos || re.lastIndex === pos) {
      pos++;
      continue;
    }
    pos = re.lastIndex;
    if (m[1] !== undefined && m[2] === undefined) {
      current = { scheme: m[1].toLowerCase(), params: {} };
      out.push(current);
    } else if (m[2] !== undefined && current) {
      current.params[m[2].toLowerCase()] = m[3] !== undefined ? m[3].replace(/\\(.)/g, "$1") : (m[4] ?? "");
    }
  }
  return out;
}
