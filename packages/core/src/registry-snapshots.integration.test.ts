// Bake once per fleet: two hosts simulated on this machine (separate HOME,
// cache and snapshots directory; the same registry on 127.0.0.1 and the same
// guest build). Host A bakes the Debian test image and publishes the
// snapshot; host B builds the same image and restores the pulled artifact
// without booting, with the same exec results. A tampered artifact fails
// with a digest error and leaves nothing; another input re-bakes.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  cpSync,
  createReadStream,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { RegistryClient } from "@supermachine/oci";
import { findSnapshotArtifact, pushSnapshot, snapshotTag } from "@supermachine/snapshot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRegistry as startStorageRegistry, type TestRegistry } from "../../../test-support/registry.js";
import { type BuildOptions, type BuildProgress, Image } from "./index.js";
import { rejection, snapshotDirs } from "./test-support/fixture.js";
import { type SimulatedHost, simulatedHost } from "./test-support/hosts.js";
import { layoutPath } from "./test-support/images.js";
import { qemuPids, watchQemuStarts } from "./test-support/procs.js";

const bin = fileURLToPath(new URL("../dist/bin.js", import.meta.url));
const PROBE = ["sh", "-c", "cat /etc/debian_version; echo $((6*7)); ls /usr/bin | wc -l"];
let reg: TestRegistry;
let root: string;
let ref: string;
let hostA: SimulatedHost;
let hostB: SimulatedHost;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "sm-fleet-"));
  process.env.SUPERMACHINE_RUN_DIR = join(root, "run");
  reg = await startStorageRegistry();
  ref = await reg.pushLayout(layoutPath("debian"), "debian:12", { srcTag: "bookworm" });
  hostA = simulatedHost(root, "host-a");
  hostB = simulatedHost(root, "host-b");
}, 600_000);
afterAll(async () => {
  await reg?.close();
  rmSync(root, { recursive: true, force: true });
  expect(qemuPids()).toEqual([]);
});

async function build(host: SimulatedHost, extra: Partial<BuildOptions> = {}) {
  const events: BuildProgress[] = [];
  const { result: image, started } = await watchQemuStarts(() =>
    host.run(() =>
      Image.build({
        ref,
        insecureRegistries: [reg.host],
        onProgress: (p) => events.push(p),
        ...extra,
      }),
    ),
  );
  return { image, events, phases: new Set(events.map((e) => e.phase)), qemuStarts: started.length };
}

async function probe(host: SimulatedHost, image: Image): Promise<string> {
  return host.run(async () => {
    await using pool = await image.pool({ min: 0, max: 1 });
    await using vm = await pool.acquire();
    const out = await vm.exec({ argv: PROBE });
    expect(out.exitCode).toBe(0);
    return out.stdout.toString();
  });
}

async function sha256(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest("hex");
}

function client(): RegistryClient {
  return new RegistryClient({ registry: reg.host, repository: "debian" });
}

