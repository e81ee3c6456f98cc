/** Header fields of an entry written by {@link TarWriter}. */
export interface TarHeader {
  path: string;
  type: "file" | "link" | "symlink" | "char" | "block" | "dir" | "fifo";
  mode: number;
  uid: number;
  gid: number;
  uname?: string;
  gname?: string;
  mtime: number;
  size: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, Buffer>;
}

const ZEROS = Buffer.alloc(1024);

const TYPEFLAG: Record<TarHeader["type"], string> = {
  file: "0",
  link: "1",
  symlink: "2",
  char: "3",
  block: "4",
  dir: "5",
  fifo: "6",
};

function octal(buf: Buffer, off: number, len: number, value: number): boolean {
  const s = Math.max(0, Math.floor(value)).toString(8);
  if (s.length > len - 1) return false;
  buf.write(s.padStart(len - 1, "0"), off, len - 1, "latin1");
  buf[off + len - 1] = 0;
  return true;
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, "utf8"), value, Buffer.from("\n")]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), "latin1"), body]);
}

function splitUstar(path: Buffer): { name: Buffer; prefix: Buffer } | undefined {
  if (path.length <= 100) return { name: path, prefix: Buffer.alloc(0) };
  for (let i = path.length - 1; i > 0; i--) {
    if (path[i] !== 0x2f) continue;
    const prefix = path.subarray(0, i);
    const name = path.subarray(i + 1);
    if (prefix.length <= 155 && name.length <= 100 && name.length > 0) return { name, prefix };
    if (path.length - i - 1 > 100) break;
  }
  return undefined;
}

function header(h: TarHeader, typeflag: string, nameBuf: Buffer, prefix: Buffer, size: number): Buffer {
  const b = Buffer.alloc(512);
  nameBuf.copy(b, 0, 0, Math.min(100, nameBuf.length));
  octal(b, 100, 8, h.mode & 0o7777);
  octal(b, 108, 8, h.uid) || octal(b, 108, 8, 0);
  octal(b, 116, 8, h.gid) || octal(b, 116, 8, 0);
  octal(b, 124, 12, size);
  octal(b, 136, 12, h.mtime) || octal(b, 136, 12, 0);
  b.write(typeflag, 156, 1, "latin1");
  if (h.linkname) Buffer.from(h.linkname, "utf8").copy(b, 157, 0, 100);
  b.write("ustar\0", 257, 6, "latin1");
  b.write("00", 263, 2, "latin1");
  Buffer.from((h.uname ?? "").slice(0, 31), "utf8").copy(b, 265, 0, 31);
  Buffer.from((h.gname ?? "").slice(0, 31), "utf8").copy(b, 297, 0, 31);
  octal(b, 329, 8, h.devmajor ?? 0);
  octal(b, 337, 8, h.devminor ?? 0);
  prefix.copy(b, 345, 0, Math.min(155, prefix.length));
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += b[i]!;
  b.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "latin1");
  return b;
}

/**
 * Takes the next chunk of an encoded stream. The returned promise resolves
 * once the sink is done with the chunk's memory (the writer then reuses
 * it); the writer keeps a few chunks under way before it waits.
 */
export type ByteSink = (chunk: Buffer) => Promise<void>;

/**
 * Reads up to `length` bytes into `buf` at `offset`, being the bytes
 * `done..done+length` of an entry's data; returns how many it read (0:
 * the data is truncated).
 */
export type DataReader = (buf: Buffer, offset: number, length: number, done: number) => number;

/**
 * Encodes a tar stream (ustar, with a PAX extended header when a name,
 * link target, id or size does not fit, or when there are xattrs) into a
 * {@link ByteSink}, in chunks of `chunkSize` bytes from a ring of `depth`
 * buffers (entry data is read straight into them).
 */
export class TarWriter {
  private readonly ring: { buf: Buffer; busy?: Promise<void> }[];
  private slot = 0;
  private buf: Buffer;
  private used = 0;
  private flushed = 0;
  constructor(
    private readonly sink: ByteSink,
    chunkSize = 1024 * 1024,
    depth = 4,
  ) {
    this.ring = Array.from({ length: depth }, () => ({ buf: Buffer.allocUnsafe(chunkSize) }));
    this.buf = this.ring[0]!.buf;
  }

