// Pool on real VMs: eager min, growth to max, stats, acquire timeout,
// restoreOnRelease, idle eviction, VMs killed from outside, overrides, a
// 200-cycle load with leak checks, and a SIGKILLed owner process leaving no QEMU.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Image, type Vm } from "./index.js";
import { type CoreFixture, coreFixture, rejection } from "./test-support/fixture.js";
import { vmQemuPid } from "./test-support/guest-io.js";
import { alive, boundUnixSockets, fdCounts, qemuPids, waitFor } from "./test-support/procs.js";

let fx: CoreFixture;
let image: Image;

beforeAll(async () => {
  fx = await coreFixture("pool");
  image = await Image.build({
    ref: fx.busyboxRef,
    snapshotsDir: fx.snapshotsDir,
    insecureRegistries: fx.insecureRegistries,
  });
});

afterAll(async () => {
  await fx?.close();
});

async function echo(vm: Vm, text: string): Promise<string> {
  const r = await vm.exec({ argv: ["echo", text] });
  return r.stdout.toString().trim();
}

describe("Pool sizing and stats", () => {
  it("starts min VMs eagerly, grows to max, then times out acquires with a typed error", async () => {
    await using pool = await image.pool({ min: 2, max: 3, acquireTimeoutMs: 2_000 });
    expect(pool.stats()).toEqual({ alive: 2, inUse: 0, idle: 2, waiting: 0, min: 2, max: 3 });
    expect(qemuPids().length).toBeGreaterThanOrEqual(2);

    const held = [await pool.acquire(), await pool.acquire()];
    expect(pool.stats()).toMatchObject({ inUse: 2, max: 3 });
    held.push(await pool.acquire());
    expect(pool.stats()).toMatchObject({ alive: 3, inUse: 3, idle: 0, waiting: 0 });
    const outputs = await Promise.all(held.map((vm, i) => echo(vm, `vm${i}`)));
    expect(outputs).toEqual(["vm0", "vm1", "vm2"]);

    const waiting = pool.acquire();
    waiting.catch(() => {});
    // a waiter is queued synchronously by acquire(): no polling, nothing to race
    expect(pool.stats().waiting).toBe(1);
    const err = await rejection(() => waiting);
    expect(err.code).toBe("POOL_ACQUIRE_TIMEOUT");
    expect(pool.stats().waiting).toBe(0);

    // A waiter gets the next released VM.
    const next = pool.acquire();
    expect(pool.stats().waiting).toBe(1);
    await held[0]?.release();
    const vm = await next;
    expect(await echo(vm, "handed-on")).toBe("handed-on");
    await Promise.all([vm.release(), held[1]?.release(), held[2]?.release()]);
    expect(await waitFor(() => pool.stats().idle === 3, 60_000)).toBe(true);
    expect(pool.stats()).toEqual({ alive: 3, inUse: 0, idle: 3, waiting: 0, min: 2, max: 3 });
  });

  it("rejects overrides the engine cannot apply and accepts the baked values", async () => {
    expect((await rejection(() => image.pool({ memoryMib: image.memoryMib * 2 }))).code).toBe(
      "UNSUPPORTED_OVERRIDE",
    );
    expect((await rejection(() => image.pool({ vcpus: image.vcpus + 1 }))).code).toBe("UNSUPPORTED_OVERRIDE");
    expect((await rejection(() => image.pool({ min: 3, max: 2 }))).code).toBe("INVALID_OPTIONS");
    await using pool = await image.pool({
      memoryMib: image.memoryMib,
      vcpus: image.vcpus,
      restoreTimeoutMs: 60_000,
    });
    await using vm = await pool.acquire();
    expect(await echo(vm, "same")).toBe("same");
  });

  it("shutdown rejects waiters and stops every VM", async () => {
    const before = qemuPids();
    const pool = await image.pool({ min: 1, max: 1, acquireTimeoutMs: 0 });
    const vm = await pool.acquire();
    const waiter = rejection(() => pool.acquire());
    expect(pool.stats().waiting).toBe(1);
    await pool.shutdown();
    expect((await waiter).code).toBe("POOL_SHUT_DOWN");
    expect((await rejection(() => pool.acquire())).code).toBe("POOL_SHUT_DOWN");
    await vm.release();
    await pool.shutdown();
    expect(await waitFor(() => qemuPids().filter((p) => !before.includes(p)).length === 0, 60_000)).toBe(
      true,
    );
  });
});

