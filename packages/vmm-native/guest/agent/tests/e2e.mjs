// End-to-end checks of sm-init over the agent protocol.
//   node e2e.mjs --stdio /path/to/sm-init     (host build, agent only)
//   node e2e.mjs --socket /tmp/agent.sock     (QEMU virtio-serial chardev)
//   node e2e.mjs --list                       (the check names, one a line)
// Prints one line per check and "N passed, N failed" last; exits 1 on failure.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { Client, END, T, W } from "./client.mjs";

const [mode, target, ...rest] = process.argv.slice(2);
const only = rest.length ? new Set(rest) : null;
const inVm = mode === "--socket";
const asRoot = inVm || process.getuid?.() === 0;
let c, child;
async function connect() {
  if (mode === "--stdio") {
    child = spawn(target, ["--stdio"], { stdio: ["pipe", "pipe", "inherit"] });
    c = new Client(child.stdout, child.stdin);
  } else {
    const sock = net.connect(target);
    await new Promise((res, rej) => {
      sock.once("connect", res);
      sock.once("error", rej);
    });
    c = new Client(sock, sock);
  }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const js = (v) => JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? `${x}n` : x));
const eq = (a, b, what) => {
  if (a !== b) throw new Error(`${what}: expected ${js(b)}, got ${js(a)}`);
};
const ok = (v, what) => {
  if (!v) throw new Error(what);
};
let nextId = 100;
const id = () => nextId++;
const tmp = inVm || mode === "--list" ? "/tmp" : (await import("node:fs")).mkdtempSync("/tmp/sm-e2e-");

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

