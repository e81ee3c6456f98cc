import { describe, expect, it } from "vitest";
import { readBounded } from "./bounded-read.js";
import { bufferSource } from "./byte-source.js";
import { LayerEntryLimits } from "./layer-limits.js";
import { DEFAULT_LIMITS, formatBytes, resolveLimits, UnpackBudget } from "./limits.js";
import type { TarEntry } from "./tar-reader.js";

const entry = (over: Partial<TarEntry> = {}): TarEntry => ({
  path: "a/b",
  type: "file",
  mode: 0o644,
  uid: 0,
  gid: 0,
  uname: "",
  gname: "",
  mtime: 0,
  size: 0,
  linkname: "",
  devmajor: 0,
  devminor: 0,
  xattrs: {},
  dataOffset: 0,
  ...over,
});

describe("limits", () => {
  it("fills defaults and rejects unknown or non-positive limits with OCI_INVALID_OPTIONS", () => {
    expect(resolveLimits(undefined)).toEqual(DEFAULT_LIMITS);
    expect(resolveLimits({ maxEntries: 5 }).maxEntries).toBe(5);
    expect(() => resolveLimits({ maxEntries: 0 })).toThrow(
      expect.objectContaining({ code: "OCI_INVALID_OPTIONS" }),
    );
    expect(() => resolveLimits({ maxEntries: 1.5 })).toThrow(/positive integer/);
    expect(() => resolveLimits({ maxBogus: 1 } as never)).toThrow(/unknown limit/);
    expect(formatBytes(16 * 1024 ** 3)).toBe("16 GiB");
    expect(formatBytes(1500)).toBe("1500 bytes");
  });

  it("UnpackBudget counts across calls and names the limit", () => {
    const b = new UnpackBudget(10);
    b.add(6, "layer 1");
    expect(() => b.add(5, "layer 2")).toThrow(
      expect.objectContaining({ code: "OCI_LIMIT_EXCEEDED", limit: "maxUnpackedBytes", max: 10 }),
    );
  });

  it("LayerEntryLimits checks count, path, link target, name length and xattrs", () => {
    const l = new LayerEntryLimits(
      resolveLimits({ maxEntries: 3, maxPathBytes: 20, maxXattrs: 2, maxXattrBytes: 16 }),
    );
    l.check(entry(), "L");
    const code = (fn: () => void) => {
      try {
        fn();
      } catch (err) {
        return `${(err as { code: string }).code}:${(err as { limit?: string }).limit ?? ""}`;
      }
      return "ok";
    };
    expect(code(() => l.check(entry({ path: "x".repeat(21) }), "L"))).toBe("OCI_LIMIT_EXCEEDED:maxPathBytes");
    const l2 = new LayerEntryLimits(resolveLimits({ maxPathBytes: 20, maxXattrs: 2, maxXattrBytes: 16 }));
    expect(code(() => l2.check(entry({ type: "symlink", linkname: "y".repeat(21) }), "L"))).toBe(
      "OCI_LIMIT_EXCEEDED:maxPathBytes",
    );
    // A hardlink target counts, a file's stale linkname does not.
    expect(code(() => l2.check(entry({ type: "file", linkname: "y".repeat(21) }), "L"))).toBe("ok");
    const x = (n: number, size = 1) =>
      Object.fromEntries(Array.from({ length: n }, (_, i) => [`user.${i}`, Buffer.alloc(size)]));
    expect(code(() => l2.check(entry({ xattrs: x(3) }), "L"))).toBe("OCI_LIMIT_EXCEEDED:maxXattrs");
    expect(code(() => l2.check(entry({ xattrs: x(1, 10) }), "L"))).toBe("ok");
    expect(code(() => l2.check(entry({ xattrs: x(1, 11) }), "L"))).toBe("OCI_LIMIT_EXCEEDED:maxXattrBytes");
    const l3 = new LayerEntryLimits(DEFAULT_LIMITS);
    expect(code(() => l3.check(entry({ path: `d/${"n".repeat(256)}` }), "L"))).toBe("OCI_LAYER_INVALID:");
    const l4 = new LayerEntryLimits(resolveLimits({ maxEntries: 2 }));
    l4.check(entry(), "L");
    l4.check(entry(), "L");
    expect(code(() => l4.check(entry(), "L"))).toBe("OCI_LIMIT_EXCEEDED:maxEntries");
  });

  it("readBounded stops an endless source at the cap and destroys it", async () => {
    let destroyed = false;
    let produced = 0;
    const endless = {
      async *[Symbol.asyncIterator]() {
        for (;;) {
          produced += 1024;
          yield Buffer.alloc(1024);
        }
      },
      destroy() {
        destroyed = true;
      },
    };
    await expect(readBounded(endless, 10_000, () => new Error("too big"))).rejects.toThrow("too big");
    expect(destroyed).toBe(true);
    expect(produced).toBeLessThanOrEqual(11 * 1024);
    const declared = { ...endless, destroyed: false };
    await expect(readBounded(declared, 10, () => new Error("declared"), 11)).rejects.toThrow("declared");
    const src = bufferSource(Buffer.from("hello"));
    const once = async function* () {
      yield await src.read(0, 5);
    };
    expect((await readBounded(once(), 5, () => new Error("x"))).toString()).toBe("hello");
  });
});
