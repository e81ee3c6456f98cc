// aarch64 guests through the public API on this x86_64 host (QEMU virt under
// TCG): a real multi-arch busybox index (linux/amd64 + linux/arm64/v8) pushed
// to a local registry, baked for each architecture, pooled, exec'd, spawned
// under a tty, files, exposeTcp, vm.snapshot and restore.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { computeFingerprint } from "@supermachine/snapshot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Image, inspectSnapshot, type Pool, type Vm } from "./index.js";
import { type CoreFixture, coreFixture, rejection } from "./test-support/fixture.js";
import { readAll, readStdoutUntil, retry } from "./test-support/guest-io.js";
import { layoutPath } from "./test-support/images.js";
import { qemuPids, waitFor } from "./test-support/procs.js";

let fx: CoreFixture;
let multiRef: string;
let arm: Image;
let pool: Pool;

/** The platform manifests of the busybox-multiarch layout's index, by `arch[/variant]`. */
function layoutManifests(): Record<string, string> {
  const dir = layoutPath("busybox-multiarch");
  const top = JSON.parse(readFileSync(join(dir, "index.json"), "utf8"));
  const idxDigest: string = top.manifests[0].digest;
  const idx = JSON.parse(readFileSync(join(dir, "blobs", "sha256", idxDigest.slice(7)), "utf8"));
  return Object.fromEntries(
    idx.manifests.map((m: { digest: string; platform: { architecture: string; variant?: string } }) => [
      `${m.platform.architecture}${m.platform.variant ? `/${m.platform.variant}` : ""}`,
      m.digest,
    ]),
  );
}

async function sh(vm: Vm, script: string): Promise<string> {
  const r = await vm.exec({ argv: ["sh", "-c", script] });
  expect(r.stderr.toString()).toBe("");
  expect(r.exitCode).toBe(0);
  return r.stdout.toString();
}

beforeAll(async () => {
  fx = await coreFixture("arch-aarch64");
  multiRef = await fx.registry.push(layoutPath("busybox-multiarch"), "busybox-multi", "1");
  arm = await Image.build({
    ref: multiRef,
    arch: "aarch64",
    snapshotsDir: fx.snapshotsDir,
    insecureRegistries: fx.insecureRegistries,
  });
  pool = await arm.pool({ min: 1, max: 2 });
}, 300_000);

afterAll(async () => {
  await pool?.shutdown();
  await fx?.close();
  expect(await waitFor(() => qemuPids().length === 0, 60_000)).toBe(true);
});

describe("Image.build with arch", () => {
  it("resolves the multi-arch index to each architecture's own image", async () => {
    const manifests = layoutManifests();
    expect(Object.keys(manifests).sort()).toEqual(["amd64", "arm64/v8"]);
    const x86 = await Image.build({
      ref: multiRef,
      arch: "x86_64",
      snapshotsDir: fx.snapshotsDir,
      insecureRegistries: fx.insecureRegistries,
    });
    expect(arm.metadata.image.manifestDigest).toBe(manifests["arm64/v8"]);
    expect(x86.metadata.image.manifestDigest).toBe(manifests.amd64);
    expect(arm.arch).toBe("aarch64");
    expect(x86.arch).toBe("x86_64");
    expect(arm.metadata.engine).toMatchObject({ arch: "aarch64", machine: "virt", accel: "tcg" });
    expect(x86.metadata.engine).toMatchObject({ arch: "x86_64", machine: "microvm" });
    expect(arm.metadata.fingerprint).not.toBe(x86.metadata.fingerprint);
    // each runs its own platform's binaries
    await using xp = await x86.pool({ min: 0, max: 1 });
    await using xvm = await xp.acquire();
    expect(await sh(xvm, "uname -m; cat /etc/arch")).toBe("x86_64\namd64\n");
    await using avm = await pool.acquire();
    expect(await sh(avm, "uname -m; cat /etc/arch")).toBe("aarch64\narm64/v8\n");
    const info = await inspectSnapshot(arm.snapshotPath);
    expect(info.arch).toBe("aarch64");
    const f = info.fingerprintInputs;
    expect(f.arch).toBe("aarch64");
    // the recorded inputs, arch included, are what the fingerprint was computed from
    const inputs = {
      manifestDigest: f.manifestDigest,
      memoryMib: f.memoryMib,
      vcpus: f.vcpus,
      guestPort: f.guestPort,
      listenerRequired: f.listenerRequired,
      extraFiles: f.extraFiles,
      warmupTag: f.warmupTag,
      kernelHash: f.kernelHash,
      agentHash: f.agentHash,
      accel: f.accel,
      cpuModel: f.cpuModel as string,
      qemuVersion: f.qemuVersion,
    };
    expect(computeFingerprint({ ...inputs, arch: f.arch })).toBe(info.fingerprint);
    expect(computeFingerprint(inputs)).not.toBe(info.fingerprint);
  });

  it("finds the aarch64 bake in the cache the second time", async () => {
    const again = await Image.build({
      ref: multiRef,
      arch: "aarch64",
      snapshotsDir: fx.snapshotsDir,
      insecureRegistries: fx.insecureRegistries,
    });
    expect(again.snapshotPath).toBe(arm.snapshotPath);
  });

  it("fails with OCI_NO_MATCHING_PLATFORM naming what an amd64-only image offers", async () => {
    const err = await rejection(() =>
      Image.build({
        ref: fx.busyboxRef,
        arch: "aarch64",
        snapshotsDir: fx.snapshotsDir,
        insecureRegistries: fx.insecureRegistries,
      }),
    );
    expect(err.code).toBe("OCI_NO_MATCHING_PLATFORM");
    expect(err.message).toMatch(/is linux\/amd64, wanted linux\/arm64\/v8/);
    expect(err.details?.offered).toEqual(["linux/amd64"]);
  });

  it("refuses an unknown arch with INVALID_OPTIONS", async () => {
    const err = await rejection(() => Image.build({ ref: multiRef, arch: "riscv64" as never }));
    expect(err.code).toBe("INVALID_OPTIONS");
    expect(err.message).toMatch(/arch must be one of x86_64, aarch64/);
  });
});

