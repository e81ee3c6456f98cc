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
