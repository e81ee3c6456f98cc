import type { ByteSource } from "./byte-source.js";
import { LayerInvalidError } from "./errors.js";

/** Kinds of tar entries this package handles. */
export type TarEntryType = "file" | "link" | "symlink" | "char" | "block" | "dir" | "fifo";

/** One entry of a tar stream, with extended headers folded in. */
export interface TarEntry {
  /** Path as stored (PAX `path` / GNU long name applied), not normalized. */
  path: string;
  type: TarEntryType;
  /** Permission bits incl. setuid/setgid/sticky (`& 0o7777`). */
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  /** Seconds since the epoch. */
  mtime: number;
  /** Data size (0 for everything but files). */
  size: number;
  /** Hardlink / symlink target. */
  linkname: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes (PAX `SCHILY.xattr.*`, `LIBARCHIVE.xattr.*`), raw values. */
  xattrs: Record<string, Buffer>;
  /** Offset of the entry's data in the source. */
  dataOffset: number;
}

const BLOCK = 512;

function cstr(buf: Buffer, off: number, len: number): string {
  const slice = buf.subarray(off, off + len);
  const nul = slice.indexOf(0);
  return (nul >= 0 ? slice.subarray(0, nul) : slice).toString("utf8");
}

function num(buf: Buffer, off: number, len: number): number {
  const b = buf.subarray(off, off + len);
  if (b[0]! & 0x80) {
    // base-256 (GNU): big-endian two's complement with the top bit as a flag
    let v = 0;
    const negative = (b[0]! & 0x40) !== 0;
    for (let i = 0; i < b.length; i++) {
      const byte = i === 0 ? b[i]! & 0x7f : b[i]!;
      v = v * 256 + (negative ? 255 - byte : byte);
    }
    return negative ? -(v + 1) : v;
  }
  const s = b.toString("latin1").replace(/\0.*$/s, "").trim();
  if (!s) return 0;
  if (!/^[0-7]+$/.test(s))
    throw new LayerInvalidError(`bad numeric field in tar header: ${JSON.stringify(s)}`);
  return Number.parseInt(s, 8);
}

function checksumOk(h: Buffer): boolean {
  const stored = num(h, 148, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 32 : h[i]!;
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  return stored === unsigned || stored === signed;
}

/** Parses PAX extended header records; values are kept as raw bytes. */
export function parsePax(data: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let pos = 0;
  while (pos < data.length) {
    const sp = data.indexOf(0x20, pos);
    if (sp < 0) break;
    const len = Number.parseInt(data.subarray(pos, sp).toString("latin1"), 10);
    if (!Number.isFinite(len) || len <= 0 || pos + len > data.length) {
      throw new LayerInvalidError("malformed PAX extended header");
    }
    const rec = data.subarray(sp + 1, pos + len - 1); // without trailing \n
    const eq = rec.indexOf(0x3d);
    if (eq > 0) out.set(rec.subarray(0, eq).toString("utf8"), Buffer.from(rec.subarray(eq + 1)));
    pos += len;
  }
  return out;
}

function applyPax(e: TarEntry, pax: Map<string, Buffer>): void {
  for (const [k, v] of pax) {
    const s = () => v.toString("utf8");
    switch (k) {
      case "path":
        e.path = s();
        break;
      case "linkpath":
        e.linkname = s();
        break;
      case "size":
        e.size = Number(s());
        break;
      case "uid":
        e.uid = Number(s());
        break;
      case "gid":
        e.gid = Number(s());
        break;
      case "uname":
        e.uname = s();
        break;
      case "gname":
        e.gname = s();
        break;
      case "mtime":
        e.mtime = Math.floor(Number(s()));
        break;
      case "SCHILY.devmajor":
        e.devmajor = Number(s());
        break;
      case "SCHILY.devminor":
        e.devminor = Number(s());
        break;
      default:
        if (k.startsWith("SCHILY.xattr.")) e.xattrs[k.slice("SCHILY.xattr.".length)] = v;
        else if (k.startsWith("LIBARCHIVE.xattr.")) {
          const name = decodeURIComponent(k.slice("LIBARCHIVE.xattr.".length));
          e.xattrs[name] = Buffer.from(v.toString("latin1"), "base64");
        } else if (k.startsWith("GNU.sparse.")) {
          throw new LayerInvalidError(`sparse tar entries are not supported (${e.path})`);
        }
    }
  }
}

const TYPES: Record<string, TarEntryType> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "1": "link",
  "2": "symlink",
  "3": "char",
  "4": "block",
  "5": "dir",
  "6": "fifo",
  D: "dir",
};

