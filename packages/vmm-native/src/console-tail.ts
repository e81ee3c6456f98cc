import { execFile } from "node:child_process";
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { Socket, type SocketConstructorOpts } from "node:net";
import { promisify } from "node:util";
import { makeFifo } from "./fifo-stock.js";

/** Bytes of guest console each VM keeps on the host (the most recent ones). */
export const CONSOLE_RING_BYTES = 64 * 1024;

/** A fixed-size ring holding the most recent bytes written to it. Memory never exceeds `capacity`. */
export class ByteRing {
  private readonly buf: Buffer;
  private start = 0;
  private used = 0;
  private total = 0;

  constructor(
    /** Most bytes kept. */
    readonly capacity: number,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError("capacity must be a positive integer");
    this.buf = Buffer.alloc(capacity);
  }

  /** Appends bytes; the oldest ones fall out once `capacity` is reached. */
  write(chunk: Uint8Array): void {
    this.total += chunk.length;
    let data = chunk;
    if (data.length >= this.capacity) {
      data = data.subarray(data.length - this.capacity);
      this.buf.set(data, 0);
      this.start = 0;
      this.used = this.capacity;
      return;
    }
    let end = (this.start + this.used) % this.capacity;
    let off = 0;
    while (off < data.length) {
      const n = Math.min(data.length - off, this.capacity - end);
      this.buf.set(data.subarray(off, off + n), end);
      off += n;
      end = (end + n) % this.capacity;
    }
    const overflow = this.used + data.length - this.capacity;
    if (overflow > 0) {
      this.start = (this.start + overflow) % this.capacity;
      this.used = this.capacity;
    } else {
      this.used += data.length;
    }
  }

  /** Bytes currently held (at most `capacity`). */
  get length(): number {
    return this.used;
  }

  /** Every byte ever written, including those that fell out. */
  get totalBytes(): number {
    return this.total;
  }

  /** A copy of the bytes held, oldest first; `maxBytes` keeps only the newest ones. */
  contents(maxBytes = this.used): Buffer {
    const n = Math.max(0, Math.min(maxBytes, this.used));
    const out = Buffer.alloc(n);
    const from = (this.start + this.used - n) % this.capacity;
    const first = Math.min(n, this.capacity - from);
    this.buf.copy(out, 0, from, from + first);
    if (first < n) this.buf.copy(out, first, 0, n - first);
    return out;
  }
}

/** The last `maxLines` lines (at most `maxBytes`) of `bytes`, as text. */
export function textTail(bytes: Buffer, maxLines = 30, maxBytes = 8192): string {
  const lines = bytes
    .subarray(Math.max(0, bytes.length - maxBytes))
    .toString("utf8")
    .split("\n");
  return lines.slice(-maxLines - 1).join("\n");
}

const execFileAsync = promisify(execFile);

/** How long a console sink waits between reads while the guest writes. */
const CONSOLE_BATCH_MS = 50;

/**
 * The host end of a VM's serial console: a named pipe (FIFO) in the VM's run
 * directory that QEMU's `file` chardev writes to, read by this process into a
 * {@link ByteRing} of fixed size. A guest flooding its console therefore costs
 * the host a bounded amount of memory and no disk, and the ring lives in this
 * process, so its tail is still readable after QEMU died (`VM_EXITED` errors).
 *
 * Why a FIFO and not a socket: the UART sends one byte per write. A pipe
 * merges those writes into pages (64 KiB of them fit), so this side reads in
 * batches, at most every {@link CONSOLE_BATCH_MS} ms, instead of waking once
 * per byte. A unix socket holds only ~280 one-byte writes, which would force
 * a wakeup per byte or stall the guest. QEMU writes without blocking: when
 * the pipe is full its UART waits (backpressure into the guest), so a flood
 * is throttled to at most 64 KiB per batch interval.
 *
 * This process holds the FIFO open read-write, so QEMU's open never blocks
 * and QEMU exiting is not an end-of-file; {@link close} reads what is left.
 */
export class ConsoleSink {
  private readonly ring: ByteRing;
  private readonly sock: Socket;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    /** Path of the FIFO QEMU writes to. */
    readonly path: string,
    private readonly fd: number,
    capacity: number,
  ) {
    this.ring = new ByteRing(capacity);
    // A high-water mark of one byte makes the stream stop reading the pipe
    // after every read; each harvest below consumes what was read and starts
    // exactly one more read, which then takes everything the pipe collected
    // meanwhile (up to 64 KiB). Idle, nothing wakes up.
    const opts = { fd, readable: true, writable: false, readableHighWaterMark: 1 }; // passed on to Duplex
    this.sock = new Socket(opts as SocketConstructorOpts);
    this.sock.on("error", () => {});
    this.sock.on("readable", () => {
      if (this.timer || this.closed) return;
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.harvest();
      }, CONSOLE_BATCH_MS);
      this.timer.unref();
    });
  }

  /** Moves what the stream has read into the ring (which lets it read again). */
  private harvest(): void {
    for (let c = this.sock.read() as Buffer | null; c !== null; c = this.sock.read() as Buffer | null)
      this.ring.write(c);
  }

  /**
   * Makes the FIFO at `path` (mode 0600) and opens it, so QEMU can be
   * started with `-chardev file,path=PATH` at once.
   */
  static async open(path: string, capacity = CONSOLE_RING_BYTES): Promise<ConsoleSink> {
    // Node has no mkfifo(3): take one made ahead (see fifo-stock.ts), else run the tool
    await makeFifo(path).catch(() => execFileAsync("mkfifo", ["-m", "600", path]));
    const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
    return new ConsoleSink(path, fd, capacity);
  }

  /** Moves whatever the stream and the pipe hold into the ring now. */
  private drain(): void {
    this.harvest();
    const buf = Buffer.allocUnsafe(64 * 1024);
    for (;;) {
      let n = 0;
      try {
        n = readSync(this.fd, buf, 0, buf.length, null);
      } catch {
        return; // EAGAIN: empty
      }
      if (n <= 0) return;
      this.ring.write(buf.subarray(0, n));
    }
  }

  /** The last lines of the console, as text (for error messages). */
  tail(maxLines = 30): string {
    if (!this.closed) this.drain();
    return textTail(this.ring.contents(), maxLines);
  }

  /** A copy of the console bytes held (the newest `capacity` at most). */
  bytes(): Buffer {
    if (!this.closed) this.drain();
    return this.ring.contents();
  }

  /** Console bytes received since QEMU started, including those no longer held. */
  get totalBytes(): number {
    if (!this.closed) this.drain();
    return this.ring.totalBytes;
  }

  /** Most bytes held. */
  get capacity(): number {
    return this.ring.capacity;
  }

  /**
   * Reads what is left in the pipe, then closes it (call it once QEMU has
   * exited); the ring stays readable. Idempotent.
   */
  close(): void {
    if (this.closed) return;
    this.drain();
    this.closed = true;
    clearTimeout(this.timer);
    this.sock.destroy();
  }
}

/**
 * Returns the last `maxLines` lines (at most 8 KiB) of a text file, or "" if
 * it cannot be read. A symlink is not followed (the file may sit in a
 * directory QEMU can write to).
 */
export function fileTail(path: string, maxLines = 30): string {
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    const size = fstatSync(fd).size;
    const len = Math.min(size, 8192);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    const lines = buf.toString("utf8").split("\n");
    return lines.slice(-maxLines - 1).join("\n");
  } catch {
    return "";
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
