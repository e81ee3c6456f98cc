import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { gzipSync } from "node:zlib";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { decoderProgram, decompressLayer } from "./decompress.js";
import { decompressLayerToFile } from "./decompress-to-file.js";
import { UnpackBudget } from "./limits.js";

const work = mkdtempSync(join(tmpdir(), "decompress-test-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
afterEach(() => {
  delete process.env.SUPERMACHINE_GUNZIP;
});
let n = 0;

const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

function blob(bytes: Buffer): string {
  const path = join(work, `blob-${n++}`);
  writeFileSync(path, bytes);
  return path;
}

/** Decompresses `gz` (digest computed from it unless given) and returns the output, or the error. */
async function run(
  gz: Buffer,
  diffId: string,
  opts: { digest?: string; budget?: number } = {},
): Promise<Buffer | { code: string; message: string }> {
  const chunks: Buffer[] = [];
  const seen: Buffer[] = [];
  const out = new Writable({
    write(c: Buffer, _e, cb) {
      chunks.push(c);
      cb();
    },
  });
  try {
    await decompressLayer(blob(gz), opts.digest ?? sha(gz), diffId, out, {
      budget: opts.budget ? new UnpackBudget(opts.budget) : undefined,
      onData: (c) => seen.push(Buffer.from(c)),
    });
  } catch (err) {
    const e = err as { code: string; message: string };
    return { code: e.code, message: e.message };
  }
  const got = Buffer.concat(chunks);
  expect(Buffer.concat(seen).equals(got)).toBe(true);
  return got;
}

// The same cases through both gzip decoders: ISA-L's igzip (installed by
// scripts/setup-system.sh) in a child process, and Node's zlib.
describe.each(["igzip", "zlib"] as const)("decompressLayer, gzip through %s", (decoder) => {
  const use = () => {
    if (decoder === "zlib") process.env.SUPERMACHINE_GUNZIP = "zlib";
  };

  it("gives the tar bytes and checks both digests (incl. a multi-member gzip)", async () => {
    use();
    // The decoder under test is the one used (igzip must be installed: scripts/setup-system.sh).
    const program = decoderProgram("gzip", false)?.[0];
    if (decoder === "igzip") expect(program).toMatch(/\/igzip$/);
    else expect(program).toBeUndefined();
    const tar = randomBytes(3 * 1024 * 1024 + 123);
    const gz = Buffer.concat([gzipSync(tar.subarray(0, 1000)), gzipSync(tar.subarray(1000))]);
    const out = await run(gz, sha(tar));
    expect(Buffer.isBuffer(out) && out.equals(tar)).toBe(true);
  });

  it("a blob that does not match its digest is OCI_DIGEST_MISMATCH, even when it does not decompress", async () => {
    use();
    const tar = randomBytes(256 * 1024);
    const gz = gzipSync(tar);
    const bad = Buffer.from(gz);
    bad[bad.length >> 1]! ^= 0xff;
    expect(await run(bad, sha(tar), { digest: sha(gz) })).toMatchObject({ code: "OCI_DIGEST_MISMATCH" });
  });

  it("output that does not match the diff ID is OCI_DIGEST_MISMATCH", async () => {
    use();
    const tar = randomBytes(64 * 1024);
    expect(await run(gzipSync(tar), sha(Buffer.from("other")))).toMatchObject({
      code: "OCI_DIGEST_MISMATCH",
      message: expect.stringMatching(/diff ID/),
    });
  });

  it("a truncated gzip (digest of the truncated bytes) is OCI_LAYER_INVALID", async () => {
    use();
    const tar = randomBytes(512 * 1024);
    const cut = gzipSync(tar).subarray(0, 200 * 1024);
    expect(await run(cut, sha(tar))).toMatchObject({ code: "OCI_LAYER_INVALID" });
  });

  it("a bomb stops at the unpack budget with OCI_LIMIT_EXCEEDED", async () => {
    use();
    const tar = Buffer.alloc(64 * 1024 * 1024);
    expect(await run(gzipSync(tar), sha(tar), { budget: 4 * 1024 * 1024 })).toMatchObject({
      code: "OCI_LIMIT_EXCEEDED",
    });
  });
});

/** igzip processes (children of this process) still running. */
function liveDecoders(): number {
  let count = 0;
  for (const pid of readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === process.pid && /igzip|zstd|prlimit/.test(comm)) count++;
    } catch {}
  }
  return count;
}