describe("aarch64 VMs from a pool", () => {
  it("acquire and exec", async () => {
    await using vm = await pool.acquire();
    const r = await vm.exec({ argv: ["sh", "-c", "uname -m; echo err >&2; exit 3"] });
    expect(r.stdout.toString()).toBe("aarch64\n");
    expect(r.stderr.toString()).toBe("err\n");
    expect(r.exitCode).toBe(3);
    expect(await sh(vm, "grep -c ^processor /proc/cpuinfo")).toBe("1\n");
  });

  it("spawn under a tty with the initial size, and resize changes it", async () => {
    await using vm = await pool.acquire();
    const tty = await vm.spawn({
      argv: ["sh", "-c", "stty size; read x; stty size"],
      tty: true,
      winsize: { cols: 100, rows: 30 },
    });
    expect(await readStdoutUntil(tty, /30 100\r?\n/)).toMatch(/^30 100\r?\n$/);
    await tty.resize(132, 43);
    await tty.writeStdin(Buffer.from("\n"));
    const rest = (await readAll(() => tty.readStdout())).text;
    expect(rest.trim().split(/\r?\n/).at(-1)).toBe("43 132");
    expect((await tty.wait()).exitCode).toBe(0);
  });

  it("writeFile and readFile", async () => {
    await using vm = await pool.acquire();
    const data = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) & 0xff));
    await vm.writeFile("/data/blob.bin", data);
    expect((await vm.readFile("/data/blob.bin")).equals(data)).toBe(true);
    expect(await sh(vm, "wc -c < /data/blob.bin")).toBe("300000\n");
  });

  it("exposeTcp reaches a server in the guest", async () => {
    await using vm = await pool.acquire();
    await sh(vm, "mkdir -p /w && echo arm-served > /w/index.html && httpd -p 8080 -h /w");
    const fwd = await vm.exposeTcp(0, 8080);
    expect(fwd.localAddr).toMatch(/^127\.0\.0\.1:\d+$/);
    const body = await retry(async () => {
      const res = await fetch(`http://${fwd.localAddr}/index.html`);
      return `${res.status} ${(await res.text()).trim()}`;
    });
    expect(body).toBe("200 arm-served");
  });

  it("vm.snapshot, then a pool of the new image starts in that state", async () => {
    const dest = join(fx.scratch("arm-snap"), "one");
    {
      await using vm = await pool.acquire();
      await sh(vm, "echo arm-gen-1 > /state1.txt");
      const snap = await vm.snapshot(dest);
      expect(snap.arch).toBe("aarch64");
      expect(await sh(vm, "cat /state1.txt")).toBe("arm-gen-1\n");
    }
    const loaded = await Image.fromSnapshot(dest);
    expect(loaded.arch).toBe("aarch64");
    await using p = await loaded.pool({ min: 1, max: 1 });
    await using vm = await p.acquire();
    expect(await sh(vm, "cat /state1.txt; uname -m")).toBe("arm-gen-1\naarch64\n");
  });
});

describe("an arm64 Debian image", () => {
  it("bakes from the local registry and runs Debian's own dynamically linked arm64 programs", async () => {
    const ref = await fx.registry.push(layoutPath("debian-arm64"), "debian-arm64", "bookworm", "bookworm");
    const deb = await Image.build({
      ref,
      arch: "aarch64",
      snapshotsDir: fx.snapshotsDir,
      insecureRegistries: fx.insecureRegistries,
    });
    expect(deb.arch).toBe("aarch64");
    await using p = await deb.pool({ min: 1, max: 1 });
    await using vm = await p.acquire();
    const out = await vm.exec({
      argv: [
        "bash",
        "-c",
        'echo "bash $BASH_VERSINFO"; dpkg --print-architecture; uname -m; cat /etc/debian_version; ' +
          "dpkg -s bash coreutils | sed -n 's/^Status: //p'; id -un; getent passwd nobody | cut -d: -f1",
      ],
    });
    expect(out.stderr.toString()).toBe("");
    expect(out.exitCode).toBe(0);
    const [bash, dpkgArch, machine, version, ...rest] = out.stdout.toString().trim().split("\n");
    expect(bash).toBe("bash 5");
    expect(dpkgArch).toBe("arm64");
    expect(machine).toBe("aarch64");
    expect(version).toMatch(/^12\./);
    // configured by the second stage (dpkg ran every maintainer script), users from base-passwd
    expect(rest).toEqual(["install ok installed", "install ok installed", "root", "nobody"]);
    expect((await vm.readFile("/etc/os-release")).toString()).toMatch(/VERSION_CODENAME=bookworm/);
  });
});
