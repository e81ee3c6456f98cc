// The root fs formats as the guest kernel reads them: the multi-layer test
// image (whiteouts, an opaque dir, hardlinks across layers, setuid, long
// names) built as squashfs (layer tars in place) and
// as ext4, each booted in a real VM. The image has no shell: a static busybox
// is written into the guest's tmpfs to look. The raw disk is read back in the
// guest too: it holds nothing of the files the upper layers deleted.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildRootfs, pullImage, type RootfsFormat } from "@supermachine/oci";
import { Machine, openAgentSession, resolveGuestAssets } from "@supermachine/vmm-native";
import { afterAll, describe, expect, it } from "vitest";
import { ensureTestImages } from "../../../test-support/test-images.js";

const work = mkdtempSync(join(tmpdir(), "rootfs-guest-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.each(["squashfs", "ext4"] as const)("a multi-layer image booted from %s", (format: RootfsFormat) => {
  it("shows the merged tree, with hardlinks, owners and modes, and no hidden bytes on its disk", async () => {
    const images = ensureTestImages();
    const cacheDir = join(work, format);
    const image = await pullImage(`oci:${images.multilayer}`, { cacheDir });
    const rootfs = await buildRootfs(image, { cacheDir, format });
    expect(rootfs.format).toBe(format);
    const assets = resolveGuestAssets();
    await using machine = await Machine.boot({
      kernel: assets.kernel,
      initrd: assets.initrd,
      memoryMib: 256,
      vcpus: 1,
      rootfs: rootfs.path,
    });
    const session = await openAgentSession(machine);
    try {
      await session.writeFile("/tmp/busybox", readFileSync("/bin/busybox"), { mode: 0o755, mkdirs: true });
      const sh = async (script: string) => {
        const r = await session.run({ argv: ["/tmp/busybox", "sh", "-c", script] });
        expect(r.stderr.toString()).toBe("");
        return r.stdout.toString();
      };
      const bb = "/tmp/busybox";
      // What the guest mounted, by the device's magic as init chose it.
      const magic = await sh(`${bb} head -c 4 /dev/vda`);
      expect(magic === "hsqs" ? "squashfs" : "ext4").toBe(format);
      // Whiteouts and the opaque dir hide the lower layers.
      expect((await sh(`${bb} ls /data /opq /etc/app`)).split(/\s+/).filter(Boolean)).toEqual([
        "/data:",
        "keep.txt",
        "/etc/app:",
        "a.conf",
        "c-link.conf",
        "c.conf",
        "/opq:",
        "new",
      ]);
      expect((await session.readFile("/etc/app/a.conf")).toString()).toBe("a=2\n");
      expect((await session.readFile("/lib/libfoo.so")).toString()).toBe("ELF?\n");
      // Hardlinks (across layers) share an inode and count their names; owners, setuid.
      // (The image's /dev nodes are under the guest's devtmpfs; the host-side tests read them.)
      const paths = ["/shared/original", "/shared/link-to-original", "/bin/su", "/home/www"];
      const rows = (await sh(`${bb} stat -c '%i %h %a %u %g' ${paths.join(" ")}`))
        .trim()
        .split("\n")
        .map((l) => l.split(" "));
      expect(rows[0]![0]).toBe(rows[1]![0]);
      expect(rows[0]!.slice(1)).toEqual(["2", "640", "1000", "1000"]);
      expect(rows[2]![2]).toBe("4755");
      expect(rows[3]!.slice(2, 4)).toEqual(["700", "1000"]);
      const longDir = `/deep/${"d".repeat(60)}/${"e".repeat(60)}`;
      expect((await sh(`${bb} ls ${longDir}`)).trim()).toBe(`${"f".repeat(90)}.txt`);
      expect((await session.readFile(`/gnu/${"g".repeat(120)}/${"h".repeat(110)}`)).toString()).toBe(
        "long name via GNU\n",
      );
      // The raw disk, read in the guest: the bytes of files the upper layers
      // deleted, replaced or hid under the opaque dir are nowhere on it. (Through
      // `strings`: grep alone reads a disk of few newlines as a few huge lines.)
      const found = await sh(
        `${bb} strings -n 3 /dev/vda | ${bb} grep -oE 'remove me|old1|old3|b=1|a=1|keep' | ${bb} sort -u`,
      );
      expect(found.trim().split("\n")).toEqual(["keep"]);
    } finally {
      await session.close();
    }
  });
});
