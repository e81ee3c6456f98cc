import { ProtocolError } from "./errors.js";

/**
 * Credit the peer granted us for one stream direction. Senders take credit
 * with {@link acquire} (waiting while it is zero) and the session adds it back
 * when a `WINDOW` frame arrives.
 */
export class SendWindow {
  private credit: number;
  private waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];
  private failure: unknown;

  constructor(initial: number) {
    this.credit = initial;
  }

  /** Credit currently available. */
  get available(): number {
    return this.credit;
  }

  /** Adds credit from a `WINDOW(increment)` frame and wakes waiters. */
  add(increment: number): void {
    this.credit += increment;
    for (const w of this.waiters.splice(0)) w.resolve();
  }

  /**
   * Waits until credit is available, then takes up to `max` bytes of it and
   * returns the amount taken (at least 1). Rejects once {@link fail} was called.
   */
  async acquire(max: number): Promise<number> {
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      if (this.credit > 0) {
        const n = Math.min(this.credit, max);
        this.credit -= n;
        return n;
      }
      await new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    }
  }

  /** Makes every current and future {@link acquire} reject with `err`. */
  fail(err: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = err;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }
}

/** Chunks smaller than this are copied together while they wait (see `InboundBuffer`). */
const SMALL_CHUNK = 4096;
/** Size of a buffer small chunks are copied into. */
const GATHER_BYTES = 16 * 1024;

/** Small chunks waiting in an {@link InboundBuffer}, copied together. */
class Gathered {
  readonly buf = Buffer.allocUnsafe(GATHER_BYTES);
  used = 0;
  get room(): number {
    return this.buf.length - this.used;
  }
  append(data: Buffer): void {
    data.copy(this.buf, this.used);
    this.used += data.length;
  }
  /** The bytes, as an exact copy (the gathering buffer is not handed on). */
  take(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.used));
  }
}

/** Where an {@link InboundBuffer} delivers data: a Node Readable's `push`. */
export type PushFn = (chunk: Buffer | null) => boolean;

/**
 * Receive side of one stream direction. Holds data the peer sent until the
 * consumer wants it, and returns window (via `grant`) only as the consumer
 * takes bytes. The peer may never have more than `window` bytes un-granted;
 * a peer that exceeds it gets a {@link ProtocolError} (`FLOW_CONTROL`).
 *
 * Bytes handed to the Readable count as consumed only when the Readable asks
 * for more (`_read`), so unread data on the host (this queue plus the
 * Readable's buffer) never exceeds `window`. Use a Readable highWaterMark of 1.
 */
export class InboundBuffer {
  private queue: (Buffer | Gathered)[] = [];
  private queued = 0;
  private pushedUnconsumed = 0;
  private ungranted = 0;
  private consumedUngranted = 0;
  private wantMore = false;
  private ended = false;
  private endPushed = false;
  private discarding = false;

  constructor(
    private readonly window: number,
    private readonly push: PushFn,
    private readonly grant: (increment: number) => void,
  ) {}

  /** Bytes received and not yet consumed (queued here or sitting in the Readable). */
  get bufferedBytes(): number {
    return this.queued + this.pushedUnconsumed;
  }

  /** Bytes the peer has sent that were not granted back yet. */
  get outstanding(): number {
    return this.ungranted;
  }

  /** True once the END frame arrived. */
  get isEnded(): boolean {
    return this.ended;
  }

  /** Accepts one data frame. Throws `ProtocolError` on a window overrun or data after END. */
  receive(data: Buffer, end: boolean): void {
    if (this.ended) {
      if (data.length === 0) return;
      throw new ProtocolError("FLOW_CONTROL", "data frame after END");
    }
    this.ungranted += data.length;
    if (this.ungranted > this.window) {
      throw new ProtocolError(
        "FLOW_CONTROL",
        `peer overran the window: ${this.ungranted} bytes outstanding, window ${this.window}`,
      );
    }
    if (end) this.ended = true;
    if (this.discarding) {
      this.consume(data.length);
      return;
    }
    if (data.length > 0) {
      this.enqueue(data);
      this.queued += data.length;
    }
    this.pump();
  }

  /** Number of chunks waiting here (bounded: see {@link enqueue}). */
  get queuedChunks(): number {
    return this.queue.length;
  }

  /**
   * Queues a chunk. Small chunks waiting behind each other are copied into
   * one buffer: a peer sending its window as 1-byte frames would otherwise
   * have the host hold a Buffer object per byte (a 4 MiB window: 4 million
   * of them). So at most window / SMALL_CHUNK chunks wait, plus one gathered
   * chunk per GATHER_BYTES. A gathered chunk is handed on as an exact copy,
   * so the consumer never keeps a larger buffer alive than it was given.
   */
  private enqueue(data: Buffer): void {
    const last = this.queue[this.queue.length - 1];
    if (data.length >= SMALL_CHUNK || last === undefined) {
      this.queue.push(data);
    } else if (last instanceof Gathered) {
      const g = last.room >= data.length ? last : new Gathered();
      if (g !== last) this.queue.push(g);
      g.append(data);
    } else if (last.length >= SMALL_CHUNK) {
      this.queue.push(data);
    } else {
      const g = new Gathered(); // the small chunk already waiting and this one, together
      g.append(last);
      g.append(data);
      this.queue[this.queue.length - 1] = g;
    }
  }

  /** Ends the stream locally (the stream ended or the session closed): no more data will come. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.pump();
  }

  /** Called from the Readable's `_read`: what was pushed before is consumed. */
  onRead(): void {
    this.consume(this.pushedUnconsumed);
    this.pushedUnconsumed = 0;
    this.wantMore = true;
    this.pump();
  }

  /** Consumer is gone: drop everything buffered and grant all future data at once. */
  discard(): void {
    if (this.discarding) return;
    this.discarding = true;
    this.consume(this.queued + this.pushedUnconsumed);
    this.queue = [];
    this.queued = 0;
    this.pushedUnconsumed = 0;
  }

  private consume(n: number): void {
    if (n <= 0) return;
    this.consumedUngranted += n;
    if (this.ended) return; // the peer will not send more: no need to grant
    if (this.consumedUngranted * 2 >= this.window || this.discarding) {
      const inc = this.consumedUngranted;
      this.consumedUngranted = 0;
      this.ungranted -= inc;
      this.grant(inc);
    }
  }

  private pump(): void {
    while (this.wantMore && this.queue.length > 0) {
      const entry = this.queue.shift() as Buffer | Gathered;
      const chunk = entry instanceof Gathered ? entry.take() : entry;
      this.queued -= chunk.length;
      this.pushedUnconsumed += chunk.length;
      if (this.push(chunk)) {
        // Delivered straight to a flowing consumer.
        this.consume(this.pushedUnconsumed);
        this.pushedUnconsumed = 0;
      } else {
        this.wantMore = false;
      }
    }
    if (this.ended && this.queue.length === 0 && !this.endPushed) {
      this.endPushed = true;
      this.push(null);
    }
  }
}
