import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LayerData, MemoryAllowance } from "./layer-store.js";

const work = mkdtempSync(join(tmpdir(), "oci-layer-store-test-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Writes `bytes` into a LayerData in chunks of `chunk` bytes. */
async function fill(d: LayerData, bytes: Buffer, chunk: number): Promise<void> {
  for (let i = 0; i < bytes.length; i += chunk) {
    if (!d.write(bytes.subarray(i, i + chunk))) await new Promise((r) => d.once("drain", r));
  }
  await new Promise<void>((resolve, reject) =>
    d.end((err?: Error | null) => (err ? reject(err) : resolve())),
  );
}

const bytes = Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 7 + (i >> 8)) & 0xff));

describe("LayerData", () => {
  it.each([
    ["all in memory", 1 << 20],
    ["spilled to a file part way", 40_000],
    ["all in a file", 0],
  ])("reads back any range (%s)", async (_name, allowance) => {
    const spill = join(work, `spill-${allowance}.tar`);
    const d = new LayerData(new MemoryAllowance(allowance), spill);
    await fill(d, bytes, 3000);
    expect(d.size).toBe(bytes.length);
    // The spill file holds exactly the bytes memory could not.
    const inFile = existsSync(spill) ? readFileSync(spill).length : 0;
    expect(inFile).toBe(allowance >= bytes.length ? 0 : bytes.length - Math.floor(allowance / 3000) * 3000);
    const buf = Buffer.alloc(bytes.length + 10);
    for (const [pos, len] of [
      [0, 10],
      [2999, 2],
      [39_000, 3000],
      [0, bytes.length],
      [99_990, 100],
      [bytes.length, 5],
    ] as const) {
      const n = d.readInto(buf, 5, len, pos);
      const want = bytes.subarray(pos, Math.min(bytes.length, pos + len));
      expect(n).toBe(want.length);
      expect(buf.subarray(5, 5 + n).equals(want)).toBe(true);
    }
    d.release();
  });

  it("shares one allowance between layers", async () => {
    const allowance = new MemoryAllowance(150_000);
    const a = new LayerData(allowance, join(work, "a.tar"));
    const b = new LayerData(allowance, join(work, "b.tar"));
    await fill(a, bytes, 10_000);
    await fill(b, bytes, 10_000);
    expect(existsSync(join(work, "a.tar"))).toBe(false);
    expect(readFileSync(join(work, "b.tar")).length).toBe(50_000);
    a.release();
    b.release();
  });
});
