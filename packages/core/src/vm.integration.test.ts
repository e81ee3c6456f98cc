// Every method of Vm, ExecChild and TcpForwarder on real VMs restored from a
// busybox bake whose workload traps SIGTERM and serves HTTP on guest port 80.
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { connect, createConnection, createServer } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Image, type Pool, type Vm } from "./index.js";
import { type CoreFixture, coreFixture, rejection } from "./test-support/fixture.js";
import { httpOverUnix, readAll, readStdoutUntil, retry } from "./test-support/guest-io.js";
import { qemuPids, waitFor, withDeadline } from "./test-support/procs.js";

const WORKLOAD = [
  "sh",
  "-c",
  "trap 'echo got > /tmp/sig' TERM; mkdir -p /www && echo vsock-ok > /www/index.html && httpd -p 80 -h /www; echo up > /tmp/workload-up; while :; do sleep 1; done",
];

let fx: CoreFixture;
let image: Image;
let pool: Pool;

beforeAll(async () => {
  fx = await coreFixture("vm");
  image = await Image.build({
    ref: fx.busyboxRef,
    cmd: WORKLOAD,
    snapshotsDir: fx.snapshotsDir,
    insecureRegistries: fx.insecureRegistries,
  });
  pool = await image.pool({ min: 1, max: 2 });
});

afterAll(async () => {
  await pool?.shutdown();
  await fx?.close();
  expect(await waitFor(() => qemuPids().length === 0, 60_000)).toBe(true);
});

/** Local addresses listening on TCP `port` (IPv4 and IPv6), from /proc/net/tcp{,6}. */
function tcpListeners(port: number): string[] {
  const out: string[] = [];
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of readFileSync(file, "utf8").split("\n").slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (!local || state !== "0A") continue; // 0A: LISTEN
      const [hex, portHex] = local.split(":") as [string, string];
      if (Number.parseInt(portHex, 16) !== port) continue;
      out.push(
        hex.length === 8
          ? (hex.match(/../g) as string[])
              .reverse()
              .map((b) => Number.parseInt(b, 16))
              .join(".")
          : hex,
      );
    }
  }
  return out.sort();
}

/** Connects to `addr` (127.0.0.1:PORT): "connected", or the error code. */
function connectResult(addr: string): Promise<string> {
  const [host, port] = addr.split(":") as [string, string];
  return new Promise((resolve) => {
    const s = connect(Number(port), host);
    s.on("connect", () => {
      s.destroy();
      resolve("connected");
    });
    s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
  });
}

async function sh(vm: Vm, script: string): Promise<string> {
  const r = await vm.exec({ argv: ["sh", "-c", script] });
  expect(r.stderr.toString()).toBe("");
  expect(r.exitCode).toBe(0);
  return r.stdout.toString();
}

