// A guest that misbehaves on purpose must not reach the host's disk or memory,
// must not disturb the other VMs of its pool, and is replaced when it becomes
// unusable. Real VMs restored from a busybox bake; every assertion is on an
// exact error code or a byte count, never on a duration.
import { spawnSync } from "node:child_process";
import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Machine } from "@supermachine/vmm-native";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Image, type Pool, type Vm } from "./index.js";
import { type CoreFixture, coreFixture, rejection } from "./test-support/fixture.js";
import { vmQemuPid } from "./test-support/guest-io.js";
import { alive, descendants, qemuPids, waitFor } from "./test-support/procs.js";

const MIB = 1024 * 1024;
const MEMORY_MIB = 256;
/** The workload: says hello on both streams, floods its stdout once /tmp/flood exists. */
const WORKLOAD = [
  "sh",
  "-c",
  "echo workload-up; echo workload-err >&2; while :; do if [ -f /tmp/flood ]; then yes workload-flood-line; fi; sleep 0.2; done",
];

let fx: CoreFixture;
let image: Image;
let pool: Pool;
let runDir: string;
const savedRunDir = process.env.SUPERMACHINE_RUN_DIR;

beforeAll(async () => {
  fx = await coreFixture("hostile");
  // every VM's host-side files (sockets, console pipe) land here, so the test can weigh them
  runDir = mkdtempSync(join(tmpdir(), "sm-hostile-run-"));
  process.env.SUPERMACHINE_RUN_DIR = runDir;
  image = await Image.build({
    ref: fx.busyboxRef,
    cmd: WORKLOAD,
    memoryMib: MEMORY_MIB,
    snapshotsDir: fx.snapshotsDir,
    insecureRegistries: fx.insecureRegistries,
  });
  pool = await image.pool({ min: 2, max: 3 });
});

afterAll(async () => {
  await pool?.shutdown();
  await fx?.close();
  if (savedRunDir === undefined) delete process.env.SUPERMACHINE_RUN_DIR;
  else process.env.SUPERMACHINE_RUN_DIR = savedRunDir;
  rmSync(runDir, { recursive: true, force: true });
  expect(await waitFor(() => qemuPids().length === 0, 10_000)).toBe(true);
});

/** The engine machine behind a Vm (test-only reach into internals, like `vmQemuPid`). */
function machineOf(vm: Vm): Machine {
  const m = (vm as unknown as { worker?: { machine?: Machine } }).worker?.machine;
  if (!m) throw new Error("cannot find the machine of this Vm (internals changed?)");
  return m;
}

/**
 * Bytes of regular files under `dir` (sockets and FIFOs weigh nothing), not
 * counting each run directory's `owner.json` (a fixed-size record of its owner).
 */
function regularFileBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    // a fixed-size file the engine writes itself, not guest output (the network namespace's resolv.conf
    // lives on a tmpfs of its own mount namespace, not here)
    if (e.name === "owner.json") continue;
    try {
      const st = lstatSync(join(e.parentPath, e.name));
      if (st.isFile()) total += st.size;
    } catch {
      // removed meanwhile (a VM ending)
    }
  }
  return total;
}

/** Resident memory of a process in bytes. */
function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1]) * 1024;
}

async function sh(vm: Vm, script: string): Promise<string> {
  const r = await vm.exec({ argv: ["sh", "-c", script] });
  expect(r.exitCode).toBe(0);
  return r.stdout.toString();
}

/** Another VM of the pool still works while (and after) one misbehaves. */
async function othersUnaffected(): Promise<void> {
  await using other = await pool.acquire();
  expect(await sh(other, "echo other-ok")).toBe("other-ok\n");
}

/** The pool is back to `min` live VMs and hands out a working one. */
async function poolRecovered(): Promise<void> {
  expect(await waitFor(() => pool.stats().alive >= 2, 60_000)).toBe(true);
  await using fresh = await pool.acquire();
  expect(await sh(fresh, "test -e /fill || test -e /tmp/flood || echo clean")).toBe("clean\n");
}

