// Image.build against a real registry on 127.0.0.1 and real QEMU guests:
// cold bake and cache hit, the bake triggers (pre-exec, listener, warmup),
// guestPort, extraFiles, concurrent bakes from two processes, corrupted
// snapshots, and the typed failures (which must leave no snapshot dir and no
// QEMU behind).
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import {
  chmodSync,
  closeSync,
  existsSync,
  openSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { Machine } from "@supermachine/vmm-native";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BuildOptions, type BuildProgress, Image, type WarmupVm } from "./index.js";
import { type CoreFixture, coreFixture, lockFiles, rejection, snapshotDirs } from "./test-support/fixture.js";
import { httpOverUnix } from "./test-support/guest-io.js";
import { layoutPath } from "./test-support/images.js";
import { qemuPids, waitFor, watchQemuStarts, withDeadline } from "./test-support/procs.js";
import { startRegistry } from "./test-support/registry.js";

let fx: CoreFixture;

beforeAll(async () => {
  fx = await coreFixture("bake");
});

afterAll(async () => {
  await fx?.close();
});

/** Builds with progress recorded and the QEMU processes started meanwhile counted. */
async function build(options: BuildOptions) {
  const phases: BuildProgress["phase"][] = [];
  const t0 = performance.now();
  const { result: image, started } = await watchQemuStarts(() =>
    Image.build({
      insecureRegistries: fx.insecureRegistries,
      snapshotsDir: fx.snapshotsDir,
      ...options,
      onProgress: (p) => {
        if (phases.at(-1) !== p.phase) phases.push(p.phase);
      },
    }),
  );
  return { image, phases, started, ms: Math.round(performance.now() - t0) };
}

/**
 * A cache hit: no root fs, boot or snapshot phase and no QEMU started. (The
 * "pull" phase may appear: it reports layers found in the local blob cache.)
 */
function expectHit(r: { phases: string[]; started: string[] }): void {
  expect(r.phases.filter((p) => p !== "pull")).toEqual(["cached"]);
  expect(r.started).toEqual([]);
}

async function firstLine(image: Image, argv: string[]): Promise<string> {
  await using pool = await image.pool({ min: 1, max: 1 });
  await using vm = await pool.acquire();
  const r = await vm.exec({ argv });
  expect(r.stderr.toString()).toBe("");
  expect(r.exitCode).toBe(0);
  return r.stdout.toString().trim();
}

describe("QEMU start detection (what the cache-hit checks rely on)", () => {
  it("sees a QEMU that exits at once", async () => {
    const { result, started } = await watchQemuStarts(() =>
      Machine.boot(
        { kernel: "/nonexistent/bzImage", initrd: "/nonexistent/initrd", memoryMib: 64, vcpus: 1 },
        { accel: "tcg" }, // no accelerator probe with a kernel that does not exist
      ).then(
        () => "booted",
        (e: Error & { code?: string }) => e.code,
      ),
    );
    expect(result).not.toBe("booted"); // QEMU cannot load that kernel and exits at once
    expect(started).toHaveLength(1);
    expect(qemuPids()).toEqual([]);
  });
});