describe("Vm.exec", () => {
  it("collects stdout, stderr and the exit code", async () => {
    await using vm = await pool.acquire();
    const r = await vm.exec({ argv: ["sh", "-c", "echo out; echo err >&2; exit 7"] });
    expect(r.stdout.toString()).toBe("out\n");
    expect(r.stderr.toString()).toBe("err\n");
    expect(r.exitCode).toBe(7);
    const ok = await vm.exec({ argv: ["true"] });
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout.length).toBe(0);
  });

  it("passes env and cwd", async () => {
    await using vm = await pool.acquire();
    const r = await vm.exec({
      argv: ["sh", "-c", 'echo "$FOO|$BAR"; pwd'],
      env: { FOO: "bar baz", BAR: "x=y" },
      cwd: "/etc",
    });
    expect(r.stdout.toString()).toBe("bar baz|x=y\n/etc\n");
  });

  it("runs the chain in order and stops at the first failure", async () => {
    await using vm = await pool.acquire();
    const r = await vm.exec({ argv: ["echo", "one"], chain: ["echo two", "false", "echo three"] });
    expect(r.stdout.toString()).toBe("one\ntwo\n");
    expect(r.exitCode).not.toBe(0);
    const first = await vm.exec({ argv: ["false"], chain: ["echo never"] });
    expect(first.stdout.toString()).toBe("");
    expect(first.exitCode).not.toBe(0);
    const all = await vm.exec({ argv: ["echo", "a"], chain: ["echo b", "echo c"] });
    expect(all.stdout.toString()).toBe("a\nb\nc\n");
    expect(all.exitCode).toBe(0);
  });

  it("stages files with the default mode and with explicit modes", async () => {
    await using vm = await pool.acquire();
    const r = await vm.exec({
      argv: [
        "sh",
        "-c",
        "cat /stage/a.txt; /stage/bin/run.sh; stat -c '%a %n' /stage/a.txt /stage/bin/run.sh /stage/secret",
      ],
      stageFiles: { "/stage/a.txt": Buffer.from("plain\n") },
      stageFilesMode: [
        { guestPath: "/stage/bin/run.sh", bytes: Buffer.from("#!/bin/sh\necho staged-run\n"), mode: 0o755 },
        { guestPath: "/stage/secret", bytes: Buffer.from("s3cret"), mode: 0o400 },
      ],
    });
    expect(r.stderr.toString()).toBe("");
    expect(r.stdout.toString()).toBe(
      "plain\nstaged-run\n644 /stage/a.txt\n755 /stage/bin/run.sh\n400 /stage/secret\n",
    );
  });

  it("timeoutMs kills the whole process tree, setsid and double-forked children included", async () => {
    await using vm = await pool.acquire();
    // 101: a background child; 102: a child in a session of its own; 103: a
    // double fork into a new session, re-parented to init. All must die.
    const r = await vm.exec({
      argv: [
        "sh",
        "-c",
        [
          "sleep 101 &",
          "setsid sh -c 'touch /tmp/t102; exec sleep 102' &",
          "(setsid sh -c 'touch /tmp/t103; exec sleep 103' &)",
          "while [ ! -e /tmp/t102 ] || [ ! -e /tmp/t103 ]; do sleep 0.05; done",
          "echo tree-up; sleep 104; echo not-reached",
        ].join("\n"),
      ],
      // long enough for the tree to be up on a loaded machine under TCG (checked just below)
      timeoutMs: 6_000,
    });
    expect(r.stdout.toString()).toBe("tree-up\n");
    expect(r.timedOut).toBe(true);
    expect(r.exitCode).toBe(-1);
    const sleeps = async () =>
      (await sh(vm, "ps -o args")).split("\n").filter((l) => /^sleep 10[1-5]$/.test(l));
    expect(
      await waitFor(async () => (await sleeps()).length === 0, 60_000),
      (await sleeps()).join(", "),
    ).toBe(true);
    // The same check sees such a process when one is alive.
    await sh(
      vm,
      "(setsid sh -c 'echo $$ > /tmp/p105.tmp; mv /tmp/p105.tmp /tmp/p105; exec sleep 105' &); while [ ! -e /tmp/p105 ]; do sleep 0.05; done",
    );
    expect(await waitFor(async () => (await sleeps()).join() === "sleep 105", 60_000)).toBe(true);
    await sh(vm, "kill -9 $(cat /tmp/p105)");
    const fine = await vm.exec({ argv: ["echo", "fine"], timeoutMs: 60_000 });
    expect(fine.timedOut ?? false).toBe(false);
    expect(fine.stdout.toString()).toBe("fine\n");
  });

  it("rejects invalid options with INVALID_OPTIONS", async () => {
    await using vm = await pool.acquire();
    expect((await rejection(() => vm.exec({ argv: [] }))).code).toBe("INVALID_OPTIONS");
    expect(
      (await rejection(() => vm.exec({ argv: ["true"], stageFiles: { "relative/path": Buffer.from("x") } })))
        .code,
    ).toBe("INVALID_OPTIONS");
  });
});