test("hello", async () => {
  const t0 = Date.now();
  const h = await c.hello(7n);
  eq(h.version, 1, "version");
  eq(h.nonce, 7n, "nonce");
  ok(h.features & 1, "pty feature");
  return `${h.agent}, max_payload ${h.maxPayload}, window ${h.window}, ${Date.now() - t0} ms`;
});
test("ping", async () => {
  c.send(T.PING, 0, new W().u64(0x1122334455n).done());
  const f = await c.next((f) => f.type === T.PONG);
  eq(f.msg.token, 0x1122334455n, "token");
});
test("exec uname -a", async () => {
  const t0 = Date.now();
  const r = await c.exec(id(), ["uname", "-a"]);
  eq(r.exit.code, 0, "exit");
  ok(r.stdout.toString().startsWith("Linux"), "stdout");
  ok(r.started > 0, "pid");
  ok(r.exit.rss > 0n, "peak rss");
  return `${r.stdout.toString().trim()} (${Date.now() - t0} ms, rss ${r.exit.rss} KiB)`;
});
test("exec env cwd", async () => {
  const r = await c.exec(id(), ["sh", "-c", "echo $FOO; pwd; echo $HOSTNAME"], {
    env: ["FOO=bar"],
    cwd: "/tmp",
  });
  const [foo, pwd, host] = r.stdout.toString().split("\n");
  eq(foo, "bar", "env");
  eq(pwd, "/tmp", "cwd");
  ok(host.length > 0, "HOSTNAME");
  if (inVm) eq(host, "supermachine", "hostname");
});
test("exec exit code + stderr", async () => {
  const r = await c.exec(id(), ["sh", "-c", "echo err >&2; exit 3"]);
  eq(r.exit.code, 3, "exit");
  eq(r.stderr.toString(), "err\n", "stderr");
  eq(r.exit.signal, 0, "signal");
});
test("exec not found", async () => {
  const r = await c.exec(id(), ["no-such-command-xyz"]);
  eq(r.exit.code, 127, "exit");
  ok(r.stderr.toString().includes("not found"), "message");
  const r2 = await c.exec(id(), ["true"], { cwd: "/no/such/dir" });
  eq(r2.exit.code, 127, "bad cwd");
});
test("exec stdin", async () => {
  const r = await c.exec(id(), ["cat"], { stdin: "hello world" });
  eq(r.stdout.toString(), "hello world", "stdout");
  eq(r.exit.code, 0, "exit");
});
test("exec chain", async () => {
  const r = await c.exec(id(), ["true"], { chain: ["echo a", "false", "echo b"] });
  eq(r.stdout.toString(), "a\n", "stdout");
  eq(r.exit.code, 1, "exit");
  const r2 = await c.exec(id(), ["echo", "x"], { chain: ["echo y"] });
  eq(r2.stdout.toString(), "x\ny\n", "stdout2");
  eq(r2.exit.code, 0, "exit2");
});
test("exec timeout kills group", async () => {
  const r = await c.exec(id(), ["sh", "-c", "sleep 30 & sleep 30"], { timeoutMs: 300 });
  eq(r.exit.timedOut, 1, "timed_out");
  eq(r.exit.signal, 9, "signal");
  eq(r.exit.code, -1, "code");
});
/** The pids (of `sleep 100N` processes) listed in dir's files that are still alive, as "file:pid". */
async function aliveSleeps(dir, files) {
  const script = `for f in ${files.join(" ")}; do p=$(cat ${dir}/$f) || continue
    [ -r /proc/$p/stat ] || continue
    grep -q '^[0-9]* (.*) Z' /proc/$p/stat && continue
    tr '\\0' ' ' </proc/$p/cmdline | grep -q '^sleep 100' && echo "$f:$p"
  done; true`;
  const r = await c.exec(id(), ["sh", "-c", script]);
  eq(r.exit.code, 0, `check exit (${r.stderr})`);
  return r.stdout.toString().trim().split("\n").filter(Boolean);
}
test("exec timeout kills every process it started, in any session", async () => {
  // a: a background child (same process group); b: a child in a session of
  // its own (setsid); c: a double fork into a new session (re-parented).
  const dir = `${tmp}/tree-${id()}`;
  const files = ["a", "b", "c"];
  const script = `mkdir -p ${dir}; sleep 1001 & echo $! > ${dir}/a
    setsid sh -c 'echo $$ > ${dir}/b.tmp; mv ${dir}/b.tmp ${dir}/b; exec sleep 1002' &
    (setsid sh -c 'echo $$ > ${dir}/c.tmp; mv ${dir}/c.tmp ${dir}/c; exec sleep 1003' &)
    while [ ! -f ${dir}/b ] || [ ! -f ${dir}/c ]; do sleep 0.02; done; echo ready; exec sleep 1004`;
  const r = await c.exec(id(), ["sh", "-c", script], { timeoutMs: inVm ? 6000 : 3000 });
  eq(r.stdout.toString(), "ready\n", "the tree was up before the timeout");
  eq(r.exit.timedOut, 1, "timed_out");
  eq(r.exit.signal, 9, "signal");
  // the kill is sent before EXIT, but dying takes a moment: poll, with a deadline
  let alive = [];
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await sleep(50)) {
    alive = await aliveSleeps(dir, files);
    if (alive.length === 0) break;
  }
  eq(alive.join(" "), "", "processes left alive after the timeout");
  // and the check itself can see such processes: one started now, outside any timeout
  const probe = await c.exec(id(), [
    "sh",
    "-c",
    `(setsid sh -c 'echo $$ > ${dir}/d.tmp; mv ${dir}/d.tmp ${dir}/d; exec sleep 1005' &); while [ ! -f ${dir}/d ]; do sleep 0.02; done`,
  ]);
  eq(probe.exit.code, 0, "probe exit");
  // it is seen once it has exec'd sleep (poll: the pid file is written just before)
  let seen = [];
  for (const deadline = Date.now() + 10_000; seen.length === 0 && Date.now() < deadline; await sleep(50))
    seen = await aliveSleeps(dir, ["d"]);
  eq(seen.length, 1, "a live probe process is seen");
  const kill = await c.exec(id(), ["sh", "-c", `kill -9 $(cat ${dir}/d)`]);
  eq(kill.exit.code, 0, "probe killed");
});
const cgroupOf = (out) => {
  const m = /^0::(\/.*\/(e\d+))$/m.exec(out.toString());
  ok(m, `a per-exec cgroup in ${JSON.stringify(out.toString())}`);
  return m[2];
};
test("exec runs in a cgroup that holds only its own processes", async () => {
  const base = inVm ? "/sys/fs/cgroup/sm-exec" : process.env.SM_EXEC_CGROUP;
  ok(base, "SM_EXEC_CGROUP is set (test-agent.sh runs this suite through with-cgroup2.sh)");
  // execs running at the same time: one group each
  const together = await Promise.all(
    [0, 1, 2, 3, 4, 5].map(() => c.exec(id(), ["sh", "-c", "cat /proc/self/cgroup; sleep 0.3"])),
  );
  const groups = together.map((r) => cgroupOf(r.stdout));
  eq(new Set(groups).size, 6, `six running execs, six cgroups (${groups})`);
  // a finished exec's empty group may serve a later exec; at most 4 are kept
  const count = await c.exec(id(), ["sh", "-c", `ls -d ${base}/e* | wc -l`]);
  ok(Number(count.stdout.toString()) <= 4, `groups kept after six execs ended: ${count.stdout}`);
  // a group whose processes outlive their exec is not reused, and is removed once empty
  const bg = await c.exec(id(), ["sh", "-c", "cat /proc/self/cgroup; sleep 1 </dev/null >/dev/null 2>&1 &"]);
  const busy = cgroupOf(bg.stdout);
  for (let i = 0; i < 3; i++) {
    const r = await c.exec(id(), ["cat", "/proc/self/cgroup"]);
    ok(cgroupOf(r.stdout) !== busy, `an exec placed in ${busy}, which still holds a background process`);
  }
  await sleep(1500);
  const gone = await c.exec(id(), ["sh", "-c", `[ -e ${base}/${busy} ] && echo left; true`]);
  eq(gone.stdout.toString(), "", "the emptied group of the background process left behind");
  // guest root moving a process into a kept group: that group is not handed to the next exec
  const hold = id();
  let moved;
  const movedP = new Promise((r) => {
    moved = r;
  });
  const holder = c.exec(
    hold,
    [
      "sh",
      "-c",
      `read g; sleep 5 </dev/null >/dev/null 2>&1 & echo $! > ${base}/$g/cgroup.procs && echo moved; read x`,
    ],
    {
      onStdout: (f) => f.payload.toString().includes("moved") && moved(),
    },
  );
  const free = cgroupOf((await c.exec(id(), ["cat", "/proc/self/cgroup"])).stdout);
  c.send(T.STDIN, hold, Buffer.from(`${free}\n`));
  await movedP;
  const after = cgroupOf((await c.exec(id(), ["cat", "/proc/self/cgroup"])).stdout);
  ok(after !== free, `the next exec got ${free}, where guest root had put a process`);
  c.send(T.STDIN, hold, Buffer.alloc(0), END);
  await holder;
});
test("exec signal", async () => {
  const i = id();
  const p = c.exec(i, ["sleep", "30"], { onStarted: () => c.send(T.SIGNAL, i, new W().u32(15).done()) });
  const r = await p;
  eq(r.exit.signal, 15, "signal");
});
test("exec tty + resize", async () => {
  const i = id();
  const r = await c.exec(i, ["sh", "-c", "stty size; read x; stty size; tty"], {
    tty: true,
    cols: 100,
    rows: 30,
    onStdout: (f) => {
      if (f.payload.toString().includes("30 100")) {
        c.send(T.RESIZE, i, new W().u16(50).u16(20).done());
        c.send(T.STDIN, i, Buffer.from("go\n"));
      }
    },
  });
  const s = r.stdout.toString();
  ok(s.includes("30 100"), `initial size in ${js(s)}`);
  ok(s.includes("20 50"), `resized in ${js(s)}`);
  ok(s.includes("/dev/pts/"), "tty name");
  eq(r.exit.code, 0, "exit");
});
test("small output is held briefly, never until more comes or the exec ends", async () => {
  // "first" is a small read, held for a moment; the process then waits for
  // stdin, which is sent only once "first" has arrived: a hold that waited
  // for more output or for the exit would hang here.
  const i = id();
  const r = await c.exec(i, ["sh", "-c", "echo first; read x; echo second $x"], {
    onStdout: (f) => {
      if (f.payload.toString().includes("first")) c.send(T.STDIN, i, Buffer.from("go\n"));
    },
  });
  eq(r.stdout.toString(), "first\nsecond go\n", "stdout");
  eq(r.exit.code, 0, "exit");
});
test("flow control blocks a flooding process", async () => {
  const i = id();
  let got = 0;
  const p = c.exec(i, ["head", "-c", "1000000", "/dev/zero"], {
    noAck: true,
    onStdout: (f) => {
      got += f.payload.length;
    },
  });
  let exited = false;
  p.then(() => {
    exited = true;
  });
  await sleep(inVm ? 1500 : 500);
  eq(got, 262144, "bytes before window");
  ok(!exited, "process must be blocked");
  c.send(T.WINDOW, i, new W().u32(1000000).done());
  const r = await p;
  eq(r.stdout.length, 1000000, "total");
  eq(r.exit.code, 0, "exit");
});
test("exec 5 MB output with acks", async () => {
  const t0 = Date.now();
  const r = await c.exec(id(), ["head", "-c", "5000000", "/dev/zero"], { waitMs: 120000 });
  eq(r.stdout.length, 5000000, "length");
  return `${(5 / ((Date.now() - t0) / 1000)).toFixed(1)} MB/s`;
});
async function writeFile(i, path, data, mode, flags = 1) {
  const done = c.collect(i);
  c.send(T.WRITE_FILE, i, new W().str(path).u32(mode).u32(flags).done());
  for (let o = 0; o < data.length || o === 0; o += 65536) {
    const chunk = data.subarray(o, o + 65536);
    c.send(T.FILE_DATA, i, chunk, o + 65536 >= data.length ? END : 0);
    if (data.length === 0) break;
  }
  return done;
}
async function readFile(i, _path) {
  const parts = [];
  let consumed = 0;
  const frames = await c.collect(i, (f) => {
    if (f.type === T.FILE_DATA) {
      parts.push(f.payload);
      consumed += f.payload.length;
      if (consumed >= 131072) {
        c.send(T.WINDOW, i, new W().u32(consumed).done());
        consumed = 0;
      }
    }
  });
  return { frames, data: Buffer.concat(parts) };
}
test("write_file + read_file 1.5 MB, mode exact", async () => {
  const data = randomBytes(1500000),
    path = `${tmp}/a/b/c.bin`;
  const i = id();
  // the window is 256 KiB: send within it, waiting for WINDOW frames
  const done = c.collect(i);
  let win = 262144;
  c.handlers.set(
    i,
    ((orig) => (f) => {
      if (f.type === T.WINDOW) win += f.msg.inc;
      else orig(f);
    })(c.handlers.get(i)),
  );
  c.send(T.WRITE_FILE, i, new W().str(path).u32(0o640).u32(1).done());
  for (let o = 0; o < data.length; ) {
    const n = Math.min(65536, data.length - o);
    while (win < n) await sleep(5);
    win -= n;
    c.send(T.FILE_DATA, i, data.subarray(o, o + n), o + n >= data.length ? END : 0);
    o += n;
  }
  const wf = await done;
  const last = wf[wf.length - 1];
  eq(last.type, T.OK, `write result ${js(last.msg)}`);
  eq(last.msg.value, 1500000n, "bytes written");
  const j = id();
  const rp = readFile(j, path);
  c.send(T.READ_FILE, j, new W().str(path).done());
  const { frames, data: back } = await rp;
  eq(frames[0].type, T.FILE_INFO, "info");
  eq(frames[0].msg.size, 1500000n, "size");
  eq(frames[0].msg.mode, 0o640, "mode");
  ok(back.equals(data), "content");
  eq(frames[frames.length - 1].msg.value, 1500000n, "bytes sent");
  const st = await c.exec(id(), ["stat", "-c", "%a", path]);
  eq(st.stdout.toString().trim(), "640", "stat mode");
});
// Large outputs of several execs at once, with small ones between them:
// every byte arrives once and in order, stdout and stderr kept apart.
test("large outputs: exact bytes, in order, beside other streams", async () => {
  const pat = randomBytes(100_000);
  const path = `${tmp}/splice-pattern.bin`;
  const w = await writeFile(id(), path, pat, 0o644);
  eq(w[w.length - 1].type, T.OK, "pattern written");
  const loop = (n, tag) => `i=0; while [ $i -lt ${n} ]; do cat ${path}; echo ${tag} $i >&2; i=$((i+1)); done`;
  const runs = await Promise.all([
    c.exec(id(), ["sh", "-c", loop(20, "a")], { waitMs: 120000 }),
    c.exec(id(), ["sh", "-c", loop(12, "b")], { waitMs: 120000 }),
    ...Array.from({ length: 10 }, (_, k) => c.exec(id(), ["echo", `small ${k}`], { waitMs: 120000 })),
  ]);
  for (const [r, n, tag] of [
    [runs[0], 20, "a"],
    [runs[1], 12, "b"],
  ]) {
    eq(r.stdout.length, pat.length * n, `${tag}: stdout length`);
    for (let k = 0; k < n; k++)
      ok(r.stdout.subarray(k * pat.length, (k + 1) * pat.length).equals(pat), `${tag}: copy ${k}`);
    const lines = Array.from({ length: n }, (_, k) => `${tag} ${k}\n`).join("");
    eq(r.stderr.toString(), lines, `${tag}: stderr`);
    eq(r.exit.code, 0, `${tag}: exit`);
  }
  for (let k = 0; k < 10; k++) eq(runs[2 + k].stdout.toString(), `small ${k}\n`, `small ${k}`);
});
test("write_file mode 4755 despite umask, empty file", async () => {
  const path = `${tmp}/empty`;
  const wf = await writeFile(id(), path, Buffer.alloc(0), 0o4755, 0);
  eq(wf[wf.length - 1].type, T.OK, "ok");
  const j = id();
  const rp = readFile(j, path);
  c.send(T.READ_FILE, j, new W().str(path).done());
  const { frames } = await rp;
  eq(frames[0].msg.mode, 0o4755, "mode");
  eq(frames[1].type, T.FILE_DATA, "data");
  eq(frames[1].flags, END, "END");
  eq(frames[1].payload.length, 0, "empty");
});
test("read_file missing -> NOT_FOUND", async () => {
  const j = id();
  const rp = c.collect(j);
  c.send(T.READ_FILE, j, new W().str("/no/such/file").done());
  const f = await rp;
  eq(f[0].type, T.ERROR, "error");
  eq(f[0].msg.code, 10, "code");
});
test("tcp connect + half close", async () => {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const dir = `${tmp}/www`;
  await c.exec(id(), ["sh", "-c", `mkdir -p ${dir} && echo hello-tcp > ${dir}/index.html`]);
  const srv = id();
  const srvP = c.exec(srv, ["busybox", "httpd", "-f", "-p", `127.0.0.1:${port}`, "-h", dir]);
  let frames;
  for (let attempt = 0; attempt < 100; attempt++) {
    const i = id();
    const p = c.collect(i, (f) => {
      if (f.type === T.CONNECTED) c.send(T.TCP_DATA, i, Buffer.from("GET /index.html HTTP/1.0\r\n\r\n"), END);
    });
    c.send(T.TCP_CONNECT, i, new W().u16(port).str("").done());
    frames = await p;
    if (frames[frames.length - 1].type === T.OK) break;
    await sleep(100);
  }
  const body = Buffer.concat(frames.filter((f) => f.type === T.TCP_DATA).map((f) => f.payload)).toString();
  ok(body.includes("hello-tcp"), `response ${js(body)}`);
  ok(
    frames.some((f) => f.type === T.TCP_DATA && f.flags & END),
    "END from guest",
  );
  c.send(T.RESET, srv, Buffer.alloc(0));
  const r = await srvP;
  eq(r.exit.signal, 9, "reset exit");
  const i = id();
  const p = c.collect(i);
  c.send(T.TCP_CONNECT, i, new W().u16(1).str("127.0.0.1").done());
  const e = await p;
  eq(e[0].type, T.ERROR, "refused");
  eq(e[0].msg.errno, 111, "ECONNREFUSED");
});
// WORKLOAD_LOGS is answered like READ_FILE: FILE_INFO(size), FILE_DATA..END, OK(total written).
async function workloadLogs(maxBytes) {
  const i = id();
  const p = c.collect(i);
  c.send(T.WORKLOAD_LOGS, i, new W().u32(maxBytes).done());
  const fr = await p;
  eq(fr[0].type, T.FILE_INFO, "FILE_INFO first");
  const data = Buffer.concat(fr.filter((f) => f.type === T.FILE_DATA).map((f) => f.payload));
  eq(Number(fr[0].msg.size), data.length, "FILE_INFO size = bytes sent");
  const last = fr.at(-1);
  eq(last.type, T.OK, "OK last");
  return { data: data.toString(), total: Number(last.msg.value) };
}
test("workload logs before any workload are empty", async () => {
  const r = await workloadLogs(0);
  eq(r.data, "", "data");
  eq(r.total, 0, "total");
});
test("workload hold, start, listening, signal, exited", async () => {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const i = id();
  const p = c.collect(i);
  c.events.length = 0;
  c.send(
    T.WORKLOAD_CONFIG,
    i,
    new W()
      .u32(3)
      .u16(port)
      .list(["sh", "-c", `echo wl-out; echo wl-err >&2; exec busybox httpd -f -p ${port} -h /`])
      .list(["WL=1"])
      .str("/")
      .str(asRoot ? "nobody" : "")
      .str("")
      .done(),
  );
  const cf = await p;
  eq(cf[0].type, T.OK, `config ${js(cf[0].msg)}`);
  for (let k = 0; k < 100 && !c.events.some((e) => e.kind === 1); k++) await sleep(20);
  ok(
    c.events.some((e) => e.kind === 1),
    "WORKLOAD_READY",
  );
  const env = await c.exec(id(), ["sh", "-c", "echo $WL"]);
  eq(env.stdout.toString(), "1\n", "exec sees workload env");
  const j = id();
  const sp = c.collect(j);
  c.send(T.WORKLOAD_START, j, Buffer.alloc(0));
  const st = await sp;
  eq(st[0].type, T.OK, "start");
  ok(st[0].msg.value > 0n, "pid");
  for (let k = 0; k < 500 && !c.events.some((e) => e.kind === 3); k++) await sleep(20);
  ok(
    c.events.some((e) => e.kind === 2 && BigInt(e.value) === st[0].msg.value),
    "WORKLOAD_STARTED",
  );
  ok(
    c.events.some((e) => e.kind === 3 && e.value === port),
    "LISTENING",
  );
  const logs = await workloadLogs(0);
  eq(logs.data, "wl-out\nwl-err\n", "workload stdout+stderr in the log ring");
  eq(logs.total, 14, "total bytes written");
  eq((await workloadLogs(7)).data, "wl-err\n", "max_bytes keeps the newest");
  if (asRoot) {
    const st2 = await c.exec(id(), ["sh", "-c", `grep -E '^(Uid|Gid)' /proc/${st[0].msg.value}/status`]);
    ok(
      /Uid:\s+65534/.test(st2.stdout.toString()) && /Gid:\s+65534/.test(st2.stdout.toString()),
      `runs as nobody: ${st2.stdout}`,
    );
  }
  const k2 = id();
  const again = c.collect(k2);
  c.send(T.WORKLOAD_START, k2, Buffer.alloc(0));
  eq((await again)[0].msg.code, 15, "second START is STATE");
  const s = id();
  const sg = c.collect(s);
  c.send(T.WORKLOAD_SIGNAL, s, new W().u32(15).done());
  eq((await sg)[0].type, T.OK, "signal");
  for (let k = 0; k < 250 && !c.events.some((e) => e.kind === 4); k++) await sleep(20);
  const ex = c.events.find((e) => e.kind === 4);
  ok(ex, "WORKLOAD_EXITED");
  eq(ex.value & 0x7f, 15, "raw status signal");
});
test("malformed input", async () => {
  c.frames.length = 0;
  c.w.write(Buffer.from("garbage!garbage!"));
  c.send(T.PING, 0, new W().u64(1).done());
  eq((await c.next((f) => f.type === T.ERROR)).msg.code, 1, "BAD_FRAME");
  await c.next((f) => f.type === T.PONG);
  const big = Buffer.alloc(300000);
  c.send(T.FILE_DATA, 5, big);
  eq((await c.next((f) => f.type === T.ERROR)).msg.code, 2, "FRAME_TOO_LARGE");
  c.send(T.PING, 0, new W().u64(2).done());
  await c.next((f) => f.type === T.PONG);
  c.send(0x7f, 0, Buffer.alloc(3));
  eq((await c.next((f) => f.type === T.ERROR)).msg.code, 3, "UNKNOWN_TYPE");
  c.send(T.EXEC, 77, Buffer.from([1, 2, 3]));
  const bp = await c.next((f) => f.type === T.ERROR);
  eq(bp.msg.code, 4, "BAD_PAYLOAD");
  eq(bp.stream, 77, "on the stream");
  c.send(T.PING, 0, Buffer.from([1]));
  eq((await c.next((f) => f.type === T.ERROR)).stream, 0, "BAD_PAYLOAD ping on 0");
  const sl = id();
  const slp = c.exec(sl, ["sleep", "30"]);
  await sleep(50);
  c.send(T.EXEC, sl, new W().u32(0).u32(0).u16(0).u16(0).list(["true"]).list([]).str("").list([]).done());
  const se = await c.next((f) => f.type === T.ERROR);
  eq(se.msg.code, 6, "STREAM_EXISTS");
  eq(se.stream, 0, "on stream 0");
  c.send(T.RESET, sl, Buffer.alloc(0));
  eq((await slp).exit.signal, 9, "RESET -> EXIT 9");
  c.send(T.STDIN, 4242, Buffer.from("x"));
  c.send(T.PING, 0, new W().u64(3).done());
  await c.next((f) => f.type === T.PONG);
  eq(c.frames.length, 0, `no reply for unknown stream: ${js(c.frames.map((f) => f.type))}`);
});
test("many concurrent execs", async () => {
  const n = inVm ? 100 : 500;
  const rs = await Promise.all(
    Array.from({ length: n }, (_, k) => c.exec(id(), ["echo", String(k)], { waitMs: 120000 })),
  );
  for (const [k, r] of rs.entries()) eq(r.stdout.toString(), `${k}\n`, `stream ${k}`);
  return `${n} streams`;
});
test("stream limit + HELLO reset", async () => {
  const n = inVm && !process.env.E2E_VM_LIMIT ? 0 : 1024;
  if (n) {
    const ids = Array.from({ length: n }, () => id());
    const started = ids.map((i) => c.exec(i, ["sleep", "60"], { onStarted: () => {} }).catch(() => {}));
    void started;
    const extra = id();
    const lp = c.collect(extra);
    c.send(
      T.EXEC,
      extra,
      new W().u32(0).u32(0).u16(0).u16(0).list(["true"]).list([]).str("").list([]).done(),
    );
    eq((await lp)[0].msg.code, 14, "LIMIT");
    for (const i of ids) c.handlers.delete(i);
    await c.hello(98n);
  }
  const s = id();
  const sp = c.exec(s, ["sleep", "60"]);
  let ended = false;
  sp.then(
    () => {
      ended = true;
    },
    () => {},
  );
  await sleep(100);
  c.frames.length = 0;
  await c.hello(99n);
  const r = await c.exec(id(), ["echo", "after-reset"]);
  eq(r.stdout.toString(), "after-reset\n", "exec after reset");
  ok(!ended, "no terminal frame for reset streams");
  c.handlers.delete(s);
  return n ? `${n} streams open, LIMIT on the next` : "reset only";
});

if (mode === "--list") {
  for (const t of tests) console.log(t.name);
  process.exit(0);
}
await connect();
let passed = 0,
  failed = 0;
for (const t of tests) {
  if (only && !only.has(t.name) && t.name !== "hello") continue;
  try {
    const info = await t.fn();
    passed++;
    console.log(`ok   ${t.name}${info ? ` — ${info}` : ""}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${t.name}: ${e.message}`);
  }
}
if (child) {
  // graceful stop: EOF on the agent's stdin
  const exited = new Promise((r) => child.once("exit", (code) => r(code)));
  child.stdin.end();
  const to = setTimeout(() => child.kill("SIGKILL"), 5000);
  const code = await exited;
  clearTimeout(to);
  if (code !== 0) {
    console.log(`FAIL agent exit code ${code} after EOF`);
    failed++;
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
