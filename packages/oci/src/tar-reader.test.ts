import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { bufferSource } from "./byte-source.js";
import { readTarEntries } from "./tar-reader.js";

const work = mkdtempSync(join(tmpdir(), "oci-tar-test-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function entries(buf: Buffer) {
  const out = [];
  for await (const e of readTarEntries(bufferSource(buf))) out.push(e);
  return out;
}

describe("readTarEntries", () => {
  const long = `${"a".repeat(110)}/${"b".repeat(120)}`;
  const root = join(work, "root");
  mkdirSync(join(root, long.split("/")[0]!), { recursive: true });
  writeFileSync(join(root, long), "hello");
  symlinkSync(`/${"t".repeat(150)}`, join(root, "sl"));

  it.each(["gnu", "pax", "ustar", "oldgnu"])(
    "reads GNU tar's %s format incl. long names where it has them",
    async (format) => {
      let buf: Buffer;
      try {
        buf = execFileSync("tar", [`--format=${format}`, "--numeric-owner", "-C", root, "-cf", "-", "."], {
          stdio: ["ignore", "pipe", "ignore"],
        });
      } catch {
        // ustar cannot store the long names: GNU tar refuses, which is fine.
        expect(format).toBe("ustar");
        return;
      }
      const list = await entries(buf);
      const file = list.find((e) => e.path.endsWith("b".repeat(120)));
      expect(file).toMatchObject({ type: "file", size: 5 });
      expect(buf.subarray(file!.dataOffset, file!.dataOffset + 5).toString()).toBe("hello");
      expect(list.find((e) => e.path.endsWith("sl"))).toMatchObject({
        type: "symlink",
        linkname: `/${"t".repeat(150)}`,
      });
    },
  );

  it("reads xattrs from PAX records as raw bytes", async () => {
    const f = join(work, "capfile");
    writeFileSync(f, "x");
    execFileSync("setcap", ["cap_net_bind_service+ep", f]);
    const buf = execFileSync("tar", [
      "--xattrs",
      "--xattrs-include=*",
      "--format=pax",
      "-C",
      work,
      "-cf",
      "-",
      "capfile",
    ]);
    const [e] = await entries(buf);
    expect(e!.xattrs["security.capability"]?.toString("hex")).toBe(
      "0100000200040000000000000000000000000000",
    );
  });

  it("rejects corrupt headers and truncated data", async () => {
    const buf = execFileSync("tar", ["--format=gnu", "-C", root, "-cf", "-", "."]);
    const bad = Buffer.from(buf);
    bad[600] = bad[600]! ^ 0xff;
    await expect(entries(bad)).rejects.toMatchObject({ code: "OCI_LAYER_INVALID" });
    const f = join(work, "big");
    writeFileSync(f, Buffer.alloc(5000, 1));
    const t = execFileSync("tar", ["-C", work, "-cf", "-", "big"]);
    await expect(entries(t.subarray(0, 2048))).rejects.toMatchObject({ code: "OCI_LAYER_INVALID" });
  });
});

describe("readTarEntries on hostile headers", () => {
  /** A raw ustar header block (name, typeflag, size) with a valid checksum. */
  function header(name: string, typeflag: string, size: number): Buffer {
    const h = Buffer.alloc(512);
    h.write(name, 0, "utf8");
    h.write("0000644\0", 100, "latin1");
    h.write("0000000\0", 108, "latin1");
    h.write("0000000\0", 116, "latin1");
    h.write(`${size.toString(8).padStart(11, "0")}\0`, 124, "latin1");
    h.write("00000000000\0", 136, "latin1");
    h.write(typeflag, 156, "latin1");
    h.write("ustar\0" + "00", 257, "latin1");
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
    return h;
  }
  function paxData(records: Record<string, string>): Buffer {
    return Buffer.concat(
      Object.entries(records).map(([k, v]) => {
        const body = ` ${k}=${v}\n`;
        let len = Buffer.byteLength(body) + 1;
        while (String(len).length + Buffer.byteLength(body) !== len)
          len = String(len).length + Buffer.byteLength(body);
        return Buffer.from(`${len}${body}`);
      }),
    );
  }
  const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);
  /** A tar of one empty file "f", preceded by `globals` PAX global headers or one PAX header of `pax`. */
  async function tarWith(
    pax: Record<string, string>,
    type: "pax" | "global" = "pax",
    globals = 1,
  ): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (let i = 0; type === "global" && i < globals; i++) {
      const data = paxData(Object.fromEntries(Object.entries(pax).map(([k, v]) => [`${k}${i}`, v])));
      parts.push(header("pax_global_header", "g", data.length), pad(data));
    }
    if (type === "pax") {
      const data = paxData(pax);
      parts.push(header("PaxHeaders/f", "x", data.length), pad(data));
    }
    parts.push(header("f", "0", 0), Buffer.alloc(1024));
    return Buffer.concat(parts);
  }

  it("rejects ids that are not 32-bit unsigned integers", async () => {
    const bads: Record<string, string>[] = [
      { uid: "-1" },
      { gid: "4294967296" },
      { uid: "x" },
      { "SCHILY.devmajor": "1e20" },
    ];
    for (const bad of bads) {
      await expect(entries(await tarWith(bad))).rejects.toMatchObject({ code: "OCI_LAYER_INVALID" });
    }
    expect((await entries(await tarWith({ uid: "4294967295" })))[0]?.uid).toBe(4294967295);
  });

  it("caps extended headers and the accumulated global records", async () => {
    const big = { "SCHILY.xattr.user.big": "v".repeat(200 * 1024) };
    const read = async (buf: Buffer, max: number) => {
      const out = [];
      for await (const e of readTarEntries(bufferSource(buf), { maxExtendedHeaderBytes: max })) out.push(e);
      return out;
    };
    expect((await read(await tarWith(big), 1024 * 1024))[0]?.xattrs["user.big"]?.length).toBe(200 * 1024);
    await expect(read(await tarWith(big), 100 * 1024)).rejects.toThrow(/extended header too large/);
    // Global records accumulate: three of 40 KiB each pass one by one, not together.
    const g = { "SCHILY.xattr.user.g": "v".repeat(40 * 1024) };
    expect(Object.keys((await read(await tarWith(g, "global", 2), 100 * 1024))[0]!.xattrs)).toHaveLength(2);
    await expect(read(await tarWith(g, "global", 3), 100 * 1024)).rejects.toThrow(
      /global extended headers larger than/,
    );
  });
});