/** Options of {@link readTarEntries}. */
export interface ReadTarOptions {
  /**
   * Largest extended header (PAX record set, GNU long name or link) read
   * into memory, and largest total of the PAX global records kept. Default 1 MiB.
   */
  maxExtendedHeaderBytes?: number;
}

const U32 = 0xffffffff;

function checkIds(e: TarEntry): void {
  for (const key of ["uid", "gid", "devmajor", "devminor"] as const) {
    const v = e[key];
    if (!Number.isSafeInteger(v) || v < 0 || v > U32) {
      throw new LayerInvalidError(`tar entry ${JSON.stringify(e.path)}: bad ${key} ${String(v)}`, {
        details: { path: e.path, field: key },
      });
    }
  }
  if (!Number.isFinite(e.mtime)) e.mtime = 0;
}

/** What {@link TarHeaderParser.header} found in one 512-byte header block. */
export type TarHeaderStep =
  /** An all-zero block: the end of the archive. */
  | { kind: "end" }
  /** A PAX or GNU extended header: pass its `size` data bytes to {@link TarHeaderParser.extended}. */
  | { kind: "extended"; size: number }
  /**
   * An entry (`entry` undefined for types that are skipped: volume labels,
   * multi-volume parts, unknown types); its data holds `dataBytes` bytes
   * (`entry.size` is 0 for everything but files).
   */
  | { kind: "entry"; entry: TarEntry | undefined; path: string; dataBytes: number };

/**
 * The header logic of a tar reader, fed one 512-byte block at a time:
 * checksums, numeric fields, PAX (local and global) and GNU long names and
 * links folded into the next entry, id and size checks. Used by
 * {@link readTarEntries} (random access) and by {@link TarIndexer}
 * (a stream), so both apply the same rules.
 */
export class TarHeaderParser {
  private global = new Map<string, Buffer>();
  private pax: Map<string, Buffer> | undefined;
  private longName: string | undefined;
  private longLink: string | undefined;
  private pendingType: string | undefined;
  private readonly maxExt: number;

  constructor(opts: ReadTarOptions = {}) {
    this.maxExt = opts.maxExtendedHeaderBytes ?? 1024 * 1024;
  }

  /** Bytes occupied by `size` data bytes (padded to 512). */
  static padded(size: number): number {
    return Math.ceil(size / BLOCK) * BLOCK;
  }

