import { ChunkQueue } from "./chunk-queue.js";
import {
  DEFAULT_MAX_PAYLOAD,
  FLAG_END,
  HEADER_SIZE,
  MAGIC,
  type MessageTypeName,
  messageTypeName,
} from "./constants.js";
import { ProtocolError } from "./errors.js";
import { DATA_TYPES, type Frame } from "./messages.js";
import { decodePayload } from "./payload-decoder.js";

/** Options of {@link FrameDecoder}. */
export interface FrameDecoderOptions {
  /** Largest payload accepted (default 65536). */
  maxPayload?: number;
  /**
   * Start in scan mode: instead of failing on garbage, look for the magic at
   * every position and yield only complete, well-formed frames that `accept`
   * approves; everything else is discarded. Used before the handshake.
   */
  scan?: boolean;
  /** Scan-mode filter (default: accept every well-formed frame). */
  accept?: (frame: Frame) => boolean;
  /**
   * Strict mode: hand out data frames ({@link DATA_TYPES}: `STDOUT`,
   * `STDERR`, `FILE_DATA`, `TCP_DATA`, `STDIN`) in pieces, as their bytes
   * arrive, instead of whole: each
   * piece is a frame of the same type and stream holding the bytes the
   * current chunk has (a view, never a copy), and only the last piece keeps
   * the frame's END flag. The concatenated bytes and the END are exactly the
   * whole frame's. Other frames always come whole. Default false.
   */
  splitData?: boolean;
}

/** A data frame being handed out in pieces: what is left of it. */
interface DataInProgress {
  type: MessageTypeName;
  stream: number;
  flags: number;
  remaining: number;
}

const MAGIC_LO = MAGIC & 0xff;
const MAGIC_HI = MAGIC >> 8;

type Attempt = Frame | "incomplete" | "invalid";

/**
 * Incremental frame decoder: feed it chunks of any size with {@link push} and
 * pull frames with {@link next}. In strict mode every framing or payload error
 * throws {@link ProtocolError} and the decoder stays failed (it rethrows the
 * same error). In scan mode (see {@link FrameDecoderOptions.scan}) it never
 * throws. Buffered bytes are bounded by one frame (header + `maxPayload`) plus
 * the last pushed chunk.
 */
export class FrameDecoder {
  /** Largest payload accepted; may be changed between frames. */
  maxPayload: number;
  private accept: (frame: Frame) => boolean;
  private scanning: boolean;
  private queue = new ChunkQueue();
  private failure: ProtocolError | undefined;
  // Scan-mode state: a contiguous buffer, positions already checked for a
  // magic start, and candidate positions whose frame is not complete yet.
  private sbuf: Buffer = Buffer.alloc(0);
  private scanned = 0;
  private pending: number[] = [];
  private readonly splitData: boolean;
  private piece: DataInProgress | undefined;

  constructor(options: FrameDecoderOptions = {}) {
    this.maxPayload = options.maxPayload ?? DEFAULT_MAX_PAYLOAD;
    this.scanning = options.scan ?? false;
    this.accept = options.accept ?? (() => true);
    this.splitData = options.splitData ?? false;
  }

  /** True while in scan mode. */
  get scanMode(): boolean {
    return this.scanning;
  }

  /** Number of bytes currently buffered. */
  get bufferedBytes(): number {
    return this.scanning ? this.sbuf.length : this.queue.length;
  }

  /** Switches between scan and strict mode; buffered bytes are kept. */
  setScanMode(scan: boolean, accept?: (frame: Frame) => boolean): void {
    if (accept) this.accept = accept;
    if (scan === this.scanning) return;
    if (scan) {
      this.piece = undefined; // what is left of a data frame is garbage to a scan
      this.sbuf = this.queue.drain();
      this.scanned = 0;
      this.pending = [];
    } else {
      this.queue = new ChunkQueue();
      this.queue.push(this.sbuf);
      this.sbuf = Buffer.alloc(0);
      this.pending = [];
      this.scanned = 0;
    }
    this.scanning = scan;
  }

  /** Appends received bytes. */
  push(chunk: Uint8Array): void {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (this.scanning) this.sbuf = this.sbuf.length === 0 ? b : Buffer.concat([this.sbuf, b]);
    else this.queue.push(b);
  }

