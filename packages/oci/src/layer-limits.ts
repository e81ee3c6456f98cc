import { LayerInvalidError, LimitExceededError } from "./errors.js";
import type { OciLimits } from "./limits.js";
import type { TarEntry } from "./tar-reader.js";

/** Longest file name ext4 (and Linux) can hold, in bytes. */
const NAME_MAX = 255;

function preview(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
}

/**
 * Checks the tar entries of one image against {@link OciLimits}: total entry
 * count over all layers, path and link target length, and the number and
 * size of each entry's xattrs. Throws `OCI_LIMIT_EXCEEDED` naming the limit,
 * or `OCI_LAYER_INVALID` for a file name longer than 255 bytes.
 */
export class LayerEntryLimits {
  private count = 0;
  constructor(private readonly limits: OciLimits) {}

  /** Entries checked so far. */
  get entries(): number {
    return this.count;
  }

  /** Checks one entry of layer `layer` (a description such as `layer 2/3 sha256:…`). */
  check(e: TarEntry, layer: string): void {
    const l = this.limits;
    if (++this.count > l.maxEntries) {
      throw new LimitExceededError(
        "maxEntries",
        l.maxEntries,
        `${layer}: the image has more than ${l.maxEntries} tar entries`,
      );
    }
    const pathBytes = Buffer.byteLength(e.path);
    if (pathBytes > l.maxPathBytes) {
      throw new LimitExceededError(
        "maxPathBytes",
        l.maxPathBytes,
        `${layer}: entry path ${preview(e.path)} is ${pathBytes} bytes`,
        { details: { layer, bytes: pathBytes } },
      );
    }
    if (e.type === "link" || e.type === "symlink") {
      const linkBytes = Buffer.byteLength(e.linkname);
      if (linkBytes > l.maxPathBytes) {
        throw new LimitExceededError(
          "maxPathBytes",
          l.maxPathBytes,
          `${layer}: link target of ${preview(e.path)} is ${linkBytes} bytes`,
          { details: { layer, bytes: linkBytes } },
        );
      }
    }
    for (const part of e.path.split("/")) {
      if (Buffer.byteLength(part) > NAME_MAX) {
        throw new LayerInvalidError(
          `${layer}: entry ${preview(e.path)} has a name longer than ${NAME_MAX} bytes, which no Linux file system holds`,
          { details: { layer } },
        );
      }
    }
    const names = Object.keys(e.xattrs);
    if (names.length > l.maxXattrs) {
      throw new LimitExceededError(
        "maxXattrs",
        l.maxXattrs,
        `${layer}: entry ${preview(e.path)} has ${names.length} xattrs`,
        { details: { layer, count: names.length } },
      );
    }
    let xattrBytes = 0;
    for (const name of names) xattrBytes += Buffer.byteLength(name) + e.xattrs[name]!.length;
    if (xattrBytes > l.maxXattrBytes) {
      throw new LimitExceededError(
        "maxXattrBytes",
        l.maxXattrBytes,
        `${layer}: entry ${preview(e.path)} has ${xattrBytes} bytes of xattrs`,
        { details: { layer, bytes: xattrBytes } },
      );
    }
  }
}
