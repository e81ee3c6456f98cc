import { BlobCache } from "./blob-cache.js";
import { type DecompressOptions, decompressLayer } from "./decompress.js";
import { decompressLayerToFile } from "./decompress-to-file.js";
import { throwIfAborted } from "./errors.js";
import { LayerEntryLimits } from "./layer-limits.js";
import { LayerData, MemoryAllowance } from "./layer-store.js";
import { type OciLimits, UnpackBudget } from "./limits.js";
import type { PulledImage } from "./pulled-image.js";
import { TarIndexer } from "./tar-indexer.js";
import type { TarEntry } from "./tar-reader.js";

/** The uncompressed layers of an image, and their entries. */
export interface UnpackedLayers {
  /** Layer `i`'s tar (release them when done). */
  data: LayerData[];
  /** Layer `i`'s entries, in tar order. */
  entries: TarEntry[][];
}

/** What unpacking one layer needs, shared by the layers of one image. */
class LayerUnpacker {
  private readonly blobs: BlobCache;
  private readonly budget: UnpackBudget;
  private readonly entryLimits: LayerEntryLimits;
  private readonly maxExtendedHeaderBytes: number;

  constructor(
    private readonly image: PulledImage,
    cacheDir: string,
    limits: OciLimits,
    private readonly progress: (message: string) => void,
    private readonly signal?: AbortSignal,
  ) {
    this.blobs = new BlobCache(cacheDir);
    this.budget = new UnpackBudget(limits.maxUnpackedBytes);
    this.entryLimits = new LayerEntryLimits(limits);
    // PAX headers hold paths, link targets and xattrs: allow what the limits allow, and no more.
    this.maxExtendedHeaderBytes = Math.max(
      1024 * 1024,
      2 * limits.maxXattrBytes + 2 * limits.maxPathBytes + 64 * 1024,
    );
  }

  /**
   * Decompresses layer `i` with `decode` (which writes the tar somewhere and
   * hands each chunk to `onData`), listing its entries on the way; returns
   * them with what `decode` returned, once both digests matched.
   */
  async unpack<T>(
    i: number,
    decode: (blob: string, digest: string, diffId: string, opts: DecompressOptions) => Promise<T>,
  ): Promise<{ entries: TarEntry[]; result: T }> {
    const n = this.image.layers.length;
    const layer = this.image.layers[i]!;
    throwIfAborted(this.signal);
    this.progress(`decompressing layer ${i + 1}/${n} ${layer.digest}`);
    const where = `layer ${i + 1}/${n} ${layer.digest}`;
    const indexer = new TarIndexer({ maxExtendedHeaderBytes: this.maxExtendedHeaderBytes }, (e) =>
      this.entryLimits.check(e, where),
    );
    let result: T;
    try {
      result = await decode(this.blobs.path(layer.digest), layer.digest, layer.diffId, {
        budget: this.budget,
        onData: (chunk) => indexer.write(chunk),
        signal: this.signal,
      });
    } catch (err) {
      // A blob that no longer matches its digest is dropped so the next pull fetches it again.
      if ((err as { code?: string }).code === "OCI_DIGEST_MISMATCH") await this.blobs.remove(layer.digest);
      throw err;
    }
    indexer.end();
    return { entries: indexer.entries(), result };
  }
}

/**
 * Decompresses every layer of `image` from the blob cache (two at a time,
 * one per core) into memory while `memoryBytes` last, into
 * `spillPaths[i]` beyond that, listing each tar's entries
 * while it streams. A layer's entries are used only once its blob digest
 * and diff ID are verified: a corrupt header or a limit met in a blob
 * that turns out not to match is reported as `OCI_DIGEST_MISMATCH` (and
 * the blob dropped from the cache, so the next pull fetches it again).
 * Entries are checked against `limits` (count, path, xattrs; over all
 * layers) and the uncompressed bytes against `maxUnpackedBytes`.
 */
export async function unpackLayers(
  image: PulledImage,
  cacheDir: string,
  spillPaths: readonly string[],
  limits: OciLimits,
  memoryBytes: number,
  progress: (message: string) => void,
  signal?: AbortSignal,
): Promise<UnpackedLayers> {
  const unpacker = new LayerUnpacker(image, cacheDir, limits, progress, signal);
  const n = image.layers.length;
  const out: TarEntry[][] = new Array(n);
  const allowance = new MemoryAllowance(memoryBytes);
  const data = spillPaths.map((p) => new LayerData(allowance, p));
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (next < n && !failed) {
      const i = next++;
      out[i] = (
        await unpacker.unpack(i, (blob, digest, diffId, opts) =>
          decompressLayer(blob, digest, diffId, data[i]!, opts),
        )
      ).entries;
    }
  };
  // Both workers run to their end before this returns or throws, so the
  // caller may remove their files right after.
  const results = await Promise.allSettled(
    [worker(), worker()].map((p) =>
      p.catch((err: unknown) => {
        failed = true;
        throw err;
      }),
    ),
  );
  for (const r of results) {
    if (r.status === "rejected") {
      for (const d of data) d.release();
      throw r.reason;
    }
  }
  return { data, entries: out };
}

/** The layers of an image written one after another into one file, and their entries. */
export interface LayersInPlace {
  /** Layer `i`'s entries, in tar order. */
  entries: TarEntry[][];
  /** File offset of layer `i`'s uncompressed tar. */
  layerBase: number[];
  /** File offset just past the last layer. */
  end: number;
}

/**
 * Like {@link unpackLayers}, but each layer's uncompressed tar is appended
 * to the file `path` (which must be `start` bytes long), one layer at a
 * time, so a file system can use file data where it lies
 * ({@link decompressLayerToFile}). Same checks, same errors. Returns (or
 * throws) only once nothing writes the file any more.
 */
export async function unpackLayersInPlace(
  image: PulledImage,
  cacheDir: string,
  path: string,
  start: number,
  limits: OciLimits,
  progress: (message: string) => void,
  signal?: AbortSignal,
): Promise<LayersInPlace> {
  const unpacker = new LayerUnpacker(image, cacheDir, limits, progress, signal);
  const entries: TarEntry[][] = [];
  const layerBase: number[] = [];
  let at = start;
  for (let i = 0; i < image.layers.length; i++) {
    const base = at;
    const r = await unpacker.unpack(i, (blob, digest, diffId, opts) =>
      decompressLayerToFile(blob, digest, diffId, path, base, opts),
    );
    entries.push(r.entries);
    layerBase.push(base);
    at += r.result;
  }
  return { entries, layerBase, end: at };
}