  /** Bytes written so far (including buffered). */
  get bytesWritten(): number {
    return this.flushed + this.used;
  }

  private async flush(): Promise<void> {
    if (this.used === 0) return;
    const cur = this.ring[this.slot]!;
    cur.busy = this.sink(this.buf.subarray(0, this.used));
    // Awaited when the slot comes round again; marked handled now so a failed write is not reported as unhandled meanwhile.
    cur.busy.catch(() => {});
    this.flushed += this.used;
    this.used = 0;
    this.slot = (this.slot + 1) % this.ring.length;
    const next = this.ring[this.slot]!;
    if (next.busy) await next.busy;
    next.busy = undefined;
    this.buf = next.buf;
  }

  /** Waits until the sink is done with every chunk. */
  private async settle(): Promise<void> {
    for (const r of this.ring) {
      if (r.busy) await r.busy;
      r.busy = undefined;
    }
  }

  /** Appends raw bytes. */
  async write(data: Uint8Array): Promise<void> {
    let off = 0;
    while (off < data.length) {
      if (this.used === this.buf.length) await this.flush();
      const k = Math.min(this.buf.length - this.used, data.length - off);
      this.buf.set(data.subarray(off, off + k), this.used);
      this.used += k;
      off += k;
    }
  }

  /**
   * Appends `size` data bytes taken from `read` (straight into the
   * writer's buffer); returns false when `read` ran dry before `size`.
   */
  async writeFrom(size: number, read: DataReader): Promise<boolean> {
    let done = 0;
    while (done < size) {
      if (this.used === this.buf.length) await this.flush();
      const k = read(this.buf, this.used, Math.min(this.buf.length - this.used, size - done), done);
      if (k <= 0) return false;
      this.used += k;
      done += k;
    }
    return true;
  }

  /** Writes an entry header (and a PAX header before it when needed). The caller then writes `size` data bytes and calls {@link pad}. */
  async writeHeader(h: TarHeader): Promise<void> {
    const path = Buffer.from(h.type === "dir" && !h.path.endsWith("/") ? `${h.path}/` : h.path, "utf8");
    const pax: Buffer[] = [];
    let split = splitUstar(path);
    if (!split) {
      pax.push(paxRecord("path", path));
      split = { name: path.subarray(0, 100), prefix: Buffer.alloc(0) };
    }
    const link = Buffer.from(h.linkname ?? "", "utf8");
    if (link.length > 100) pax.push(paxRecord("linkpath", link));
    if (h.uid > 0o7777777) pax.push(paxRecord("uid", Buffer.from(String(h.uid))));
    if (h.gid > 0o7777777) pax.push(paxRecord("gid", Buffer.from(String(h.gid))));
    if (h.size > 0o77777777777) pax.push(paxRecord("size", Buffer.from(String(h.size))));
    if ((h.uname ?? "").length > 31) pax.push(paxRecord("uname", Buffer.from(h.uname!, "utf8")));
    if ((h.gname ?? "").length > 31) pax.push(paxRecord("gname", Buffer.from(h.gname!, "utf8")));
    for (const [k, v] of Object.entries(h.xattrs ?? {})) pax.push(paxRecord(`SCHILY.xattr.${k}`, v));
    if (pax.length) {
      const data = Buffer.concat(pax);
      const ph = header(
        { path: "", type: "file", mode: 0o644, uid: 0, gid: 0, mtime: 0, size: data.length },
        "x",
        Buffer.from("././@PaxHeader"),
        Buffer.alloc(0),
        data.length,
      );
      await this.write(ph);
      await this.write(data);
      await this.pad(data.length);
    }
    await this.write(
      header(h, TYPEFLAG[h.type], split.name, split.prefix, h.size > 0o77777777777 ? 0 : h.size),
    );
  }

  /** Pads the data just written (of `size` bytes) to a 512-byte boundary. */
  async pad(size: number): Promise<void> {
    const rem = size % 512;
    if (rem) await this.write(ZEROS.subarray(0, 512 - rem));
  }

  /** Writes the end-of-archive marker and flushes. */
  async finish(): Promise<void> {
    await this.write(ZEROS);
    await this.flush();
    await this.settle();
  }
}