// Into a file, where the decoder writes the file itself (igzip / zstd under
// prlimit) or Node streams into it (zlib): same bytes, same errors, and a
// bomb never grows the file past what the budget allows.
describe.each(["igzip", "zlib"] as const)("decompressLayerToFile, gzip through %s", (decoder) => {
  const use = () => {
    if (decoder === "zlib") process.env.SUPERMACHINE_GUNZIP = "zlib";
  };
  const fileWith = (head: number) => {
    const path = join(work, `image-${n++}`);
    writeFileSync(path, Buffer.alloc(head, 7));
    return path;
  };

  it("appends the tar at the file's end, lists every byte and checks the diff ID", async () => {
    use();
    const tar = randomBytes(9 * 1024 * 1024 + 5);
    const gz = gzipSync(tar);
    const path = fileWith(4096);
    const seen: Buffer[] = [];
    const size = await decompressLayerToFile(blob(gz), sha(gz), sha(tar), path, 4096, {
      onData: (c) => seen.push(Buffer.from(c)),
    });
    expect(size).toBe(tar.length);
    const file = readFileSync(path);
    expect(file.length).toBe(4096 + tar.length);
    expect(file.subarray(4096).equals(tar)).toBe(true);
    expect(file.subarray(0, 4096).equals(Buffer.alloc(4096, 7))).toBe(true);
    expect(Buffer.concat(seen).equals(tar)).toBe(true);
  });

  it("errors: a corrupt blob is OCI_DIGEST_MISMATCH, a wrong tar too, a truncated gzip OCI_LAYER_INVALID", async () => {
    use();
    const tar = randomBytes(1024 * 1024);
    const gz = gzipSync(tar);
    const bad = Buffer.from(gz);
    bad[bad.length >> 1]! ^= 0xff;
    const err = (p: Promise<unknown>) =>
      p.then(
        () => undefined,
        (e: { code: string }) => e.code,
      );
    expect(await err(decompressLayerToFile(blob(bad), sha(gz), sha(tar), fileWith(0), 0))).toBe(
      "OCI_DIGEST_MISMATCH",
    );
    expect(await err(decompressLayerToFile(blob(gz), sha(gz), sha(Buffer.from("x")), fileWith(0), 0))).toBe(
      "OCI_DIGEST_MISMATCH",
    );
    const cut = gz.subarray(0, gz.length >> 1);
    expect(await err(decompressLayerToFile(blob(cut), sha(cut), sha(tar), fileWith(0), 0))).toBe(
      "OCI_LAYER_INVALID",
    );
  });

  it("a bomb stops at the budget and the file never grows past it", async () => {
    use();
    const tar = Buffer.alloc(256 * 1024 * 1024);
    const gz = gzipSync(tar);
    const path = fileWith(4096);
    const budget = new UnpackBudget(16 * 1024 * 1024);
    budget.add(1024 * 1024, "an earlier layer");
    await expect(
      decompressLayerToFile(blob(gz), sha(gz), sha(tar), path, 4096, { budget }),
    ).rejects.toMatchObject({ code: "OCI_LIMIT_EXCEEDED", limit: "maxUnpackedBytes" });
    expect(statSync(path).size).toBeLessThanOrEqual(4096 + 15 * 1024 * 1024);
    expect(liveDecoders()).toBe(0);
  });

  it("an abort stops the decoder and leaves no process behind", async () => {
    use();
    const tar = randomBytes(64 * 1024 * 1024);
    const gz = gzipSync(tar, { level: 1 });
    const ac = new AbortController();
    let bytes = 0;
    const p = decompressLayerToFile(blob(gz), sha(gz), sha(tar), fileWith(0), 0, {
      signal: ac.signal,
      onData: (c) => {
        bytes += c.length;
        if (bytes >= 2 * 1024 * 1024) ac.abort();
      },
    });
    await expect(p).rejects.toMatchObject({ code: "OCI_ABORTED" });
    expect(liveDecoders()).toBe(0);
  });
});