/** Freezes the guest's PID 1 (the agent) with the cgroup v2 freezer, from inside the guest. */
async function freezeAgent(vm: Vm): Promise<void> {
  await sh(
    vm,
    // the agent mounts cgroup2 there itself (per-exec cgroups); mount it only where it does not
    "mkdir -p /sys/fs/cgroup && { grep -q ' /sys/fs/cgroup cgroup2 ' /proc/mounts || mount -t cgroup2 none /sys/fs/cgroup; } && mkdir /sys/fs/cgroup/jail",
  );
  // the freeze happens after this exec has returned, so its reply is not lost
  const child = await vm.spawn({
    argv: [
      "sh",
      "-c",
      // PID 1 (the agent) moves into the jail; a shell outside it freezes the jail
      // once this exec has replied, then says so on the console (the kernel's, not the agent's)
      "echo 1 > /sys/fs/cgroup/jail/cgroup.procs; (sleep 1; echo 1 > /sys/fs/cgroup/jail/cgroup.freeze; " +
        "until grep -q 'frozen 1' /sys/fs/cgroup/jail/cgroup.events; do sleep 0.1; done; " +
        "echo sm-agent-frozen > /dev/console) >/dev/null 2>&1 &",
    ],
  });
  expect((await child.wait()).exitCode).toBe(0);
  const m = machineOf(vm);
  expect(await waitFor(() => m.consoleBytes().toString("latin1").includes("sm-agent-frozen"), 60_000)).toBe(
    true,
  );
}

describe("console flood", () => {
  it("keeps a fixed-size console ring on the host, no file; the tail outlives QEMU", async () => {
    const vm = await pool.acquire();
    const m = machineOf(vm);
    const before = m.consoleTotalBytes;
    // 400 000 bytes of "y\n"; the tty turns each \n into \r\n on the wire: 600 000 bytes
    await sh(vm, "yes | head -c 400000 > /dev/console");
    await waitFor(() => m.consoleTotalBytes - before >= 600_000, 30_000);
    expect(m.consoleTotalBytes - before).toBe(600_000);
    expect(m.consoleBytes().length).toBe(64 * 1024); // the ring, not the flood
    expect(regularFileBytes(runDir)).toBe(0); // nothing of it on disk
    // QEMU dies: the typed error still carries the console's last lines
    const pid = vmQemuPid(vm);
    process.kill(pid, "SIGKILL");
    const err = await rejection(() => vm.exec({ argv: ["true"] }));
    expect(err.code).toBe("VM_EXITED");
    const tail = String(err.details?.consoleTail);
    expect(tail.length).toBeLessThanOrEqual(8192);
    expect(tail.trimEnd().split("\n").at(-1)?.trim()).toBe("y");
    await vm.release();
    await othersUnaffected();
    await poolRecovered();
  });
});

describe("workload output (logs)", () => {
  it("returns what the workload wrote to stdout and stderr", async () => {
    await using vm = await pool.acquire();
    const logs = await waitFor(async () => {
      const l = await vm.logs();
      return l.totalBytes >= 25 && l;
    }, 30_000);
    if (!logs) throw new Error("the workload wrote nothing");
    expect(logs.output.toString()).toBe("workload-up\nworkload-err\n");
    expect(logs.totalBytes).toBe(25);
    expect((await vm.logs({ maxBytes: 13 })).output.toString()).toBe("workload-err\n");
  });

  it("a flooding workload costs the host no disk and a fixed amount of memory; the newest 64 KiB stay readable", async () => {
    await using vm = await pool.acquire();
    const m = machineOf(vm);
    const consoleBefore = m.consoleTotalBytes;
    await sh(vm, "touch /tmp/flood");
    const logs = await waitFor(async () => {
      const l = await vm.logs();
      return l.totalBytes > 8 * MIB && l;
    }, 120_000);
    if (!logs) throw new Error("the workload did not flood");
    expect(logs.output.length).toBe(64 * 1024);
    const lines = logs.output.toString().split("\n");
    expect(new Set(lines.slice(1, -1))).toEqual(new Set(["workload-flood-line"]));
    expect(logs.output.toString()).not.toContain("workload-up");
    expect((await vm.logs({ maxBytes: 40 })).output.length).toBe(40);
    // none of it went through the console (the kernel may log a line there meanwhile) or onto the host's disk
    expect(m.consoleTotalBytes - consoleBefore).toBeLessThan(1024);
    expect(m.consoleBytes().toString("latin1")).not.toContain("workload-flood-line");
    expect(regularFileBytes(runDir)).toBe(0);
    expect(await sh(vm, "echo still-answers")).toBe("still-answers\n");
  });
});