  /** Parses the header block `h` found at offset `pos` of the archive. */
  header(h: Buffer, pos: number): TarHeaderStep {
    if (isZeroBlock(h)) return { kind: "end" };
    if (!checksumOk(h)) throw new LayerInvalidError(`bad tar header checksum at offset ${pos}`);
    const typeflag = String.fromCharCode(h[156]!);
    const size = num(h, 124, 12);
    if (typeflag === "x" || typeflag === "g" || typeflag === "L" || typeflag === "K") {
      if (!Number.isSafeInteger(size) || size < 0)
        throw new LayerInvalidError(`bad tar extended header size at offset ${pos}`);
      if (size > this.maxExt) throw new LayerInvalidError(`tar extended header too large (${size} bytes)`);
      this.pendingType = typeflag;
      return { kind: "extended", size };
    }
    const magic = h.subarray(257, 263).toString("latin1");
    let name = cstr(h, 0, 100);
    if (magic === "ustar\0") {
      const prefix = cstr(h, 345, 155);
      if (prefix) name = `${prefix}/${name}`;
    }
    const type = TYPES[typeflag];
    const entry: TarEntry = {
      path: this.longName ?? name,
      type: type ?? "file",
      mode: num(h, 100, 8) & 0o7777,
      uid: num(h, 108, 8),
      gid: num(h, 116, 8),
      uname: cstr(h, 265, 32),
      gname: cstr(h, 297, 32),
      mtime: num(h, 136, 12),
      size,
      linkname: this.longLink ?? cstr(h, 157, 100),
      devmajor: typeflag === "3" || typeflag === "4" ? num(h, 329, 8) : 0,
      devminor: typeflag === "3" || typeflag === "4" ? num(h, 337, 8) : 0,
      xattrs: {},
      dataOffset: pos + BLOCK,
    };
    if (this.global.size) applyPax(entry, this.global);
    if (this.pax) applyPax(entry, this.pax);
    checkIds(entry);
    const dataBytes = entry.size;
    if (!Number.isSafeInteger(dataBytes) || dataBytes < 0) {
      throw new LayerInvalidError(`bad size for ${entry.path}`);
    }
    this.pax = undefined;
    this.longName = undefined;
    this.longLink = undefined;
    if (typeflag === "S") throw new LayerInvalidError(`sparse tar entries are not supported (${entry.path})`);
    if (type === undefined) return { kind: "entry", entry: undefined, path: entry.path, dataBytes };
    if (type !== "file") entry.size = 0;
    return { kind: "entry", entry, path: entry.path, dataBytes };
  }

  /** Takes the data of the extended header announced by the last {@link header} call. */
  extended(data: Buffer): void {
    const typeflag = this.pendingType;
    this.pendingType = undefined;
    if (typeflag === "x") this.pax = parsePax(data);
    else if (typeflag === "g") {
      this.global = new Map([...this.global, ...parsePax(data)]);
      let globalBytes = 0;
      for (const [k, v] of this.global) globalBytes += k.length + v.length;
      if (globalBytes > this.maxExt) {
        throw new LayerInvalidError(`tar global extended headers larger than ${this.maxExt} bytes in total`);
      }
    } else if (typeflag === "L") this.longName = cstr(data, 0, data.length);
    else if (typeflag === "K") this.longLink = cstr(data, 0, data.length);
  }
}

function isZeroBlock(h: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (h[i] !== 0) return false;
  return true;
}

/**
 * Iterates the entries of an uncompressed tar (ustar, PAX incl. global
 * headers and xattrs, GNU long names/links). Entry data is not read; its
 * offset is reported. Throws {@link LayerInvalidError} on corrupt input
 * (including ids that are not 32-bit unsigned integers, and extended
 * headers over `maxExtendedHeaderBytes`).
 */
export async function* readTarEntries(src: ByteSource, opts: ReadTarOptions = {}): AsyncGenerator<TarEntry> {
  const parser = new TarHeaderParser(opts);
  let pos = 0;
  while (pos + BLOCK <= src.size) {
    const h = await src.read(pos, BLOCK);
    if (h.length < BLOCK) throw new LayerInvalidError("truncated tar header");
    const step = parser.header(h, pos);
    const dataOffset = pos + BLOCK;
    if (step.kind === "end") return;
    if (step.kind === "extended") {
      const d = await src.read(dataOffset, step.size);
      if (d.length < step.size) throw new LayerInvalidError("truncated tar extended header");
      parser.extended(Buffer.from(d));
      pos = dataOffset + TarHeaderParser.padded(step.size);
      continue;
    }
    if (dataOffset + step.dataBytes > src.size) {
      throw new LayerInvalidError(`truncated tar: data of ${step.path} missing`);
    }
    pos = dataOffset + TarHeaderParser.padded(step.dataBytes);
    if (step.entry) yield step.entry;
  }
}