describe("Image.build: cold bake and cache hit", () => {
  it("bakes busybox once, then hits the cache without pulling or booting", async () => {
    // A registry of its own, stopped before the hit: a hit that pulled would fail.
    const registry = await startRegistry();
    const ref = await registry.push(layoutPath("busybox") as string, "busybox", "hit");
    const cold = await build({ ref, insecureRegistries: [registry.host] });
    expect(cold.phases).toContain("boot");
    expect(cold.phases).toContain("snapshot");
    expect(cold.started.length).toBeGreaterThanOrEqual(1);
    expect(qemuPids()).toEqual([]);
    expect(cold.image.memoryMib).toBe(256);
    expect(cold.image.vcpus).toBe(1);
    expect(existsSync(join(cold.image.snapshotPath, "restore.snap"))).toBe(true);

    await registry.close();
    const hit = await build({ ref, insecureRegistries: [registry.host] });
    expectHit(hit);
    expect(hit.image.snapshotPath).toBe(cold.image.snapshotPath);
    console.log(`busybox: cold bake ${cold.ms} ms, cache hit ${hit.ms} ms`);

    const fromDir = await Image.fromSnapshot(cold.image.snapshotPath);
    const fromFile = await Image.fromSnapshot(join(cold.image.snapshotPath, "restore.snap"));
    expect(fromDir.snapshotPath).toBe(cold.image.snapshotPath);
    expect(fromFile.snapshotPath).toBe(cold.image.snapshotPath);
    expect(await firstLine(fromFile, ["sh", "-c", "echo $((6*7))"])).toBe("42");
  });

  it("bakes the Debian image once, then hits the cache", async () => {
    const debian = layoutPath("debian");
    const ref = `oci:${debian}:bookworm`;
    const cold = await build({ ref });
    expect(cold.phases).toContain("boot");
    const hit = await build({ ref });
    expectHit(hit);
    expect(hit.image.snapshotPath).toBe(cold.image.snapshotPath);
    console.log(`debian: cold bake ${cold.ms} ms, cache hit ${hit.ms} ms`);
    expect(await firstLine(hit.image, ["cat", "/etc/debian_version"])).toMatch(/^1\d/);
  });

  it("re-bakes when an input changes (cmd, env, memoryMib)", async () => {
    const base = await build({ ref: fx.busyboxRef });
    expectHit(await build({ ref: fx.busyboxRef }));
    const paths = new Set([base.image.snapshotPath]);
    for (const change of [{ cmd: ["sleep", "1000"] }, { env: { A: "1" } }, { memoryMib: 192 }] as const) {
      const r = await build({ ref: fx.busyboxRef, ...change });
      expect(r.phases, JSON.stringify(change)).toContain("boot");
      paths.add(r.image.snapshotPath);
    }
    expect(paths.size).toBe(4);
    const small = await build({ ref: fx.busyboxRef, memoryMib: 192 });
    expectHit(small);
    expect(small.image.memoryMib).toBe(192);
  });
});

describe("Image.build: bake triggers", () => {
  it("listenerRequired: restored VMs answer HTTP at once", async () => {
    const { image, phases } = await build({
      ref: fx.busyboxRef,
      cmd: ["sh", "-c", "mkdir -p /www && echo listener-ok > /www/index.html && exec httpd -f -p 80 -h /www"],
      listenerRequired: true,
    });
    expect(phases).toContain("boot");
    await using pool = await image.pool({ min: 1, max: 1 });
    await using vm = await pool.acquire();
    await using fwd = await vm.exposeTcp(0, 80);
    // No retry loop: the listener was bound before the snapshot was taken.
    const res = await fetch(`http://${fwd.localAddr}/index.html`);
    expect(res.status).toBe(200);
    expect((await res.text()).trim()).toBe("listener-ok");
  });

  it("warmup: every restored VM sees what the callback wrote; the warmup VM expires", async () => {
    let kept: WarmupVm | undefined;
    const calls: string[] = [];
    const opts: BuildOptions = {
      ref: fx.busyboxRef,
      warmupTag: "v1",
      warmup: async (vm) => {
        kept = vm;
        calls.push("warmup");
        const r = await vm.exec({ argv: ["sh", "-c", "echo warmed-$((20+22)) > /warm.txt"] });
        expect(r.exitCode).toBe(0);
      },
    };
    const first = await build(opts);
    expect(first.phases).toContain("boot");
    expect(calls).toEqual(["warmup"]);
    const expired = await rejection(() => (kept as WarmupVm).exec({ argv: ["true"] }));
    expect(expired.code).toBe("WARMUP_VM_EXPIRED");

    await using pool = await first.image.pool({ min: 2, max: 2 });
    const vms = await Promise.all([pool.acquire(), pool.acquire()]);
    for (const vm of vms) expect((await vm.readFile("/warm.txt")).toString()).toBe("warmed-42\n");
    await Promise.all(vms.map((vm) => vm.release()));
    await using again = await pool.acquire();
    expect((await again.readFile("/warm.txt")).toString()).toBe("warmed-42\n");

    const hit = await build(opts);
    expectHit(hit);
    expect(calls).toEqual(["warmup"]);
    const retagged = await build({ ...opts, warmupTag: "v2" });
    expect(retagged.phases).toContain("boot");
    expect(calls).toEqual(["warmup", "warmup"]);
    expect(retagged.image.snapshotPath).not.toBe(first.image.snapshotPath);
  });

  it("guestPort: the listener trigger and vsockPath use the port given, not 80", async () => {
    // The workload listens on 8080 only: a bake watching port 80 would time out.
    const { image, phases } = await build({
      ref: fx.busyboxRef,
      cmd: ["sh", "-c", "mkdir -p /w && echo port-8080 > /w/index.html && exec httpd -f -p 8080 -h /w"],
      guestPort: 8080,
      listenerRequired: true,
      listenerTimeoutMs: 60_000,
    });
    expect(phases).toContain("boot");
    expect(image.metadata.guestPort).toBe(8080);
    await using pool = await image.pool({ min: 1, max: 1 });
    await using vm = await pool.acquire();
    // No retry: the listener was up when the snapshot was taken.
    const res = await httpOverUnix(vm.vsockPath, "/index.html");
    expect(res).toMatch(/^HTTP\/1\.[01] 200/);
    expect(res).toContain("port-8080");
    // Nothing listens on 80 in this guest, so vsockPath reaching 80 could not have answered.
    expect(
      (await vm.exec({ argv: ["sh", "-c", "netstat -ltn | grep -c ':80 ' || true"] })).stdout.toString(),
    ).toBe("0\n");
  });

  it("extraFiles: baked with content and mode; changing the host file re-bakes", async () => {
    const host = join(fx.scratch("extra"), "hello.sh");
    writeFileSync(host, "#!/bin/sh\necho extra-v1\n");
    chmodSync(host, 0o750);
    const opts: BuildOptions = {
      ref: fx.busyboxRef,
      extraFiles: [{ hostPath: host, guestPath: "/opt/extra/hello.sh" }],
    };
    const v1 = await build(opts);
    expect(v1.phases).toContain("boot");
    expect(await firstLine(v1.image, ["/opt/extra/hello.sh"])).toBe("extra-v1");
    expect(await firstLine(v1.image, ["stat", "-c", "%a", "/opt/extra/hello.sh"])).toBe("750");

    expectHit(await build(opts));

    writeFileSync(host, "#!/bin/sh\necho extra-v2\n");
    const v2 = await build(opts);
    expect(v2.phases).toContain("boot");
    expect(await firstLine(v2.image, ["/opt/extra/hello.sh"])).toBe("extra-v2");

    chmodSync(host, 0o755);
    const v3 = await build(opts);
    expect(v3.phases).toContain("boot");
    expect(await firstLine(v3.image, ["stat", "-c", "%a", "/opt/extra/hello.sh"])).toBe("755");
  });
});