describe("big outputs and files", () => {
  it("readFile of an 8 GiB sparse file is refused before any byte moves; a stream reads it with bounded memory", async () => {
    await using vm = await pool.acquire();
    await sh(vm, "truncate -s 8G /tmp/huge && head -c 3000000 /dev/zero > /tmp/three-mb");
    const rss0 = process.memoryUsage().rss;
    const err = await rejection(() => vm.readFile("/tmp/huge"));
    expect(err.code).toBe("FILE_TOO_LARGE");
    expect(err.details).toMatchObject({ path: "/tmp/huge", size: 8 * 1024 * MIB, maxBytes: 64 * MIB });
    expect(err.message).toContain("readFileStream");
    const small = await rejection(() => vm.readFile("/tmp/three-mb", { maxBytes: MIB }));
    expect(small.code).toBe("FILE_TOO_LARGE");
    expect((await vm.readFile("/tmp/three-mb")).length).toBe(3_000_000);
    // the streaming alternative: 32 MiB of the 8 GiB, then stop
    const stream = await vm.readFileStream("/tmp/huge");
    let got = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      got += chunk.length;
      if (got >= 32 * MIB) break;
    }
    expect((await rejection(() => vm.readFileStream("/no/such/file"))).code).toBe("AGENT_NOT_FOUND");
    expect((await rejection(() => vm.readFile("/no/such/file"))).code).toBe("AGENT_NOT_FOUND");
    expect(got).toBeGreaterThanOrEqual(32 * MIB);
    expect(got).toBeLessThan(33 * MIB);
    expect(process.memoryUsage().rss - rss0).toBeLessThan(128 * MIB);
    expect(await sh(vm, "echo still-answers")).toBe("still-answers\n");
  });

  it("exec output past maxOutputBytes kills the command with a typed error naming spawn", async () => {
    await using vm = await pool.acquire();
    const err = await rejection(() =>
      vm.exec({ argv: ["sh", "-c", "yes | head -c 3000000; echo done >&2"], maxOutputBytes: MIB }),
    );
    expect(err.code).toBe("EXEC_OUTPUT_TOO_LARGE");
    expect(err.details).toMatchObject({ maxOutputBytes: MIB });
    expect(err.message).toContain("spawn");
    const ok = await vm.exec({ argv: ["sh", "-c", "yes | head -c 3000000"] });
    expect(ok.stdout.length).toBe(3_000_000);
    expect((await rejection(() => vm.exec({ argv: ["true"], maxOutputBytes: 2 ** 31 }))).code).toBe(
      "INVALID_OPTIONS",
    );
  });

  it("execPath: capped output and oversized requests become error replies", async () => {
    await using vm = await pool.acquire();
    const path = vm.execPath;
    const lines = (requests: string[]): Promise<Array<Record<string, unknown>>> =>
      new Promise((resolve, reject) => {
        const sock = createConnection(path);
        let buf = "";
        const out: Array<Record<string, unknown>> = [];
        sock.setEncoding("utf8");
        sock.on("connect", () => sock.write(requests.join("")));
        sock.on("data", (d) => {
          buf += d;
          for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
            out.push(JSON.parse(buf.slice(0, nl)));
            buf = buf.slice(nl + 1);
          }
          if (out.length === requests.length) sock.end();
        });
        sock.on("close", () => resolve(out));
        sock.on("error", reject);
      });
    const replies = await lines([
      `${JSON.stringify({ id: 1, argv: ["sh", "-c", "yes | head -c 3000000"], maxOutputBytes: MIB })}\n`,
      `${JSON.stringify({ id: 2, argv: ["true"], maxOutputBytes: 1024 * MIB })}\n`,
      `${JSON.stringify({ id: 3, argv: ["echo", "fine"] })}\n`,
    ]);
    const byId = new Map(replies.map((r) => [r.id, r]));
    expect(byId.get(1)).toMatchObject({ error: { code: "EXEC_OUTPUT_TOO_LARGE" } });
    expect(byId.get(2)).toMatchObject({ error: { code: "INVALID_OPTIONS" } });
    expect(Buffer.from(String(byId.get(3)?.stdout), "base64").toString()).toBe("fine\n");
    // a request line longer than the limit (no newline in 100 MiB) ends that connection with an error
    const huge = await new Promise<string>((resolve, reject) => {
      const sock = createConnection(path);
      let got = "";
      sock.setEncoding("utf8");
      sock.on("connect", () => {
        const chunk = Buffer.alloc(MIB, 0x61);
        let sent = 0;
        const pump = () => {
          while (sent < 100 && !sock.destroyed) {
            sent++;
            if (!sock.write(chunk)) return void sock.once("drain", pump);
          }
        };
        pump();
      });
      sock.on("data", (d) => {
        got += d;
        if (got.includes("\n")) {
          resolve(got);
          sock.destroy();
        }
      });
      sock.on("error", () => resolve(got));
      sock.on("close", () => resolve(got));
      setTimeout(() => reject(new Error("no reply to an oversized line")), 60_000).unref();
    });
    expect(JSON.parse(huge.split("\n")[0] as string)).toMatchObject({ error: { code: "INVALID_OPTIONS" } });
    // the socket still serves new connections
    const after = await lines([`${JSON.stringify({ id: 9, argv: ["echo", "again"] })}\n`]);
    expect(Buffer.from(String(after[0]?.stdout), "base64").toString()).toBe("again\n");
  });
});

