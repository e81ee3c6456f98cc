import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runMke2fs } from "./mke2fs.js";
import { catFile } from "./rootfs-reader.test-util.js";
import { tarOf } from "./tar-fixture.test-util.js";

const work = mkdtempSync(join(tmpdir(), "oci-mke2fs-test-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const args = (out: string, size = "4096k") => ["-q", "-F", "-t", "ext4", "-d", "-", out, size];

describe("runMke2fs fed through standard input", () => {
  it("builds the image from the bytes the feed writes, in chunks it may reuse after each write", async () => {
    const tar = await tarOf([
      { name: "etc", type: "directory" },
      { name: "etc/hello", data: "hello from the pipe\n" },
    ]);
    const out = join(work, "ok.ext4");
    const buf = Buffer.alloc(512);
    await runMke2fs(args(out), undefined, async (sink) => {
      for (let off = 0; off < tar.length; off += 512) {
        tar.copy(buf, 0, off, off + 512);
        await sink(buf); // the same buffer every time: each write must be done with it
      }
    });
    expect(catFile(out, "/etc/hello")).toBe("hello from the pipe\n");
  });

  it("a feed that fails kills mke2fs and its own error is thrown", async () => {
    const boom = new Error("layer data truncated");
    await expect(
      runMke2fs(args(join(work, "feed-fails.ext4")), undefined, async (sink) => {
        await sink(Buffer.alloc(512));
        throw boom;
      }),
    ).rejects.toBe(boom);
  });

  it("when mke2fs fails while being fed, its error is thrown, not the broken pipe", async () => {
    const big = Buffer.alloc(1 << 20, 0x61);
    const tar = await tarOf([{ name: "big", data: Buffer.concat(Array(16).fill(big)) }]);
    await expect(
      runMke2fs(args(join(work, "too-small.ext4"), "1024k"), undefined, async (sink) => {
        for (let off = 0; off < tar.length; off += 1 << 16) await sink(tar.subarray(off, off + (1 << 16)));
      }),
    ).rejects.toMatchObject({ code: "OCI_ROOTFS_BUILD", message: expect.stringMatching(/mke2fs failed/) });
  });
});