describe("Vm.spawn / ExecChild", () => {
  it("streams stdout and stderr in order and ends with an empty Buffer", async () => {
    await using vm = await pool.acquire();
    const child = await vm.spawn({
      argv: ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; echo err $i >&2; sleep 0.1; done"],
    });
    const [out, err] = await Promise.all([
      readAll(() => child.readStdout()),
      readAll(() => child.readStderr()),
    ]);
    expect(out.text).toBe("line 1\nline 2\nline 3\nline 4\nline 5\n");
    expect(err.text).toBe("err 1\nerr 2\nerr 3\nerr 4\nerr 5\n");
    expect(out.chunks).toBeGreaterThan(1);
    expect((await child.readStdout()).length).toBe(0);
    const res = await child.wait();
    expect(res).toMatchObject({ exitCode: 0, timedOut: false });
    expect((await child.readStdout()).length).toBe(0);
    expect((await child.readStderr()).length).toBe(0);
    expect((await rejection(() => child.wait())).code).toBe("ALREADY_WAITED");
    console.log("spawn wait result:", res);
  });

  it("echoes stdin through cat while it runs, then EOF ends it", async () => {
    await using vm = await pool.acquire();
    const cat = await vm.spawn({ argv: ["cat"] });
    await cat.writeStdin(Buffer.from("hello\n"));
    expect(await readStdoutUntil(cat, /hello\n/)).toBe("hello\n");
    await cat.writeStdin(Buffer.from("world\n"));
    await cat.closeStdin();
    await cat.closeStdin();
    expect((await readAll(() => cat.readStdout())).text).toBe("world\n");
    expect(await cat.wait()).toMatchObject({ exitCode: 0, timedOut: false });
  });

  it("streams a large stdin through sha256sum", async () => {
    await using vm = await pool.acquire();
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const child = await vm.spawn({ argv: ["sha256sum"] });
    const out = readAll(() => child.readStdout());
    for (let i = 0; i < data.length; i += 256 * 1024)
      await child.writeStdin(data.subarray(i, i + 256 * 1024));
    await child.closeStdin();
    expect((await out).text.split(" ")[0]).toBe(createHash("sha256").update(data).digest("hex"));
    expect((await child.wait()).exitCode).toBe(0);
  });

  it("runs under a tty with the initial size, and resize changes it", async () => {
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
    expect((await readAll(() => tty.readStderr())).text).toBe("");
    expect((await tty.wait()).exitCode).toBe(0);
    const isatty = await vm.exec({ argv: ["sh", "-c", "[ -t 1 ] && echo tty || echo notty"], tty: true });
    expect(isatty.stdout.toString().trim()).toBe("tty");
  });

  it("signal(2) reaches a running process", async () => {
    await using vm = await pool.acquire();
    const child = await vm.spawn({
      argv: ["sh", "-c", "trap 'echo got-int; exit 5' INT; echo ready; while :; do sleep 0.2; done"],
    });
    await readStdoutUntil(child, /ready\n/);
    await child.signal(2);
    expect(await readStdoutUntil(child, /got-int\n/)).toContain("got-int");
    expect((await child.wait()).exitCode).toBe(5);

    const plain = await vm.spawn({ argv: ["sleep", "100"] });
    await plain.signal(9);
    const r = await plain.wait();
    expect(r.exitCode).not.toBe(0);
    expect(r.timedOut).toBe(false);
  });
});

describe("Vm files", () => {
  it("round-trips a 64 MiB file with an equal sha256", async () => {
    await using vm = await pool.acquire();
    const data = randomBytes(64 * 1024 * 1024);
    const want = createHash("sha256").update(data).digest("hex");
    await vm.writeFile("/data/big.bin", data);
    expect((await sh(vm, "sha256sum /data/big.bin")).split(" ")[0]).toBe(want);
    const back = await vm.readFile("/data/big.bin");
    expect(back.length).toBe(data.length);
    expect(createHash("sha256").update(back).digest("hex")).toBe(want);
    await sh(vm, "rm /data/big.bin");
  });

  it("writes small and empty files and reports a missing file with a typed error", async () => {
    await using vm = await pool.acquire();
    await vm.writeFile("/a/b/c.txt", Buffer.from("deep\n"));
    await vm.writeFile("/empty", Buffer.alloc(0));
    expect((await vm.readFile("/a/b/c.txt")).toString()).toBe("deep\n");
    expect((await vm.readFile("/empty")).length).toBe(0);
    expect(await sh(vm, "stat -c %a /a/b/c.txt")).toBe("644\n");
    const err = await rejection(() => vm.readFile("/no/such/file"));
    expect(err.code).toBe("AGENT_NOT_FOUND");
  });
});