describe("Pool recycling", () => {
  it("restoreOnRelease true: the next holder does not see the previous one's files", async () => {
    await using pool = await image.pool({ min: 1, max: 1 });
    {
      await using vm = await pool.acquire();
      await vm.writeFile("/tmp/mark", Buffer.from("dirty"));
    }
    await using vm = await pool.acquire();
    const r = await vm.exec({ argv: ["sh", "-c", "cat /tmp/mark 2>/dev/null || echo clean"] });
    expect(r.stdout.toString()).toBe("clean\n");
  });

  it("restoreOnRelease false: the next holder gets the VM as it was", async () => {
    await using pool = await image.pool({ min: 1, max: 1, restoreOnRelease: false });
    {
      await using vm = await pool.acquire();
      await vm.writeFile("/tmp/mark", Buffer.from("kept"));
    }
    await using vm = await pool.acquire();
    expect((await vm.readFile("/tmp/mark")).toString()).toBe("kept");
  });
});

describe("Pool idle eviction", () => {
  it("idleTimeoutMs stops idle VMs above min: the evicted VM's QEMU exits, min stays", async () => {
    await using pool = await image.pool({ min: 1, max: 2, idleTimeoutMs: 1_500, restoreOnRelease: false });
    const a = await pool.acquire();
    const b = await pool.acquire();
    const pids = [vmQemuPid(a), vmQemuPid(b)];
    expect(pool.stats()).toMatchObject({ alive: 2, inUse: 2 });
    await a.release();
    await b.release();
    expect(pool.stats()).toMatchObject({ alive: 2, idle: 2 });
    // one of the two idle VMs goes; which one is the pool's business
    expect(await waitFor(() => pool.stats().alive === 1, 60_000)).toBe(true);
    expect(await waitFor(() => pids.filter(alive).length === 1, 60_000)).toBe(true);
    const [kept] = pids.filter(alive);
    // min 1 holds: the last idle VM is kept however long it idles (two more timeouts here)
    await new Promise((r) => setTimeout(r, 3_500));
    expect(pool.stats()).toMatchObject({ alive: 1, idle: 1 });
    await using vm = await pool.acquire();
    expect(vmQemuPid(vm)).toBe(kept);
    expect(await echo(vm, "still-here")).toBe("still-here");
  });
});

describe("Pool and dead VMs", () => {
  it("a VM whose QEMU is killed from outside fails with a typed error and is replaced", async () => {
    await using pool = await image.pool({ min: 1, max: 1, acquireTimeoutMs: 60_000 });
    const vm = await pool.acquire();
    const pid = vmQemuPid(vm);
    process.kill(pid, "SIGKILL");
    expect(await waitFor(() => !alive(pid), 60_000)).toBe(true);
    const err = await rejection(() => vm.exec({ argv: ["true"] }));
    expect(err.code, err.message).toBe("VM_EXITED");
    expect(err.message).toMatch(/killed by SIGKILL/);
    // every later call says the same, it does not hang
    expect((await rejection(() => vm.readFile("/etc/hostname"))).code).toBe("VM_EXITED");
    await vm.release();
    await using fresh = await pool.acquire();
    expect(vmQemuPid(fresh)).not.toBe(pid);
    expect(await echo(fresh, "replaced")).toBe("replaced");
  });

  it("an idle VM killed from outside is replaced", async () => {
    await using pool = await image.pool({
      min: 1,
      max: 1,
      restoreOnRelease: false,
      acquireTimeoutMs: 60_000,
    });
    const vm = await pool.acquire();
    const pid = vmQemuPid(vm);
    await vm.release(); // kept as is (restoreOnRelease: false), so the idle VM is this QEMU
    expect(existsSync(`/proc/${pid}`)).toBe(true); // released VMs are pinged first: it answered
    process.kill(pid, "SIGKILL");
    // Reaped (not even a zombie), so Node has seen the exit.
    expect(await waitFor(() => !existsSync(`/proc/${pid}`), 60_000)).toBe(true);
    // the pool drops the dead VM and restores another: back to one idle VM
    expect(await waitFor(() => pool.stats().idle === 1 && pool.stats().alive === 1, 60_000)).toBe(true);
    await using fresh = await pool.acquire();
    expect(vmQemuPid(fresh)).not.toBe(pid);
    expect(await echo(fresh, "after-kill")).toBe("after-kill");
  });

  it("a pre-started restore QEMU killed from outside does not fail the next acquire", async () => {
    await using pool = await image.pool({ min: 1, max: 1, acquireTimeoutMs: 60_000 });
    const vm = await pool.acquire();
    const pid = vmQemuPid(vm);
    // The pool keeps one QEMU started ahead of time for the next restore.
    const spares = await waitFor(() => {
      const others = qemuPids().filter((p) => p !== pid);
      return others.length > 0 && others;
    }, 60_000);
    expect(spares).not.toBe(false);
    for (const p of spares || []) process.kill(p, "SIGKILL");
    expect(await waitFor(() => (spares || []).every((p) => !alive(p)), 60_000)).toBe(true);
    await vm.release(); // restoreOnRelease: the replacement restore would use the dead spare
    await using fresh = await pool.acquire();
    expect(await echo(fresh, "after-spare-kill")).toBe("after-spare-kill");
  });
});