  /** Returns the next complete frame, or `undefined` when more bytes are needed. */
  next(): Frame | undefined {
    if (this.failure) throw this.failure;
    if (this.scanning) return this.nextScan();
    try {
      return this.nextStrict();
    } catch (err) {
      this.failure =
        err instanceof ProtocolError ? err : new ProtocolError("BAD_FRAME", String(err), { cause: err });
      throw this.failure;
    }
  }

  /** Pushes `chunk` and returns every frame now complete (throws like {@link next}). */
  decode(chunk: Uint8Array): Frame[] {
    this.push(chunk);
    const out: Frame[] = [];
    for (let f = this.next(); f; f = this.next()) out.push(f);
    return out;
  }

  private nextStrict(): Frame | undefined {
    const q = this.queue;
    if (this.piece) return this.nextPiece();
    if (q.length < HEADER_SIZE) return undefined;
    const h = q.peek(HEADER_SIZE);
    const magic = h.readUInt16LE(0);
    if (magic !== MAGIC) {
      throw new ProtocolError("BAD_FRAME", `bad magic 0x${magic.toString(16).padStart(4, "0")}`);
    }
    const typeNum = h.readUInt8(2);
    const len = h.readUInt32LE(8);
    if (len > this.maxPayload) {
      throw new ProtocolError("FRAME_TOO_LARGE", `frame payload of ${len} bytes exceeds ${this.maxPayload}`);
    }
    const type = messageTypeName(typeNum);
    if (!type) throw new ProtocolError("UNKNOWN_TYPE", `unknown message type 0x${typeNum.toString(16)}`);
    const split = this.splitData && len > 0 && DATA_TYPES.has(type);
    if (!split && q.length < HEADER_SIZE + len) return undefined;
    const flags = h.readUInt8(3);
    const stream = h.readUInt32LE(4);
    q.skip(HEADER_SIZE);
    if (split) {
      this.piece = { type, stream, flags, remaining: len };
      return this.nextPiece();
    }
    const msg = decodePayload(type, q.take(len));
    return { ...msg, stream, flags } as Frame;
  }

  /** The next piece of the data frame in progress: what the first chunk holds of it. */
  private nextPiece(): Frame | undefined {
    const p = this.piece as DataInProgress;
    const n = Math.min(p.remaining, this.queue.headLength);
    if (n === 0) return undefined;
    const data = this.queue.take(n);
    p.remaining -= n;
    const last = p.remaining === 0;
    if (last) this.piece = undefined;
    return { type: p.type, data, stream: p.stream, flags: last ? p.flags : p.flags & ~FLAG_END } as Frame;
  }

  private attempt(p: number): Attempt {
    const b = this.sbuf;
    if (b.length - p < HEADER_SIZE) return "incomplete";
    const type = messageTypeName(b.readUInt8(p + 2));
    const len = b.readUInt32LE(p + 8);
    if (!type || len > this.maxPayload) return "invalid";
    if (b.length - p < HEADER_SIZE + len) return "incomplete";
    try {
      const msg = decodePayload(type, b.subarray(p + HEADER_SIZE, p + HEADER_SIZE + len));
      return { ...msg, stream: b.readUInt32LE(p + 4), flags: b.readUInt8(p + 3) } as Frame;
    } catch {
      return "invalid";
    }
  }

  private nextScan(): Frame | undefined {
    const b = this.sbuf;
    for (let p = this.scanned; p + 1 < b.length; p++) {
      if (b[p] === MAGIC_LO && b[p + 1] === MAGIC_HI) this.pending.push(p);
    }
    this.scanned = Math.max(this.scanned, b.length - 1, 0);
    const still: number[] = [];
    for (let i = 0; i < this.pending.length; i++) {
      const p = this.pending[i] as number;
      const r = this.attempt(p);
      if (r === "incomplete") {
        still.push(p);
        continue;
      }
      if (r === "invalid" || !this.accept(r)) continue;
      // Accepted: everything before the end of this frame is gone.
      const end = p + HEADER_SIZE + b.readUInt32LE(p + 8);
      this.sbuf = b.subarray(end);
      this.pending = [];
      this.scanned = 0;
      return r;
    }
    this.pending = still;
    // Keep from the earliest incomplete candidate, or the last byte (may start a magic).
    const keep = Math.min(still[0] ?? this.scanned, this.scanned);
    if (keep > 0) {
      this.sbuf = Buffer.from(b.subarray(keep));
      this.scanned -= keep;
      this.pending = still.map((p) => p - keep);
    }
    return undefined;
  }
}