describe("Vm.snapshot", () => {
  it("captures a restored VM; pools of the new image start in that state, and so do snapshots of those", async () => {
    const dest = fx.scratch("vm-snap");
    let first: Image;
    {
      await using vm = await pool.acquire();
      await sh(vm, "echo gen-1 > /state1.txt");
      first = await vm.snapshot(join(dest, "one"));
      expect(first.snapshotPath).toBe(join(dest, "one"));
      expect(await sh(vm, "cat /state1.txt; echo still-running")).toBe("gen-1\nstill-running\n");
    }
    const loaded = await Image.fromSnapshot(join(dest, "one"));
    expect(loaded.memoryMib).toBe(image.memoryMib);
    let second: Image;
    {
      await using p1 = await loaded.pool({ min: 1, max: 1 });
      await using vm = await p1.acquire();
      expect((await vm.readFile("/state1.txt")).toString()).toBe("gen-1\n");
      await sh(vm, "echo gen-2 > /state2.txt");
      second = await vm.snapshot(join(dest, "two"));
    }
    {
      await using p2 = await (await Image.fromSnapshot(second.snapshotPath)).pool({ min: 1, max: 1 });
      await using vm = await p2.acquire();
      expect(await sh(vm, "cat /state1.txt /state2.txt")).toBe("gen-1\ngen-2\n");
      // The workload (already running when captured) still serves on port 80.
      expect(
        await retry(() => httpOverUnix(vm.vsockPath, "/index.html").then((r) => r.includes("vsock-ok") && r)),
      ).toContain("vsock-ok");
    }
  });
});