describe("resource exhaustion inside the guest", () => {
  it("memory exhaustion: the guest's OOM killer ends the hog; QEMU stays within guest RAM", async () => {
    await using vm = await pool.acquire();
    const pid = vmQemuPid(vm);
    const r = await vm.exec({ argv: ["sh", "-c", 'a=x; while :; do a="$a$a"; done'] });
    expect(r.exitCode).toBe(-1); // SIGKILLed by the guest kernel
    expect(rssBytes(pid)).toBeLessThan((MEMORY_MIB + 256) * MIB);
    expect(await sh(vm, "echo survived")).toBe("survived\n");
    await othersUnaffected();
  });

  it("a full tmpfs: writes fail with ENOSPC inside the guest, the VM answers, the next holder gets a clean one", async () => {
    const vm = await pool.acquire();
    const pid = vmQemuPid(vm);
    const r = await vm.exec({ argv: ["sh", "-c", "dd if=/dev/zero of=/fill bs=1M"] });
    expect(r.exitCode).toBe(1);
    expect(r.stderr.toString()).toContain("No space left on device");
    const w = await rejection(() => vm.writeFile("/more", Buffer.alloc(MIB)));
    expect(w.code).toBe("AGENT_IO");
    expect(w.details).toMatchObject({ errno: 28 });
    expect(rssBytes(pid)).toBeLessThan((MEMORY_MIB + 256) * MIB);
    expect(await sh(vm, "echo answers")).toBe("answers\n");
    await othersUnaffected();
    await vm.release(); // restoreOnRelease: destroyed and restored afresh
    await waitFor(() => !alive(pid), 30_000);
    expect(alive(pid)).toBe(false);
    await poolRecovered();
  });

  it("a fork bomb: the VM is killed or keeps answering, never more than its own QEMU on the host", async () => {
    const vm = await pool.acquire();
    const pid = vmQemuPid(vm);
    const hostProcs = descendants().length;
    // whatever the guest does now, the holder gets an answer or a typed error, never a hang
    const codes = new Set<string>();
    const bomb = ["sh", "-c", "f(){ f|f& }; f"];
    for (let i = 0; i < 4; i++) {
      const r = await vm.exec({ argv: i === 0 ? bomb : ["true"], timeoutMs: 5_000 }).then(
        (x) => (x.timedOut ? "timedOut" : `exit ${x.exitCode}`),
        (e: { code?: string }) => String(e.code),
      );
      codes.add(r);
      expect(descendants().length).toBeLessThanOrEqual(hostProcs + 2); // the guest's processes are not the host's
      if (alive(pid)) expect(rssBytes(pid)).toBeLessThan((MEMORY_MIB + 256) * MIB);
      if (r === "VM_UNRESPONSIVE" || r === "VM_EXITED") break;
    }
    console.log("fork bomb: what the holder saw:", [...codes].join(", "));
    // exit 0: it ran; timedOut: the agent killed it; AGENT_IO: the guest could not fork;
    // VM_UNRESPONSIVE: the host killed the wedged VM; VM_EXITED: the guest kernel gave up
    for (const c of codes)
      expect(["exit 0", "timedOut", "AGENT_IO", "VM_UNRESPONSIVE", "VM_EXITED"]).toContain(c);
    await othersUnaffected();
    await vm.release();
    await waitFor(() => !alive(pid), 30_000);
    expect(alive(pid)).toBe(false);
    await poolRecovered();
  });
});

