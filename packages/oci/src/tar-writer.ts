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

/** Writes `value` as `len - 1` octal digits and a NUL; false when it does not fit. */
function octal(buf: Buffer, off: number, len: number, value: number): boolean {
  let v = Math.max(0, Math.floor(value));
  if (v >= 8 ** (len - 1)) return false;
  for (let i = len - 2; i >= 0; i--) {
    buf[off + i] = 0x30 + (v % 8);
    v = Math.floor(v / 8);
  }
  buf[off + len - 1] = 0;
  return true;
}

/** Copies the UTF-8 bytes of `s` into `buf` at `off`, at most `max` of them (cut mid-character like a byte copy). */
function putString(buf: Buffer, off: number, max: number, s: string): void {
  if (s.length === 0) return;
  if (s.length <= max && Buffer.byteLength(s) <= max) buf.write(s, off, max, "utf8");
  else Buffer.from(s, "utf8").copy(buf, off, 0, max);
}

const MAGIC = Buffer.from("ustar\x0000", "latin1");

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

/**
 * Encodes a ustar header block into `b` at `o`. The name is `nameBuf` and
 * `prefix` (split by `splitUstar`), or the string `name` when it fits the
 * 100-byte field as is.
 */
function header(
  b: Buffer,
  o: number,
  h: TarHeader,
  typeflag: number,
  name: string | Buffer,
  prefix: Buffer | undefined,
  size: number,
): void {
  b.fill(0, o, o + 512);
  if (typeof name === "string") b.write(name, o, 100, "utf8");
  else name.copy(b, o, 0, Math.min(100, name.length));
  octal(b, o + 100, 8, h.mode & 0o7777);
  octal(b, o + 108, 8, h.uid) || octal(b, o + 108, 8, 0);
  octal(b, o + 116, 8, h.gid) || octal(b, o + 116, 8, 0);
  octal(b, o + 124, 12, size);
  octal(b, o + 136, 12, h.mtime) || octal(b, o + 136, 12, 0);
  b[o + 156] = typeflag;
  if (h.linkname) putString(b, o + 157, 100, h.linkname);
  MAGIC.copy(b, o + 257);
  if (h.uname) putString(b, o + 265, 31, h.uname.slice(0, 31));
  if (h.gname) putString(b, o + 297, 31, h.gname.slice(0, 31));
  octal(b, o + 329, 8, h.devmajor ?? 0);
  octal(b, o + 337, 8, h.devminor ?? 0);
  if (prefix?.length) prefix.copy(b, o + 345, 0, Math.min(155, prefix.length));
  b.fill(0x20, o + 148, o + 156);
  let sum = 0;
  for (let i = o; i < o + 512; i++) sum += b[i]!;
  octal(b, o + 148, 7, sum);
  b[o + 155] = 0x20;
}

const PAX_NAME = Buffer.from("././@PaxHeader");
const TYPEFLAG_PAX = 0x78; // "x"

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
    const pathStr = h.type === "dir" && !h.path.endsWith("/") ? `${h.path}/` : h.path;
    let pax: Buffer[] | undefined;
    let name: string | Buffer = pathStr;
    let prefix: Buffer | undefined;
    if (pathStr.length > 100 || Buffer.byteLength(pathStr) > 100) {
      const path = Buffer.from(pathStr, "utf8");
      const split = splitUstar(path);
      if (split) {
        name = split.name;
        prefix = split.prefix;
      } else {
        pax = [paxRecord("path", path)];
        name = path.subarray(0, 100);
      }
    }
    const add = (rec: Buffer) => {
      pax ??= [];
      pax.push(rec);
    };
    if (h.linkname && (h.linkname.length > 100 || Buffer.byteLength(h.linkname) > 100)) {
      add(paxRecord("linkpath", Buffer.from(h.linkname, "utf8")));
    }
    if (h.uid > 0o7777777) add(paxRecord("uid", Buffer.from(String(h.uid))));
    if (h.gid > 0o7777777) add(paxRecord("gid", Buffer.from(String(h.gid))));
    if (h.size > 0o77777777777) add(paxRecord("size", Buffer.from(String(h.size))));
    if ((h.uname ?? "").length > 31) add(paxRecord("uname", Buffer.from(h.uname!, "utf8")));
    if ((h.gname ?? "").length > 31) add(paxRecord("gname", Buffer.from(h.gname!, "utf8")));
    if (h.xattrs) for (const k in h.xattrs) add(paxRecord(`SCHILY.xattr.${k}`, h.xattrs[k]!));
    if (pax) {
      const data = Buffer.concat(pax);
      const ph = Buffer.alloc(512);
      header(
        ph,
        0,
        { path: "", type: "file", mode: 0o644, uid: 0, gid: 0, mtime: 0, size: data.length },
        TYPEFLAG_PAX,
        PAX_NAME,
        undefined,
        data.length,
      );
      await this.write(ph);
      await this.write(data);
      await this.pad(data.length);
    }
    const typeflag = TYPEFLAG[h.type].charCodeAt(0);
    const size = h.size > 0o77777777777 ? 0 : h.size;
    if (this.buf.length - this.used >= 512) {
      // Straight into the current chunk.
      header(this.buf, this.used, h, typeflag, name, prefix, size);
      this.used += 512;
      return;
    }
    const b = Buffer.alloc(512);
    header(b, 0, h, typeflag, name, prefix, size);
    await this.write(b);
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