describe("bake once per fleet", () => {
  let baked: Image;
  let expected: string;

  it("host A bakes the Debian image and publishes the snapshot", async () => {
    const a = await build(hostA, { registrySnapshots: "pull-push" });
    baked = a.image;
    expect(a.events.find((e) => e.phase === "registry")).toMatchObject({ action: "lookup" });
    expect(a.events.some((e) => e.phase === "registry" && e.action === "miss")).toBe(true);
    expect(a.phases.has("boot")).toBe(true);
    const pushed = a.events.find((e) => e.phase === "pushed");
    expect(pushed).toMatchObject({ ref: `${reg.host}/debian:${snapshotTag(baked.metadata.fingerprint)}` });
    expect(a.events.some((e) => e.phase === "registry" && e.action === "push-failed")).toBe(false);
    expected = await probe(hostA, baked);
    expect(expected).toMatch(/^12\.\d+\n42\n\d+\n$/);
  }, 600_000);

  it("host B builds the same image and restores the pulled snapshot without booting", async () => {
    const b = await build(hostB, { registrySnapshots: "pull" });
    expect(b.phases.has("restored")).toBe(true);
    expect(b.phases.has("boot")).toBe(false);
    expect(b.phases.has("snapshot")).toBe(false);
    expect(b.qemuStarts).toBe(0);
    expect(b.image.snapshotPath.startsWith(hostB.snapshotsDir)).toBe(true);
    expect(b.image.metadata.fingerprint).toBe(baked.metadata.fingerprint);
    expect(b.image.rootfsPath.startsWith(hostB.cache)).toBe(true);
    expect(await sha256(join(b.image.snapshotPath, "memory.bin"))).toBe(
      await sha256(join(baked.snapshotPath, "memory.bin")),
    );
    expect(await probe(hostB, b.image)).toBe(expected);
    // and next time it is an ordinary cache hit
    const again = await build(hostB, { registrySnapshots: "pull" });
    expect(again.phases.has("cached")).toBe(true);
    expect(again.phases.has("registry")).toBe(false);
  }, 600_000);

  it("a tampered artifact fails with a digest error and nothing is kept", async () => {
    const hostC = simulatedHost(root, "host-c");
    await using registry = client();
    const artifact = await findSnapshotArtifact(registry, baked.metadata.fingerprint);
    const blob = reg.blobPath(artifact!.manifest.pages.digest);
    const original = readFileSync(blob);
    const bad = Buffer.from(original);
    bad[bad.length >> 1] = (bad[bad.length >> 1] ?? 0) ^ 0x01;
    writeFileSync(blob, bad);
    try {
      const err = await rejection(() =>
        hostC.run(() => Image.build({ ref, insecureRegistries: [reg.host], registrySnapshots: "pull" })),
      );
      expect(err.code).toBe("SNAPSHOT_DIGEST_MISMATCH");
      expect(snapshotDirs(hostC.snapshotsDir)).toEqual([]);
    } finally {
      writeFileSync(blob, original);
    }
    // an artifact published under another fingerprint's tag is refused too
    const other = await hostC.run(() =>
      rejection(async () => {
        const manifest = await registry.getManifest(snapshotTag(baked.metadata.fingerprint));
        await using push = new RegistryClient({ registry: reg.host, repository: "debian", push: true });
        const wrongFp = "0".repeat(64);
        await push.putManifest(snapshotTag(wrongFp), manifest.bytes, manifest.contentType);
        return findSnapshotArtifact(registry, wrongFp);
      }),
    );
    expect(other.code).toBe("SNAPSHOT_ARTIFACT_INVALID");
  }, 600_000);

  it("an artifact whose machine.json names host paths is refused before anything is kept", async () => {
    // a copy of A's snapshot whose engine record points QEMU at host files, its metadata made consistent
    const evil = join(root, "evil-snapshot");
    cpSync(baked.snapshotPath, evil, { recursive: true });
    const machine = JSON.parse(readFileSync(join(evil, "machine.json"), "utf8"));
    machine.guest = { kernel: "/etc/passwd", initrd: "/etc/hostname" };
    const machineBytes = Buffer.from(JSON.stringify(machine));
    writeFileSync(join(evil, "machine.json"), machineBytes);
    const metadata = JSON.parse(readFileSync(join(evil, "metadata.json"), "utf8"));
    metadata.files["machine.json"] = {
      size: machineBytes.length,
      sha256: createHash("sha256").update(machineBytes).digest("hex"),
    };
    writeFileSync(join(evil, "metadata.json"), JSON.stringify(metadata));
    await using push = new RegistryClient({ registry: reg.host, repository: "evil/snapshots", push: true });
    await pushSnapshot(
      {
        dir: evil,
        metadata,
        stateFile: join(evil, "restore.snap"),
        memoryFile: join(evil, "memory.bin"),
        rootfsPath: baked.rootfsPath,
      },
      push,
    );
    const hostF = simulatedHost(root, "host-f");
    const err = await hostF.run(() =>
      rejection(() =>
        Image.build({
          ref,
          insecureRegistries: [reg.host],
          registrySnapshots: "pull",
          snapshotRepository: `${reg.host}/evil/snapshots`,
        }),
      ),
    );
    expect(err.code).toBe("SNAPSHOT_INVALID");
    expect(err.message).toMatch(/names its guest or root fs by host path/);
    expect(snapshotDirs(hostF.snapshotsDir)).toEqual([]);
  }, 300_000);

  it("a host whose root fs builds to other bytes bakes instead of restoring over it", async () => {
    // host G's root fs store already holds an image of the same layers whose bytes differ (as another
    // e2fsprogs might make them): the published memory must not run over it
    const hostG = simulatedHost(root, "host-g");
    const store = join(hostG.cache, "oci", "rootfs");
    mkdirSync(store, { recursive: true });
    const name = baked.rootfsPath.split("/").at(-1)!;
    const bytes = readFileSync(baked.rootfsPath);
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0xff; // the last block: free space
    writeFileSync(join(store, name), bytes);
    const g = await build(hostG, { registrySnapshots: "pull" });
    expect(g.events.some((e) => e.phase === "registry" && e.action === "unusable")).toBe(true);
    expect(g.phases.has("restored")).toBe(false);
    expect(g.phases.has("boot")).toBe(true);
    expect(await probe(hostG, g.image)).toBe(expected);
  }, 600_000);

  it("an input that differs (memory size) re-bakes instead of restoring a mismatch", async () => {
    const b = await build(hostB, { registrySnapshots: "pull", memoryMib: 320 });
    expect(b.events.some((e) => e.phase === "registry" && e.action === "miss")).toBe(true);
    expect(b.phases.has("restored")).toBe(false);
    expect(b.phases.has("boot")).toBe(true);
    expect(b.image.memoryMib).toBe(320);
    expect(b.image.metadata.fingerprint).not.toBe(baked.metadata.fingerprint);
    expect(await probe(hostB, b.image)).toBe(expected);
  }, 600_000);

  it("`supermachine push` publishes a snapshot from the command line", async () => {
    const r = await hostA.run(async () =>
      spawnSync(
        process.execPath,
        [
          bin,
          "push",
          baked.snapshotPath,
          "--to",
          `${reg.host}/fleet/snapshots`,
          "--insecure-registry",
          reg.host,
        ],
        { encoding: "utf8", env: process.env },
      ),
    );
    expect(r.stderr).toMatch(/pushed .* for a snapshot of .* on disk/);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(`${reg.host}/fleet/snapshots:${snapshotTag(baked.metadata.fingerprint)}`);
    await using registry = new RegistryClient({ registry: reg.host, repository: "fleet/snapshots" });
    expect((await findSnapshotArtifact(registry, baked.metadata.fingerprint))?.metadata.fingerprint).toBe(
      baked.metadata.fingerprint,
    );
  }, 300_000);

  it("`supermachine build --registry-snapshots pull` restores on a fresh host without booting", async () => {
    const hostE = simulatedHost(root, "host-e");
    const r = await hostE.run(async () =>
      spawnSync(
        process.execPath,
        [bin, "build", ref, "--registry-snapshots", "pull", "--insecure-registry", reg.host, "--json"],
        { encoding: "utf8", env: process.env },
      ),
    );
    expect(r.status, r.stderr).toBe(0);
    const events = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { event: string; snapshotPath?: string });
    const names = events.map((e) => e.event);
    expect(names).toContain("restored");
    expect(names).not.toContain("boot");
    expect(events.at(-1)).toMatchObject({ event: "done", cached: false });
    expect(events.at(-1)?.snapshotPath?.startsWith(hostE.snapshotsDir)).toBe(true);
  }, 300_000);
});
