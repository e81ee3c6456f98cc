import type { MessageTypeName } from "./constants.js";
import { ProtocolError } from "./errors.js";
import { type FieldKind, MESSAGE_FIELDS, type Message } from "./messages.js";

const utf8 = new TextDecoder("utf-8");

class Reader {
  off = 0;
  constructor(
    readonly buf: Buffer,
    readonly type: string,
  ) {}
  need(n: number, what: string): void {
    if (this.buf.length - this.off < n) {
      throw new ProtocolError(
        "BAD_PAYLOAD",
        `${this.type}: payload too short for ${what} (need ${n} bytes at offset ${this.off}, have ${this.buf.length - this.off})`,
      );
    }
  }
  str(what: string): string {
    this.need(4, what);
    const len = this.buf.readUInt32LE(this.off);
    this.off += 4;
    this.need(len, `${what} (${len} bytes)`);
    const s = utf8.decode(this.buf.subarray(this.off, this.off + len));
    this.off += len;
    return s;
  }
  field(name: string, kind: FieldKind): unknown {
    const b = this.buf;
    let v: unknown;
    switch (kind) {
      case "u8":
        this.need(1, name);
        v = b.readUInt8(this.off);
        this.off += 1;
        return v;
      case "u16":
        this.need(2, name);
        v = b.readUInt16LE(this.off);
        this.off += 2;
        return v;
      case "u32":
        this.need(4, name);
        v = b.readUInt32LE(this.off);
        this.off += 4;
        return v;
      case "i32":
        this.need(4, name);
        v = b.readInt32LE(this.off);
        this.off += 4;
        return v;
      case "u64":
        this.need(8, name);
        v = b.readBigUInt64LE(this.off);
        this.off += 8;
        return v;
      case "i64":
        this.need(8, name);
        v = b.readBigInt64LE(this.off);
        this.off += 8;
        return v;
      case "str":
        return this.str(name);
      case "strlist": {
        this.need(4, name);
        const count = b.readUInt32LE(this.off);
        this.off += 4;
        // Each item needs at least its 4-byte length: reject absurd counts up front.
        this.need(count * 4, `${name} (${count} items)`);
        const out: string[] = [];
        for (let i = 0; i < count; i++) out.push(this.str(`${name}[${i}]`));
        return out;
      }
      case "bytes":
        v = b.subarray(this.off);
        this.off = b.length;
        return v;
    }
  }
}

/**
 * Decodes the payload of a message of a known type.
 * Throws {@link ProtocolError} `BAD_PAYLOAD` when a field runs past the payload.
 * Trailing bytes after the last field are ignored (forward compatibility).
 * `bytes` fields are views into `payload` (no copy).
 */
export function decodePayload(type: MessageTypeName, payload: Buffer): Message {
  const r = new Reader(payload, type);
  const out: Record<string, unknown> = { type };
  for (const [prop, , kind] of MESSAGE_FIELDS[type]) out[prop] = r.field(prop, kind);
  return out as unknown as Message;
}
