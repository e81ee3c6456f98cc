import { LayerInvalidError } from "./errors.js";
import { type ReadTarOptions, type TarEntry, TarHeaderParser } from "./tar-reader.js";

const BLOCK = 512;

/**
 * Lists the entries of a tar while it streams past (fed chunk by chunk,
 * e.g. as a layer is decompressed), with the rules of `readTarEntries`.
 * Nothing is acted upon here: the first error (corrupt header, or one
 * thrown by `onEntry`, such as a limit) is recorded, parsing stops, and
 * {@link entries} throws it, so the caller can first check the stream's
 * digests and report a tampered blob as such.
 */
export class TarIndexer {
  private readonly parser: TarHeaderParser;
  private readonly list: TarEntry[] = [];
  /** Absolute offset of the next byte fed. */
  private offset = 0;
  /** Bytes still to skip (entry data and padding). */
  private skip = 0;
  /** A header block split across chunks. */
  private readonly head = Buffer.alloc(BLOCK);
  private headFill = 0;
  /** Extended header data being collected. */
  private ext: Buffer | undefined;
  private extFill = 0;
  /** Where the data of the last entry ends (for the truncation check). */
  private dataEnd = 0;
  private lastPath = "";
  private done = false;
  private failure: unknown;
  private ended = false;

  constructor(
    opts: ReadTarOptions = {},
    private readonly onEntry: (e: TarEntry) => void = () => {},
  ) {
    this.parser = new TarHeaderParser(opts);
  }

  /** Feeds the next bytes of the tar. Never throws (see {@link entries}). */
  write(chunk: Buffer): void {
    if (this.done) {
      this.offset += chunk.length;
      return;
    }
    try {
      this.consume(chunk);
    } catch (err) {
      this.failure = err;
      this.done = true;
    }
    this.offset += chunk.length;
  }

  /** Marks the end of the tar. */
  end(): void {
    this.ended = true;
    if (this.done) return;
    this.done = true;
    if (this.ext) this.failure = new LayerInvalidError("truncated tar extended header");
    else if (this.dataEnd > this.offset) {
      this.failure = new LayerInvalidError(`truncated tar: data of ${this.lastPath} missing`);
    }
  }

  /** The entries, in archive order; throws the first error met (call after {@link end}). */
  entries(): TarEntry[] {
    if (!this.ended) throw new Error("TarIndexer.entries() before end()");
    if (this.failure !== undefined) throw this.failure;
    return this.list;
  }

  private consume(chunk: Buffer): void {
    let i = 0;
    const n = chunk.length;
    while (i < n && !this.done) {
      if (this.skip > 0) {
        const k = Math.min(this.skip, n - i);
        this.skip -= k;
        i += k;
        continue;
      }
      if (this.ext) {
        const k = Math.min(this.ext.length - this.extFill, n - i);
        chunk.copy(this.ext, this.extFill, i, i + k);
        this.extFill += k;
        i += k;
        if (this.extFill === this.ext.length) {
          const data = this.ext;
          this.ext = undefined;
          this.parser.extended(data);
          this.skip = TarHeaderParser.padded(data.length) - data.length;
        }
        continue;
      }
      let h: Buffer;
      if (this.headFill === 0 && n - i >= BLOCK) {
        h = chunk.subarray(i, i + BLOCK);
        i += BLOCK;
      } else {
        const k = Math.min(BLOCK - this.headFill, n - i);
        chunk.copy(this.head, this.headFill, i, i + k);
        this.headFill += k;
        i += k;
        if (this.headFill < BLOCK) continue;
        this.headFill = 0;
        h = this.head;
      }
      const pos = this.offset + i - BLOCK;
      const step = this.parser.header(h, pos);
      if (step.kind === "end") {
        this.done = true;
        break;
      }
      if (step.kind === "extended") {
        if (step.size === 0) this.parser.extended(Buffer.alloc(0));
        else {
          this.ext = Buffer.alloc(step.size);
          this.extFill = 0;
        }
        continue;
      }
      this.dataEnd = pos + BLOCK + step.dataBytes;
      this.lastPath = step.path;
      this.skip = TarHeaderParser.padded(step.dataBytes);
      if (step.entry) {
        this.onEntry(step.entry);
        this.list.push(step.entry);
      }
    }
  }
}
