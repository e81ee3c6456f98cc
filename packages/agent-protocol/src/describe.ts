import { FrameDecoder } from "./decoder.js";
import { ProtocolError } from "./errors.js";
import { type Frame, MESSAGE_FIELDS } from "./messages.js";

/**
 * Quotes a string as in the canonical form: `"` and `\` escaped with a
 * backslash, bytes below 0x20 and 0x7F as `\u00xx` (lowercase hex), every
 * other byte (including non-ASCII UTF-8) as is.
 */
export function quoteCanonical(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    if (ch === '"' || ch === "\\") out += `\\${ch}`;
    else if (c < 0x20 || c === 0x7f) out += `\\u${c.toString(16).padStart(4, "0")}`;
    else out += ch;
  }
  return `${out}"`;
}

function renderValue(kind: string, v: unknown): string {
  switch (kind) {
    case "str":
      return quoteCanonical(v as string);
    case "strlist":
      return `[${(v as string[]).map(quoteCanonical).join(",")}]`;
    case "bytes":
      return Buffer.from(v as Uint8Array).toString("hex");
    default:
      return String(v);
  }
}

/**
 * Renders a frame in the canonical text form of PROTOCOL.md section 7:
 * `NAME stream=S flags=F field=value ...`.
 */
export function describeFrame(frame: Frame): string {
  const rec = frame as unknown as Record<string, unknown>;
  let out = `${frame.type} stream=${frame.stream} flags=${frame.flags}`;
  for (const [prop, wire, kind] of MESSAGE_FIELDS[frame.type])
    out += ` ${wire}=${renderValue(kind, rec[prop])}`;
  return out;
}

/**
 * Decodes one complete frame from `bytes` (with the given payload limit) and
 * renders it canonically, or `!REASON` when the decoder rejects it
 * (`!BAD_FRAME` also for an incomplete frame). Used by the test vectors.
 */
export function describeBytes(bytes: Uint8Array, maxPayload = 65536): string {
  const dec = new FrameDecoder({ maxPayload });
  try {
    const frames = dec.decode(bytes);
    const first = frames[0];
    return first ? describeFrame(first) : "!BAD_FRAME";
  } catch (err) {
    if (err instanceof ProtocolError) return `!${err.reason}`;
    throw err;
  }
}
