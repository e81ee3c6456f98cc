import { BlobCache } from "./blob-cache.js";
import { decompressLayer } from "./decompress.js";
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
  const blobs = new BlobCache(cacheDir);
  const budget = new UnpackBudget(limits.maxUnpackedBytes);
  const entryLimits = new LayerEntryLimits(limits);
  // PAX headers hold paths, link targets and xattrs: allow what the limits allow, and no more.
  const maxExtendedHeaderBytes = Math.max(
    1024 * 1024,
    2 * limits.maxXattrBytes + 2 * limits.maxPathBytes + 64 * 1024,
  );
  const n = image.layers.length;
  const out: TarEntry[][] = new Array(n);
  const allowance = new MemoryAllowance(memoryBytes);
  const data = spillPaths.map((p) => new LayerData(allowance, p));
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (next < n && !failed) {
      const i = next++;
      const layer = image.layers[i]!;
      throwIfAborted(signal);
      progress(`decompressing layer ${i + 1}/${n} ${layer.digest}`);
      const where = `layer ${i + 1}/${n} ${layer.digest}`;
      const indexer = new TarIndexer({ maxExtendedHeaderBytes }, (e) => entryLimits.check(e, where));
      try {
        await decompressLayer(blobs.path(layer.digest), layer.digest, layer.diffId, data[i]!, {
          budget,
          onData: (chunk) => indexer.write(chunk),
          signal,
        });
      } catch (err) {
        // A blob that no longer matches its digest is dropped so the next pull fetches it again.
        if ((err as { code?: string }).code === "OCI_DIGEST_MISMATCH") await blobs.remove(layer.digest);
        throw err;
      }
      indexer.end();
      out[i] = indexer.entries();
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
