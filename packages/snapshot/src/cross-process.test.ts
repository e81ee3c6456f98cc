import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { SnapshotStore } from "./store.js";
import { fakeBuild, fp, makeTestDirs, type TestDirs, writeRootfs } from "./test-support/fixtures.js";

const here = dirname(fileURLToPath(import.meta.url));
let bundleDir: string;
let childScript: string;

beforeAll(async () => {
  // The children run the real store code: bundle it (TypeScript) into one ESM file.
  bundleDir = await mkdtemp(join(tmpdir(), "sm-snapshot-child-"));
  childScript = join(bundleDir, "child-publisher.mjs");
  await build({
    entryPoints: [join(here, "test-support", "child-publisher.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile: childScript,
    alias: { "@supermachine/errors": resolve(here, "../../errors/src/index.ts") },
    logLevel: "silent",
  });
});
afterAll(async () => {
  await rm(bundleDir, { recursive: true, force: true });
});

let t: TestDirs;
let rootfsPath: string;
const children: ChildProcess[] = [];
beforeEach(async () => {
  t = await makeTestDirs();
  rootfsPath = await writeRootfs(t.rootfs, "r1");
});
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await t.cleanup();
});

interface Child {
  proc: ChildProcess;
  stderr: () => string;
  result: Promise<{ pid: number; built: boolean; dir: string }>;
}

function startChild(args: Record<string, unknown>): Child {
  const proc = spawn(process.execPath, [childScript, JSON.stringify(args)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(proc);
  let out = "";
  let err = "";
  proc.stdout?.on("data", (d) => {
    out += d;
  });
  proc.stderr?.on("data", (d) => {
    err += d;
  });
  const result = new Promise<{ pid: number; built: boolean; dir: string }>((res, rej) => {
    proc.on("exit", (code, signal) => {
      if (code === 0) res(JSON.parse(out.trim()));
      else rej(new Error(`child exited with ${code ?? signal}: ${err}`));
    });
  });
  result.catch(() => {});
  return { proc, stderr: () => err, result };
}

/** Polls `cond` until it holds; fails after 15 s (under the test timeout). */
async function until(cond: () => boolean | Promise<boolean>): Promise<void> {
  for (const deadline = Date.now() + 15_000; !(await cond()); await new Promise((r) => setTimeout(r, 20))) {
    if (Date.now() > deadline) throw new Error(`condition not met within 15 s: ${cond}`);
  }
}

async function counted(file: string): Promise<string[]> {
  if (!existsSync(file)) return [];
  return (await readFile(file, "utf8")).split("\n").filter(Boolean);
}

const REF = "127.0.0.1:5000/library/busybox:latest";

describe("cross-process publish", () => {
  it("three processes publishing the same snapshot at once build it once, the others waiting", async () => {
    const counterFile = join(t.root, "builds.txt");
    const startedFile = join(t.root, "started.txt");
    const release = join(t.root, "release");
    const args = {
      dir: t.snapshots,
      ref: REF,
      fingerprint: fp("3c"),
      rootfsPath,
      counterFile,
      startedFile,
      holdUntil: release,
    };
    const kids = [startChild(args), startChild(args), startChild(args)];
    // Barrier: one builds (and holds the lock) while the two others are seen waiting on it.
    // Processes run one after another, or without the lock, never get here.
    await until(
      () => existsSync(startedFile) && kids.filter((k) => k.stderr().includes("waiting")).length === 2,
    );
    expect(await counted(counterFile)).toHaveLength(1);
    writeFileSync(release, "");
    const results = await Promise.all(kids.map((k) => k.result));
    expect(await counted(counterFile)).toHaveLength(1);
    expect(results.filter((r) => r.built)).toHaveLength(1);
    expect(new Set(results.map((r) => r.dir)).size).toBe(1);
    expect((await readdir(t.snapshots)).filter((e) => !e.startsWith(".lock."))).toEqual([
      `127.0.0.1_5000_library_busybox_latest-${"3c".repeat(8)}`,
    ]);
    expect(
      existsSync(join(t.snapshots, `.lock.127.0.0.1_5000_library_busybox_latest-${"3c".repeat(8)}`)),
    ).toBe(false);
  });

  it("a publisher SIGKILLed while holding the lock is taken over by the next one", async () => {
    const counterFile = join(t.root, "builds.txt");
    const startedFile = join(t.root, "started.txt");
    const args = { dir: t.snapshots, name: "web", ref: REF, fingerprint: fp("4d"), rootfsPath, counterFile };
    const holder = startChild({ ...args, startedFile, hang: true });
    await until(() => existsSync(startedFile));
    const deadTmp = await readFile(startedFile, "utf8");
    expect(existsSync(deadTmp)).toBe(true);
    expect(existsSync(join(t.snapshots, ".lock.web"))).toBe(true);

    holder.proc.kill("SIGKILL");
    await holder.result.catch(() => {});

    const store = new SnapshotStore({ dir: t.snapshots });
    const published = await store.publish(
      { name: "web", ref: REF, fingerprint: fp("4d") },
      fakeBuild(rootfsPath),
    );
    expect(published.built).toBe(true);
    expect(await counted(counterFile)).toEqual([String(holder.proc.pid)]);
    // The dead publisher's build directory was cleaned up; nothing but the snapshot remains.
    expect(existsSync(deadTmp)).toBe(false);
    expect(await readdir(t.snapshots)).toEqual(["web"]);
  });

  it("a publisher waiting on the lock takes over when the holder is SIGKILLed", async () => {
    const counterFile = join(t.root, "builds.txt");
    const startedFile = join(t.root, "started.txt");
    const args = { dir: t.snapshots, name: "svc", ref: REF, fingerprint: fp("5e"), rootfsPath, counterFile };
    const holder = startChild({ ...args, startedFile, hang: true });
    await until(() => existsSync(startedFile));
    const waiter = startChild(args);
    await until(() => waiter.stderr().includes("waiting"));
    expect(await counted(counterFile)).toHaveLength(1);

    holder.proc.kill("SIGKILL");
    const r = await waiter.result;
    expect(r.built).toBe(true);
    expect(r.dir).toBe(join(t.snapshots, "svc"));
    expect(await counted(counterFile)).toEqual([String(holder.proc.pid), String(r.pid)]);
    expect(await readdir(t.snapshots)).toEqual(["svc"]);
    await expect(new SnapshotStore({ dir: t.snapshots }).load("svc")).resolves.toBeDefined();
  });
});