describe("a guest that stops answering", () => {
  it("PID 1 ignores SIGKILL and SIGSTOP from inside the guest", async () => {
    await using vm = await pool.acquire();
    await sh(vm, "kill -KILL 1; kill -STOP 1; true");
    expect(await sh(vm, "echo agent-alive")).toBe("agent-alive\n");
  });

  it("a frozen agent: exec fails with VM_UNRESPONSIVE past timeoutMs, the VM is killed and replaced", async () => {
    const vm = await pool.acquire();
    const pid = vmQemuPid(vm);
    await freezeAgent(vm);
    const err = await rejection(() => vm.exec({ argv: ["true"], timeoutMs: 1000 }));
    expect(err.code).toBe("VM_UNRESPONSIVE");
    expect(err.details).toMatchObject({ timeoutMs: 1000 });
    await waitFor(() => !alive(pid), 30_000);
    expect(alive(pid)).toBe(false);
    // every later call says why
    expect((await rejection(() => vm.exec({ argv: ["true"] }))).code).toBe("VM_UNRESPONSIVE");
    expect((await rejection(() => vm.readFile("/etc/passwd"))).code).toBe("VM_UNRESPONSIVE");
    await vm.release(); // a no-op for the pool: the VM is already gone
    await othersUnaffected();
    await poolRecovered();
  });

  it("a command that hangs past its timeout is killed by the agent (timedOut), the VM stays usable", async () => {
    await using vm = await pool.acquire();
    const r = await vm.exec({ argv: ["sh", "-c", "trap '' TERM INT; sleep 1000"], timeoutMs: 1000 });
    expect(r).toMatchObject({ exitCode: -1, timedOut: true });
    expect(await sh(vm, "echo after-timeout")).toBe("after-timeout\n");
  });

  it("restoreOnRelease false: a wedged VM given back is not handed to the next holder", async () => {
    await using asIs = await image.pool({ min: 1, max: 1, restoreOnRelease: false });
    const vm = await asIs.acquire();
    const pid = vmQemuPid(vm);
    await freezeAgent(vm);
    await vm.release(); // the health check finds no answer: discarded
    await using next = await asIs.acquire();
    expect(vmQemuPid(next)).not.toBe(pid);
    expect(await sh(next, "echo healthy")).toBe("healthy\n");
    expect(alive(pid)).toBe(false);
  });
});

describe("maxLeaseMs", () => {
  it("ends a lease that runs too long: calls fail with VM_LEASE_EXPIRED, the VM is destroyed and replaced", async () => {
    await using leased = await image.pool({ min: 1, max: 1, maxLeaseMs: 4_000 });
    const vm = await leased.acquire();
    const pid = vmQemuPid(vm);
    expect(await sh(vm, "echo in-time")).toBe("in-time\n");
    const pending = rejection(() => vm.exec({ argv: ["sleep", "1000"] }));
    const err = await pending;
    expect(err.code).toBe("VM_LEASE_EXPIRED");
    expect(err.details).toMatchObject({ maxLeaseMs: 4_000 });
    expect((await rejection(() => vm.logs())).code).toBe("VM_LEASE_EXPIRED");
    await waitFor(() => !alive(pid), 30_000);
    expect(alive(pid)).toBe(false);
    await vm.release();
    await using next = await leased.acquire();
    expect(await sh(next, "echo new-lease")).toBe("new-lease\n");
    expect((await rejection(() => image.pool({ maxLeaseMs: 0 }))).code).toBe("INVALID_OPTIONS");
  });
});

describe("supermachine run --logs", () => {
  it("prints the workload's output", () => {
    const bin = fileURLToPath(new URL("../dist/bin.js", import.meta.url));
    const ref = `oci:${join(process.env.SUPERMACHINE_CACHE ?? join(homedir(), ".cache", "supermachine"), "images", "default")}:latest`;
    const r = spawnSync(
      process.execPath,
      [
        bin,
        "run",
        ref,
        "--snapshots-dir",
        fx.snapshotsDir,
        "--cmd",
        "echo cli-workload-out; echo cli-workload-err >&2; sleep 1000",
        "--logs",
        "--wait-ms",
        "3000",
      ],
      { encoding: "utf8", timeout: 240_000 },
    );
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("cli-workload-out\ncli-workload-err\n");
    const withCommand = spawnSync(
      process.execPath,
      [
        bin,
        "run",
        ref,
        "--snapshots-dir",
        fx.snapshotsDir,
        "--cmd",
        "echo from-workload; sleep 1000",
        "--logs",
        "--",
        "sh",
        "-c",
        "sleep 2; echo from-command",
      ],
      { encoding: "utf8", timeout: 240_000 },
    );
    expect(withCommand.status).toBe(0);
    expect(withCommand.stdout).toBe("from-command\n");
    expect(withCommand.stderr).toMatch(/--- workload logs \(last 14 of 14 bytes\) ---\nfrom-workload\n$/);
  });
});
