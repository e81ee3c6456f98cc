import { DEFAULT_MAX_PAYLOAD, HEADER_SIZE, MAGIC, MessageType, type MessageTypeName } from "./constants.js";
import { ProtocolError } from "./errors.js";
import { type FieldKind, type Frame, MESSAGE_FIELDS } from "./messages.js";

const utf8 = new TextEncoder();

function checkInt(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new ProtocolError(
      "BAD_PAYLOAD",
      `field ${name} must be an integer in [${min}, ${max}], got ${String(v)}`,
    );
  }
  return v;
}

function checkBig(name: string, v: unknown, min: bigint, max: bigint): bigint {
  const b = typeof v === "number" && Number.isInteger(v) ? BigInt(v) : v;
  if (typeof b !== "bigint" || b < min || b > max) {
    throw new ProtocolError(
      "BAD_PAYLOAD",
      `field ${name} must be a 64-bit integer in range, got ${String(v)}`,
    );
  }
  return b;
}

function checkStr(name: string, v: unknown): string {
  if (typeof v !== "string") throw new ProtocolError("BAD_PAYLOAD", `field ${name} must be a string`);
  return v;
}

type Part = Uint8Array;

function encodeField(name: string, kind: FieldKind, v: unknown, parts: Part[]): void {
  let b: Buffer;
  switch (kind) {
    case "u8":
      b = Buffer.allocUnsafe(1);
      b.writeUInt8(checkInt(name, v, 0, 0xff));
      break;
    case "u16":
      b = Buffer.allocUnsafe(2);
      b.writeUInt16LE(checkInt(name, v, 0, 0xffff));
      break;
    case "u32":
      b = Buffer.allocUnsafe(4);
      b.writeUInt32LE(checkInt(name, v, 0, 0xffffffff));
      break;
    case "i32":
      b = Buffer.allocUnsafe(4);
      b.writeInt32LE(checkInt(name, v, -0x80000000, 0x7fffffff));
      break;
    case "u64":
      b = Buffer.allocUnsafe(8);
      b.writeBigUInt64LE(checkBig(name, v, 0n, 0xffffffffffffffffn));
      break;
    case "i64":
      b = Buffer.allocUnsafe(8);
      b.writeBigInt64LE(checkBig(name, v, -(1n << 63n), (1n << 63n) - 1n));
      break;
    case "str": {
      const s = utf8.encode(checkStr(name, v));
      b = Buffer.allocUnsafe(4);
      b.writeUInt32LE(s.length);
      parts.push(b, s);
      return;
    }
    case "strlist": {
      if (!Array.isArray(v))
        throw new ProtocolError("BAD_PAYLOAD", `field ${name} must be an array of strings`);
      b = Buffer.allocUnsafe(4);
      b.writeUInt32LE(v.length);
      parts.push(b);
      for (const item of v) encodeField(name, "str", item, parts);
      return;
    }
    case "bytes":
      if (!(v instanceof Uint8Array))
        throw new ProtocolError("BAD_PAYLOAD", `field ${name} must be a Uint8Array`);
      parts.push(v);
      return;
  }
  parts.push(b);
}

/** Encodes the payload (without header) of a message. */
export function encodePayload(frame: Frame): Buffer {
  const fields = MESSAGE_FIELDS[frame.type];
  if (!fields) throw new ProtocolError("UNKNOWN_TYPE", `unknown message type ${String(frame.type)}`);
  const parts: Part[] = [];
  const rec = frame as unknown as Record<string, unknown>;
  for (const [prop, , kind] of fields) encodeField(prop, kind, rec[prop], parts);
  return Buffer.concat(parts);
}

/** Builds a frame header for a raw payload length. */
export function encodeHeader(type: number, flags: number, stream: number, len: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER_SIZE);
  h.writeUInt16LE(MAGIC, 0);
  h.writeUInt8(type, 2);
  h.writeUInt8(flags, 3);
  h.writeUInt32LE(stream, 4);
  h.writeUInt32LE(len, 8);
  return h;
}

/** Encodes an arbitrary (possibly invalid) frame from raw parts; for tests and fuzzing. */
export function encodeRawFrame(type: number, flags: number, stream: number, payload: Uint8Array): Buffer {
  return Buffer.concat([encodeHeader(type, flags, stream, payload.length), payload]);
}

/**
 * Encodes one frame (header + payload).
 * Throws {@link ProtocolError} (`FRAME_TOO_LARGE`) when the payload exceeds
 * `maxPayload`, (`BAD_PAYLOAD`) when a field is out of range.
 */
export function encodeFrame(frame: Frame, maxPayload: number = DEFAULT_MAX_PAYLOAD): Buffer {
  const type = MessageType[frame.type as MessageTypeName];
  if (type === undefined)
    throw new ProtocolError("UNKNOWN_TYPE", `unknown message type ${String(frame.type)}`);
  checkInt("stream", frame.stream, 0, 0xffffffff);
  checkInt("flags", frame.flags, 0, 0xff);
  const payload = encodePayload(frame);
  if (payload.length > maxPayload) {
    throw new ProtocolError(
      "FRAME_TOO_LARGE",
      `${frame.type} payload of ${payload.length} bytes exceeds ${maxPayload}`,
    );
  }
  return Buffer.concat([encodeHeader(type, frame.flags, frame.stream, payload.length), payload]);
}