describe("Image.build: two processes, one bake", () => {
  /** A Node process running `Image.build` from dist/, reporting JSON lines; see `script`. */
  interface Builder {
    proc: ChildProcess;
    events: Array<{ event: string; phase?: string; path?: string }>;
    stderr: () => string;
    done: Promise<{ path: string }>;
  }

  function startBuilder(script: string): Builder {
    const proc = spawn(process.execPath, ["--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const events: Builder["events"] = [];
    let out = "";
    let err = "";
    proc.stdout?.on("data", (d) => {
      out += d;
      for (let nl = out.indexOf("\n"); nl >= 0; nl = out.indexOf("\n")) {
        events.push(JSON.parse(out.slice(0, nl)));
        out = out.slice(nl + 1);
      }
    });
    proc.stderr?.on("data", (d) => {
      err += d;
    });
    const done = new Promise<{ path: string }>((resolve, reject) =>
      proc.once("exit", (code) => {
        const last = events.at(-1);
        if (code === 0 && last?.event === "done") resolve({ path: last.path as string });
        else reject(new Error(`builder exited ${code}: ${err}`));
      }),
    );
    done.catch(() => {});
    return { proc, events, stderr: () => err, done };
  }

  it("two Node processes building the same ref into the same dir bake it once, the second waiting", async () => {
    const dist = new URL("../dist/index.js", import.meta.url).pathname;
    const token = randomUUID();
    const release = join(fx.scratch("two-procs"), "release");
    // The bake holds its lock through the warmup callback, which waits for the
    // test's go: the test only gives it once it has seen the other process
    // waiting on that lock. Run one after the other (or without the lock) and
    // nobody ever waits, so the test fails at the barrier.
    const script = `
      import { existsSync, writeSync } from "node:fs";
      import { Image } from ${JSON.stringify(dist)};
      const say = (o) => writeSync(1, JSON.stringify(o) + "\\n");
      const image = await Image.build({
        ref: ${JSON.stringify(fx.busyboxRef)},
        insecureRegistries: ${JSON.stringify(fx.insecureRegistries)},
        snapshotsDir: ${JSON.stringify(fx.snapshotsDir)},
        env: { TOKEN: ${JSON.stringify(token)} },
        onProgress: (p) => say({ event: "phase", phase: p.phase }),
        warmup: async (vm) => {
          say({ event: "baking" });
          for (const deadline = Date.now() + 300_000; !existsSync(${JSON.stringify(release)}); ) {
            if (Date.now() > deadline) throw new Error("no release from the test");
            await new Promise((r) => setTimeout(r, 20));
          }
          const r = await vm.exec({ argv: ["sh", "-c", "echo one-bake > /baked-by"] });
          if (r.exitCode !== 0) throw new Error("warmup exec failed");
        },
      });
      say({ event: "done", path: image.snapshotPath });
    `;
    const builders = [startBuilder(script), startBuilder(script)];
    try {
      const has = (b: Builder, event: string, phase?: string) =>
        b.events.some((e) => e.event === event && (phase === undefined || e.phase === phase));
      const overlap = () =>
        (has(builders[0]!, "baking") && has(builders[1]!, "phase", "waiting")) ||
        (has(builders[1]!, "baking") && has(builders[0]!, "phase", "waiting"));
      const exitedEarly = Promise.race(builders.map((b) => b.done)).then(
        () => "a builder finished before the barrier",
        (e: Error) => e.message,
      );
      const barrier = await Promise.race([
        waitFor(overlap, 280_000).then((ok) => (ok ? "ok" : "no overlap")),
        exitedEarly,
      ]);
      expect(barrier, JSON.stringify(builders.map((b) => b.events))).toBe("ok");
      writeFileSync(release, "go");
      const [a, b] = (await withDeadline(Promise.all(builders.map((x) => x.done)), 120_000, "builders")) as [
        { path: string },
        { path: string },
      ];
      expect(a.path).toBe(b.path);
      const bakers = builders.filter((x) => has(x, "baking"));
      expect(bakers).toHaveLength(1);
      expect(builders.filter((x) => has(x, "phase", "boot"))).toHaveLength(1);
      const waiter = builders.find((x) => !has(x, "baking")) as Builder;
      expect(has(waiter, "phase", "waiting")).toBe(true);
      expect(has(waiter, "phase", "boot")).toBe(false);
      expect(snapshotDirs(fx.snapshotsDir).filter((n) => n.startsWith("."))).toEqual([]);
      expect(await firstLine(await Image.fromSnapshot(a.path), ["cat", "/baked-by"])).toBe("one-bake");
    } finally {
      for (const b of builders)
        if (b.proc.exitCode === null && b.proc.signalCode === null) b.proc.kill("SIGKILL");
    }
  });
});

describe("Image.build: corrupted snapshots", () => {
  it("a truncated memory.bin is a typed error for fromSnapshot and is re-baked by build", async () => {
    const opts: BuildOptions = { ref: fx.busyboxRef, env: { CORRUPT: "memory" } };
    const first = await build(opts);
    const mem = join(first.image.snapshotPath, "memory.bin");
    truncateSync(mem, Math.floor(statSync(mem).size / 2));
    const err = await rejection(() => Image.fromSnapshot(first.image.snapshotPath));
    expect(err.code).toBe("SNAPSHOT_CORRUPT");
    const again = await build(opts);
    expect(again.phases).toContain("boot");
    expect((await Image.fromSnapshot(again.image.snapshotPath)).snapshotPath).toBe(again.image.snapshotPath);
    expect(await firstLine(again.image, ["echo", "rebaked"])).toBe("rebaked");
  });

  it("a garbled restore.snap is a typed error for fromSnapshot and is re-baked by build", async () => {
    const opts: BuildOptions = { ref: fx.busyboxRef, env: { CORRUPT: "state" } };
    const first = await build(opts);
    const fd = openSync(join(first.image.snapshotPath, "restore.snap"), "r+");
    writeSync(fd, Buffer.alloc(64, 0x5a), 0, 64, 16);
    closeSync(fd);
    const err = await rejection(() => Image.fromSnapshot(first.image.snapshotPath));
    expect(err.code).toBe("SNAPSHOT_CORRUPT");
    const again = await build(opts);
    expect(again.phases).toContain("boot");
    expect(await firstLine(again.image, ["echo", "rebaked"])).toBe("rebaked");
  });
});

describe("Image.build: failures are typed and leave nothing behind", () => {
  async function failing(name: string, options: Partial<BuildOptions> & { ref: string }) {
    const snapshotsDir = join(fx.scratch(name), "snapshots");
    const err = await rejection(() =>
      Image.build({ insecureRegistries: fx.insecureRegistries, snapshotsDir, ...options }),
    );
    expect(snapshotDirs(snapshotsDir)).toEqual([]);
    expect(lockFiles(snapshotsDir)).toEqual([]);
    expect(await waitFor(() => qemuPids().length === 0, 60_000)).toBe(true);
    return err;
  }

  it("an unknown image or tag", async () => {
    const err = await failing("unknown", { ref: `${fx.registry.host}/no-such-image:1` });
    expect(err.code).toBe("BAKE_IMAGE_NOT_FOUND");
    const tag = await failing("unknown-tag", { ref: `${fx.registry.host}/busybox:no-such-tag` });
    expect(tag.code).toBe("BAKE_IMAGE_NOT_FOUND");
  });

  it("listenerRequired with a workload that exits", async () => {
    const err = await failing("exits", {
      ref: fx.busyboxRef,
      cmd: ["sh", "-c", "echo about-to-exit; exit 3"],
      listenerRequired: true,
    });
    expect(err.code).toBe("BAKE_WORKLOAD_EXITED");
    expect(err.message).toContain(
      'the workload ["sh","-c","echo about-to-exit; exit 3"] exited before listening',
    );
    // the guest console's tail (the workload's own output goes to its log ring, not the console)
    expect(String(err.details?.consoleTail)).toContain("sm-init: ready");
  });

  it("listenerRequired with a workload that never listens", async () => {
    const err = await failing("never-listens", {
      ref: fx.busyboxRef,
      cmd: ["sleep", "1000"],
      listenerRequired: true,
      listenerTimeoutMs: 3_000,
    });
    expect(err.code).toBe("BAKE_LISTENER_TIMEOUT");
    expect(String(err.details?.consoleTail)).toContain("sm-init: ready");
  });

  it("the guest dies (reboot) while the bake waits for the listener", async () => {
    const err = await failing("guest-died-listener", {
      ref: fx.busyboxRef,
      cmd: ["sh", "-c", "echo rebooting-now; reboot -f"],
      listenerRequired: true,
    });
    expect(err.code, err.message).toBe("BAKE_GUEST_DIED");
    expect(String(err.details?.consoleTail)).toMatch(/sm-init: ready[\s\S]*reboot: Restarting system/);
  });

  it("the guest dies (reboot) under the warmup callback", async () => {
    const err = await failing("guest-died-warmup", {
      ref: fx.busyboxRef,
      warmup: async (vm) => {
        await vm.exec({ argv: ["reboot", "-f"] });
      },
    });
    expect(err.code, err.message).toBe("BAKE_GUEST_DIED");
    expect(String(err.details?.consoleTail)).toContain("sm-init: ready");
  });

  it("a warmup callback that throws", async () => {
    const err = await failing("warmup-throws", {
      ref: fx.busyboxRef,
      warmup: async (vm) => {
        const r = await vm.exec({ argv: ["sh", "-c", "echo not-ready; exit 4"] });
        if (r.exitCode !== 0) throw new Error(`warmup step exited ${r.exitCode}: ${r.stdout}`);
      },
    });
    expect(err.code).toBe("BAKE_WARMUP_FAILED");
    expect(err.message).toContain("warmup step exited 4: not-ready");
    expect((err.cause as Error).message).toBe("warmup step exited 4: not-ready\n");
    expect(String(err.details?.consoleTail)).toContain("sm-init: ready");
  });

  it("a workload that runs the guest out of memory", async () => {
    const err = await failing("oom", {
      ref: fx.busyboxRef,
      memoryMib: 64,
      cmd: ["sh", "-c", 'a=x; while :; do a="$a$a"; done'],
      listenerRequired: true,
    });
    expect(err.code).toBe("BAKE_OUT_OF_MEMORY");
    expect(String(err.details?.consoleTail)).toMatch(/Out of memory|oom-kill/);
  });
});