describe("Vm workload and sockets", () => {
  it("workloadSignal delivers a signal to the image's workload", async () => {
    await using vm = await pool.acquire();
    await retry(() => vm.exec({ argv: ["cat", "/tmp/workload-up"] }).then((r) => r.exitCode === 0));
    await vm.workloadSignal(15);
    const got = await retry(() =>
      vm.exec({ argv: ["cat", "/tmp/sig"] }).then((r) => r.exitCode === 0 && r.stdout.toString()),
    );
    expect(got).toBe("got\n");
  });

  it("vsockPath: each unix connection is a byte stream to the workload's guest port", async () => {
    await using vm = await pool.acquire();
    const path = vm.vsockPath;
    expect(vm.vsockPath).toBe(path);
    const res = await retry(() => httpOverUnix(path, "/index.html").then((r) => r.includes("vsock-ok") && r));
    expect(res).toMatch(/^HTTP\/1\.[01] 200/);
    const both = await Promise.all([httpOverUnix(path, "/index.html"), httpOverUnix(path, "/index.html")]);
    for (const r of both) expect(r).toContain("vsock-ok");
    await vm.release();
    expect(existsSync(path)).toBe(false);
  });

  it("execPath serves JSON-lines exec requests", async () => {
    await using vm = await pool.acquire();
    const sock = createConnection(vm.execPath);
    const lines = createInterface({ input: sock });
    const replies: Array<Record<string, unknown>> = [];
    const got = withDeadline(
      new Promise<void>((resolve) =>
        lines.on("line", (l) => {
          replies.push(JSON.parse(l));
          if (replies.length === 3) resolve();
        }),
      ),
      60_000,
      "three replies on execPath",
    );
    sock.write(
      `${JSON.stringify({ id: 1, argv: ["sh", "-c", "echo $X; echo e >&2; exit 3"], env: { X: "jsonl" }, cwd: "/", timeoutMs: 0 })}\n`,
    );
    sock.write(
      `${JSON.stringify({ id: 2, argv: ["cat", "/p"], stageFiles: { "/p": Buffer.from("staged via json").toString("base64") } })}\n`,
    );
    sock.write("this is not json\n");
    await got;
    sock.destroy();
    const byId = (id: unknown) => replies.find((r) => r.id === id) as Record<string, unknown>;
    const r1 = byId(1);
    expect(r1).toMatchObject({ exitCode: 3, timedOut: false });
    expect(Buffer.from(r1.stdout as string, "base64").toString()).toBe("jsonl\n");
    expect(Buffer.from(r1.stderr as string, "base64").toString()).toBe("e\n");
    expect(Buffer.from(byId(2).stdout as string, "base64").toString()).toBe("staged via json");
    expect(replies.filter((r) => r.error)).toEqual([
      { error: { code: "INVALID_OPTIONS", message: "request is not valid JSON" } },
    ]);
  });

  it("exposeTcp routes to the guest port asked for, on 127.0.0.1 only", async () => {
    await using vm = await pool.acquire();
    await sh(
      vm,
      "mkdir -p /w1 /w2 && echo one > /w1/index.html && echo two > /w2/index.html && httpd -p 8080 -h /w1 && httpd -p 8081 -h /w2",
    );
    const a = await vm.exposeTcp(0, 8080);
    const b = await vm.exposeTcp(0, 8081);
    expect(a.localAddr).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(b.localAddr).not.toBe(a.localAddr);
    const get = async (addr: string) => {
      const res = await fetch(`http://${addr}/index.html`);
      return `${res.status} ${(await res.text()).trim()}`;
    };
    expect(await retry(() => get(a.localAddr))).toBe("200 one");
    expect(await get(b.localAddr)).toBe("200 two");
    expect(await get(a.localAddr)).toBe("200 one");

    // A fixed host port.
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const fixed = await vm.exposeTcp(port, 8081);
    expect(fixed.localAddr).toBe(`127.0.0.1:${port}`);
    expect(await get(fixed.localAddr)).toBe("200 two");

    // Bound to 127.0.0.1 only: the kernel's socket table lists the listener on
    // 127.0.0.1 and none on a wildcard or other address (no packet needed).
    const aPort = Number(a.localAddr.split(":")[1]);
    expect(tcpListeners(aPort)).toEqual(["127.0.0.1"]);
    expect(tcpListeners(port)).toEqual(["127.0.0.1"]);

    // stop() closes the listener: the port no longer accepts connections.
    const aAddr = a.localAddr;
    await a.stop();
    await a.stop();
    expect(tcpListeners(aPort)).toEqual([]);
    expect(await connectResult(aAddr)).toBe("ECONNREFUSED");
    expect(await get(b.localAddr)).toBe("200 two");
    await b.stop();
    await fixed.stop();
    expect((await rejection(() => vm.exposeTcp(0, 0))).code).toBe("INVALID_OPTIONS");
  });
});

describe("Vm release", () => {
  it("release is idempotent and every method then rejects with VM_RELEASED", async () => {
    const vm = await pool.acquire();
    const fwd = await vm.exposeTcp(0, 80);
    const addr = fwd.localAddr;
    const execPath = vm.execPath;
    await Promise.all([vm.release(), vm.release()]);
    await vm.release();
    await vm.dispose();
    for (const call of [
      () => vm.exec({ argv: ["true"] }),
      () => vm.spawn({ argv: ["true"] }),
      () => vm.writeFile("/x", Buffer.from("x")),
      () => vm.readFile("/etc/passwd"),
      () => vm.snapshot(join(fx.scratch("released"), "s")),
      () => vm.workloadSignal(15),
      () => vm.exposeTcp(0, 80),
    ]) {
      expect((await rejection(call)).code).toBe("VM_RELEASED");
    }
    expect(() => vm.vsockPath).toThrow(expect.objectContaining({ code: "VM_RELEASED" }));
    expect(() => vm.execPath).toThrow(expect.objectContaining({ code: "VM_RELEASED" }));
    expect(existsSync(execPath)).toBe(false);
    expect(await connectResult(addr)).toBe("ECONNREFUSED");
  });

  it("await using releases the VM at the end of the block", async () => {
    const before = pool.stats().inUse;
    {
      await using vm = await pool.acquire();
      expect(pool.stats().inUse).toBe(before + 1);
      await vm.exec({ argv: ["true"] });
    }
    expect(pool.stats().inUse).toBe(before);
  });
});