describe("Pool under load", () => {
  // its own timeout: 200 cycles take minutes when the machine is loaded
  it("200 acquire/exec/release cycles from 16 callers on max 4, with no leaks afterwards", {
    timeout: 1_200_000,
  }, async () => {
    const qemuBefore = qemuPids();
    const fdBefore = fdCounts();
    const unixBefore = boundUnixSockets();
    const pool = await image.pool({ min: 2, max: 4, acquireTimeoutMs: 0 });
    try {
      let next = 0;
      let maxInUse = 0;
      const done: number[] = [];
      const wrong: string[] = [];
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          for (let i = next++; i < 200; i = next++) {
            await using vm = await pool.acquire();
            maxInUse = Math.max(maxInUse, pool.stats().inUse);
            const r = await vm.exec({ argv: ["sh", "-c", "echo $((N * 3))"], env: { N: String(i) } });
            const got = r.stdout.toString();
            if (got !== `${i * 3}\n` || r.exitCode !== 0)
              wrong.push(`${i}: ${JSON.stringify(got)} exit ${r.exitCode}`);
            done.push(i);
          }
        }),
      );
      const secs = (performance.now() - t0) / 1000;
      console.log(
        `200 cycles, 16 callers, max 4: ${secs.toFixed(1)} s (${(200 / secs).toFixed(1)} cycles/s), max inUse ${maxInUse}`,
      );
      expect(wrong).toEqual([]);
      // every cycle ran to its end, each exactly once
      expect(done.sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i));
      expect(maxInUse).toBeLessThanOrEqual(4);
      expect(maxInUse).toBeGreaterThanOrEqual(2); // the two idle VMs went out together
      expect(pool.stats()).toMatchObject({ inUse: 0, waiting: 0 });
    } finally {
      await pool.shutdown();
    }

    expect(await waitFor(() => qemuPids().filter((p) => !qemuBefore.includes(p)).length === 0, 60_000)).toBe(
      true,
    );
    const settled = await waitFor(() => fdCounts().fds <= fdBefore.fds, 60_000);
    expect(settled, `fds now ${JSON.stringify(fdCounts())}, before ${JSON.stringify(fdBefore)}`).toBe(true);
    expect(fdCounts().sockets).toBeLessThanOrEqual(fdBefore.sockets);
    expect(boundUnixSockets().filter((s) => !unixBefore.includes(s))).toEqual([]);
  });
});

describe("Pool owner killed", () => {
  it("a Node process holding a pool is SIGKILLed: no QEMU survives it", async () => {
    const dist = new URL("../dist/index.js", import.meta.url).pathname;
    const script = `
      import { Image } from ${JSON.stringify(dist)};
      const image = await Image.fromSnapshot(${JSON.stringify(image.snapshotPath)});
      const pool = await image.pool({ min: 2, max: 3 });
      const vm = await pool.acquire();
      await vm.exec({ argv: ["true"] });
      console.log("ready");
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    await new Promise<void>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (d) => {
        out += d;
        if (out.includes("ready")) resolve();
      });
      child.once("exit", (code) => reject(new Error(`child exited early (${code})`)));
    });
    const pids = qemuPids(child.pid as number);
    expect(pids.length).toBeGreaterThanOrEqual(2);
    child.kill("SIGKILL");
    expect(await waitFor(() => pids.every((p) => !alive(p)), 60_000)).toBe(true);
    expect(pids.filter(alive)).toEqual([]);
  });
});
