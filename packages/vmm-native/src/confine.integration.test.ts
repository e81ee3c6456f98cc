import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  createReadStream,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
} from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { probeAccelerator } from "./accel-probe.js";
import { kvmDevicePresent } from "./accelerator.js";
import { openAgentSession } from "./agent-channel.js";
import { DEFAULT_QEMU_ID } from "./confine/options.js";
import { ADDRESS_SPACE_OVERHEAD_MIB, QEMU_NOFILE, QEMU_NPROC } from "./confine/rlimits.js";
import type { VmmError } from "./errors.js";
import { resolveGuestAssets } from "./guest-assets.js";
import { Machine } from "./machine.js";
import { UPLINK_DNS } from "./network/nft.js";
import { type MachineSpec, qemuRequirements } from "./qemu-args.js";
import { findQemu } from "./qemu-binary.js";
import { makeBusyboxRootfs } from "./test-support/busybox-rootfs.js";

// Every test here looks at a real, confined QEMU from the outside (/proc).

const isRoot = process.getuid?.() === 0;
const work = mkdtempSync(join(tmpdir(), "sm-confine-"));
const snapDir = join(work, "snap");
const dist = new URL("../dist/index.js", import.meta.url).pathname;
let spec: MachineSpec;
const machines: Machine[] = [];
const children: ChildProcess[] = [];

async function track(m: Promise<Machine>): Promise<Machine> {
  const got = await m;
  machines.push(got);
  return got;
}

/** `Key: value` fields of /proc/PID/status. */
function status(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, "utf8").split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/** Pids of the QEMU processes running now. */
function qemuPids(): number[] {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, "utf8").startsWith("qemu-system");
      } catch {
        return false;
      }
    });
}

/** [soft, hard] of a row of /proc/PID/limits. */
function limit(pid: number, row: string): [string, string] {
  const line = readFileSync(`/proc/${pid}/limits`, "utf8")
    .split("\n")
    .find((l) => l.startsWith(row));
  const [soft, hard] = line!.slice(row.length).trim().split(/\s+/);
  return [soft!, hard!];
}

async function sha256(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** The run directory of a machine (its agent socket sits in `<run dir>/qemu/`). */
function runDirOf(m: Machine): string {
  return dirname(dirname(m.agentSocketPath));
}

/** Runs a Node ES module script; resolves with its first stdout line parsed as JSON. */
function nodeChild(
  script: string,
  opts: { env?: NodeJS.ProcessEnv; uid?: number; gid?: number } = {},
): { child: ChildProcess; first: Promise<unknown>; stderr: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    stdio: ["ignore", "pipe", "pipe"],
    env: opts.env ?? process.env,
    ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid } : {}),
  });
  children.push(child);
  let err = "";
  child.stderr!.on("data", (d) => {
    err += d;
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const first = new Promise((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d) => {
      out += d;
      const nl = out.indexOf("\n");
      if (nl >= 0) resolve(JSON.parse(out.slice(0, nl)));
    });
    child.once("exit", (code) => reject(new Error(`child exited (${code}) before answering: ${err}`)));
  });
  first.catch(() => {});
  return { child, first, stderr: () => err, exited };
}

beforeAll(async () => {
  const assets = resolveGuestAssets();
  spec = {
    kernel: assets.kernel,
    initrd: assets.initrd,
    memoryMib: 256,
    vcpus: 1,
    rootfs: makeBusyboxRootfs(work),
  };
  const m = await track(Machine.boot(spec, { memoryFile: join(snapDir, "memory.bin") }));
  const s = await openAgentSession(m);
  await s.run({ argv: ["sh", "-c", "echo baked > /baked.txt"] });
  await s.close();
  await m.captureSnapshot(snapDir);
  await m.close();
});

afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  await Promise.all(machines.map((m) => m.close()));
  rmSync(work, { recursive: true, force: true });
});

describe("a confined QEMU", () => {
  it("runs as an unprivileged uid/gid with no supplementary groups, no capabilities, no_new_privs and seccomp", async () => {
    const m = await track(Machine.restore(snapDir));
    const st = status(m.pid);
    const want = isRoot ? String(DEFAULT_QEMU_ID) : String(process.getuid!());
    const wantGid = isRoot ? String(DEFAULT_QEMU_ID) : String(process.getgid!());
    expect(st.Uid!.split(/\s+/)).toEqual([want, want, want, want]);
    expect(st.Gid!.split(/\s+/)).toEqual([wantGid, wantGid, wantGid, wantGid]);
    if (isRoot) expect(st.Groups).toBe("");
    expect(st.NoNewPrivs).toBe("1");
    expect(st.Seccomp).toBe("2"); // filter mode: QEMU's -sandbox
    expect(st.CapEff).toBe("0000000000000000");
    expect(st.CapPrm).toBe("0000000000000000");
    if (isRoot) expect(st.CapBnd).toBe("0000000000000000");
    expect(readFileSync(`/proc/${m.pid}/cmdline`, "utf8").split("\0")).toContain(
      "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
    );
    await m.close();
  });

  it("the accelerator probe's QEMU is confined like a VM's", async () => {
    // The probe boots the guest under an unproven hypervisor; here it is
    // pointed at TCG so it boots on every machine, and watched while it runs.
    const before = new Set(qemuPids());
    const seen: Record<string, string>[] = [];
    const pids = new Set<number>();
    let done = false;
    const watch = (async () => {
      while (!done) {
        for (const pid of qemuPids()) {
          if (before.has(pid)) continue;
          try {
            // the probe's guest has 128 MiB and no disk
            const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
            if (cmd.includes("size=128M") && !cmd.includes("virtio-blk")) {
              seen.push(status(pid));
              pids.add(pid);
            }
          } catch {
            // exited meanwhile
          }
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const assets = resolveGuestAssets();
    const r = await probeAccelerator({
      accel: "tcg",
      cpuModel: "max",
      qemu: findQemu(qemuRequirements({ network: false }, "tcg")),
      kernel: assets.kernel,
      initrd: assets.initrd,
      timeoutMs: 60_000,
    });
    done = true;
    await watch;
    expect(r).toMatchObject({ ok: true, reason: "" });
    expect(seen.length).toBeGreaterThan(0);
    const want = isRoot ? String(DEFAULT_QEMU_ID) : String(process.getuid!());
    for (const st of seen) {
      expect(st.Uid!.split(/\s+/)).toEqual([want, want, want, want]);
      expect(st.NoNewPrivs).toBe("1");
      expect(st.CapEff).toBe("0000000000000000");
    }
    // QEMU installs its seccomp filter (-sandbox) early in its start-up: seen once it has
    expect(seen.some((st) => st.Seccomp === "2")).toBe(true);
    expect([...pids].filter((p) => existsSync(`/proc/${p}`))).toEqual([]); // killed before it returned
  });

  it("gets an environment with nothing of the caller's", async () => {
    process.env.SM_CONFINE_CANARY = "caller-secret";
    try {
      const m = await track(Machine.restore(snapDir));
      const env = readFileSync(`/proc/${m.pid}/environ`, "utf8").split("\0").filter(Boolean);
      expect(env.join("\n")).not.toContain("caller-secret");
      // bubblewrap sets PWD for the directory it starts QEMU in; nothing else is there
      expect(env.filter((e) => !e.startsWith("PWD="))).toEqual([]);
      await m.close();
    } finally {
      delete process.env.SM_CONFINE_CANARY;
    }
  });

  it("sees only its own files, in its own mount and pid namespaces", async () => {
    const m = await track(Machine.restore(snapDir));
    for (const ns of ["mnt", "pid", "ipc", "uts"]) {
      expect(readlinkSync(`/proc/${m.pid}/ns/${ns}`)).not.toBe(readlinkSync(`/proc/self/ns/${ns}`));
    }
    const root = `/proc/${m.pid}/root`;
    expect(existsSync(join(root, homedir()))).toBe(false);
    expect(existsSync(join(root, work))).toBe(false);
    expect(existsSync(join(root, "etc/passwd"))).toBe(false);
    // /etc holds only what ld.so and user networking's DNS forwarding read; resolv.conf is the network
    // policy's (QEMU starts inside the policy's namespaces), not the host's
    expect(readdirSync(join(root, "etc")).sort()).toEqual(["ld.so.cache", "resolv.conf"]);
    expect(readFileSync(join(root, "etc/resolv.conf"), "utf8")).toBe(`nameserver ${UPLINK_DNS}\n`);
    expect(existsSync(join(root, "tmp"))).toBe(false);
    expect(readdirSync(join(root, "vm")).sort()).toEqual(["console.pipe", "initrd", "kernel", "memory.bin"]);
    expect(readdirSync(join(root, "run/vm")).sort()).toEqual(["agent.sock", "qmp.sock"]);
    // only QEMU itself and the sandbox's init live in its pid namespace
    const pids = readdirSync(join(root, "proc")).filter((e) => /^\d+$/.test(e));
    expect(pids.sort()).toEqual(["1", "2"]);
    // the root and the snapshot's memory file are read-only mounts
    const mounts = readFileSync(`/proc/${m.pid}/mountinfo`, "utf8").split("\n");
    const opts = (point: string) =>
      mounts
        .find((l) => l.split(" ")[4] === point)
        ?.split(" ")[5]
        ?.split(",");
    expect(opts("/")).toContain("ro");
    expect(opts("/vm/memory.bin")).toContain("ro");
    expect(opts("/run/vm")).toContain("rw");
    await m.close();
  });

  it("has resource limits: no core dumps, bounded descriptors and processes, address space from guest RAM", async () => {
    const m = await track(Machine.restore(snapDir));
    expect(limit(m.pid, "Max core file size")).toEqual(["0", "0"]);
    expect(limit(m.pid, "Max open files")).toEqual([String(QEMU_NOFILE), String(QEMU_NOFILE)]);
    const as = String((spec.memoryMib + ADDRESS_SPACE_OVERHEAD_MIB[m.accel]) * 1024 * 1024);
    expect(limit(m.pid, "Max address space")).toEqual([as, as]);
    if (isRoot) expect(limit(m.pid, "Max processes")).toEqual([String(QEMU_NPROC), String(QEMU_NPROC)]);
    // the VM works within them
    const s = await openAgentSession(m);
    expect((await s.run({ argv: ["cat", "/baked.txt"] })).stdout.toString()).toBe("baked\n");
    await s.close();
    await m.close();
  });

  it("restores from memory.bin opened read-only: a guest writing all its memory leaves it unchanged", async () => {
    const before = await sha256(join(snapDir, "memory.bin"));
    const m = await track(Machine.restore(snapDir));
    const fds = readdirSync(`/proc/${m.pid}/fd`);
    const memFd = fds.find((fd) => readlinkSync(`/proc/${m.pid}/fd/${fd}`) === "/vm/memory.bin");
    expect(memFd).toBeDefined();
    const flags = Number.parseInt(
      /flags:\s*(\d+)/.exec(readFileSync(`/proc/${m.pid}/fdinfo/${memFd}`, "utf8"))![1]!,
      8,
    );
    expect(flags & 0o3).toBe(0); // O_RDONLY
    const maps = readFileSync(`/proc/${m.pid}/maps`, "utf8")
      .split("\n")
      .filter((l) => l.endsWith("/vm/memory.bin"));
    expect(maps.length).toBeGreaterThan(0);
    for (const l of maps) expect(l.split(/\s+/)[1]).toBe("rw-p"); // private and writable: copy-on-write
    const s = await openAgentSession(m);
    // ~180 MiB of non-zero data into tmpfs, plus the page cache: nearly every guest page is written
    const r = await s.run({
      argv: [
        "sh",
        "-c",
        "yes 0123456789abcdef | head -c 1m > /p && for i in $(seq 100); do cat /p; done > /fill1 && " +
          "for i in $(seq 80); do cat /p; done > /dev/shm/fill2 && sync && grep MemFree /proc/meminfo",
      ],
    });
    expect(r.exitCode).toBe(0);
    expect(Number(/MemFree:\s+(\d+)/.exec(r.stdout.toString())![1])).toBeLessThan(64 * 1024);
    await s.close();
    expect(await sha256(join(snapDir, "memory.bin"))).toBe(before);
    await m.close();
    expect(await sha256(join(snapDir, "memory.bin"))).toBe(before);
  });

  it("keeps its run directory private: 0700 under a per-user root, sockets 0600, QEMU's own dir sticky", async () => {
    const m = await track(Machine.restore(snapDir));
    const dir = runDirOf(m);
    const root = dirname(dir);
    const me = process.getuid!();
    expect(root.endsWith(`/supermachine-${me}`)).toBe(true);
    expect(root.startsWith("/tmp/supermachine/")).toBe(false);
    for (const d of [root, dir]) {
      const st = lstatSync(d);
      expect(st.uid).toBe(me);
      expect(st.mode & 0o7777).toBe(0o700);
    }
    const owner = JSON.parse(readFileSync(join(dir, "owner.json"), "utf8"));
    expect(owner.pid).toBe(process.pid);
    expect(lstatSync(join(dir, "owner.json")).mode & 0o777).toBe(0o600);
    const qdir = lstatSync(join(dir, "qemu"));
    expect(qdir.mode & 0o7777).toBe(isRoot ? 0o1770 : 0o700);
    if (isRoot) expect(qdir.gid).toBe(DEFAULT_QEMU_ID);
    for (const sock of ["qmp.sock", "agent.sock"]) {
      const st = lstatSync(join(dir, "qemu", sock));
      expect(st.isSocket()).toBe(true);
      expect(st.mode & 0o777).toBe(0o600);
      expect(st.uid).toBe(me);
    }
    await m.close();
    expect(existsSync(dir)).toBe(false);
  });

  it("writes snapshots private: directory 0700, files 0600, memory.bin readable by QEMU's group only", async () => {
    const m = await track(Machine.restore(snapDir));
    const snap2 = join(work, "snap2");
    await m.captureSnapshot(snap2, { resume: true }); // a restored VM: the replay helper path
    for (const d of [snapDir, snap2]) {
      expect(statSync(d).mode & 0o777).toBe(0o700);
      for (const f of ["restore.snap", "machine.json"]) expect(statSync(join(d, f)).mode & 0o777).toBe(0o600);
      const mem = statSync(join(d, "memory.bin"));
      expect(mem.mode & 0o777).toBe(isRoot ? 0o640 : 0o600);
      if (isRoot) expect(mem.gid).toBe(DEFAULT_QEMU_ID);
      expect(mem.uid).toBe(process.getuid!());
    }
    const r = await track(Machine.restore(snap2));
    const s = await openAgentSession(r);
    expect((await s.run({ argv: ["cat", "/baked.txt"] })).stdout.toString()).toBe("baked\n");
    await s.close();
    await Promise.all([m.close(), r.close()]);
  });

  it("reaps the run directory of a SIGKILLed owner in the next process, and leaves live owners' alone", async () => {
    const mine = await track(Machine.restore(snapDir));
    const boot = (tag: string) => `
      import { Machine } from ${JSON.stringify(dist)};
      const m = await Machine.boot(${JSON.stringify({ ...spec, rootfs: undefined })});
      console.log(JSON.stringify({ tag: ${JSON.stringify(tag)}, pid: m.pid, log: m.agentSocketPath }));
      setInterval(() => {}, 1000);
    `;
    const first = nodeChild(boot("first"));
    const a = (await first.first) as { pid: number; log: string };
    const deadDir = dirname(dirname(a.log));
    expect(existsSync(deadDir)).toBe(true);
    first.child.kill("SIGKILL");
    await first.exited;
    const deadline = Date.now() + 10_000;
    while (alive(a.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(alive(a.pid)).toBe(false); // no orphan QEMU
    expect(existsSync(deadDir)).toBe(true); // nobody removed it yet
    const second = nodeChild(boot("second"));
    const b = (await second.first) as { pid: number; log: string };
    expect(existsSync(deadDir)).toBe(false);
    expect(existsSync(runDirOf(mine))).toBe(true);
    expect(existsSync(dirname(dirname(b.log)))).toBe(true);
    second.child.kill("SIGKILL");
    await second.exited;
    await mine.close();
  });

  it("says once per process that TCG is not a security boundary", async () => {
    const script = `
      import { Machine } from ${JSON.stringify(dist)};
      const s = ${JSON.stringify({ ...spec, rootfs: undefined, memoryMib: 128 })};
      const ms = [await Machine.boot(s), await Machine.boot(s)];
      await Promise.all(ms.map((m) => m.close()));
      console.log(JSON.stringify({ accel: ms[0].accel }));
    `;
    const c = nodeChild(script);
    const { accel } = (await c.first) as { accel: string };
    await c.exited;
    const lines = c
      .stderr()
      .split("\n")
      .filter((l) => l.includes("SUPERMACHINE_TCG_BOUNDARY"));
    expect(lines).toHaveLength(accel === "tcg" ? 1 : 0);
    for (const l of lines) expect(l).toMatch(/does not treat as a security boundary/);
  });

  it("hands the KVM device to QEMU as a descriptor: there is no /dev/kvm in its sandbox", async () => {
    // Without a /dev/kvm on this host, /dev/null stands in (as in the accelerator tests): QEMU then gets
    // the descriptor and fails on KVM's first ioctl, where opening a path would have said ENOENT.
    const standIn = !kvmDevicePresent();
    if (standIn) process.env.SUPERMACHINE_KVM_DEVICE = "/dev/null";
    try {
      const qemu = findQemu(qemuRequirements({ network: false }, "kvm"));
      const start = Machine.boot(
        { ...spec, rootfs: undefined, network: false, memoryMib: 128 },
        { engine: { accel: "kvm", cpuModel: "qemu64", qemu } },
      );
      if (standIn) {
        const err = (await start.then(
          (m) => {
            machines.push(m);
            throw new Error("QEMU started KVM on /dev/null");
          },
          (e: unknown) => e,
        )) as VmmError;
        expect(err.code).toBe("VM_EXITED");
        expect(err.message).toMatch(/kvm,device=\/dev\/fdset\/3: .*Inappropriate ioctl for device/);
        return;
      }
      const m = await track(start);
      expect(await m.qmp.execute("query-kvm", {})).toEqual({ enabled: true, present: true });
      expect(readFileSync(`/proc/${m.pid}/cmdline`, "utf8").split("\0")).toContain("kvm,device=/dev/fdset/3");
      expect(existsSync(`/proc/${m.pid}/root/dev/kvm`)).toBe(false);
      const fds = readdirSync(`/proc/${m.pid}/fd`).map((fd) => readlinkSync(`/proc/${m.pid}/fd/${fd}`));
      expect(fds).toContain("/dev/kvm"); // the host's node, opened by the engine
      await m.close();
    } finally {
      delete process.env.SUPERMACHINE_KVM_DEVICE;
    }
  });

  it("confines QEMU of an unprivileged caller too: its uid, a user namespace, no_new_privs, seccomp", async () => {
    // as root, play the unprivileged caller with uid 1000 (assets copied where it can read them)
    const home = mkdtempSync(join(tmpdir(), "sm-confine-user-"));
    chmodSync(home, 0o755);
    for (const f of [spec.kernel, spec.initrd])
      copyFileSync(f, join(home, f.endsWith("bzImage") ? "k" : "i"));
    for (const f of ["k", "i"]) chmodSync(join(home, f), 0o644);
    mkdirSync(join(home, "home"), { mode: 0o777 });
    chmodSync(join(home, "home"), 0o777);
    const uid = isRoot ? 1000 : process.getuid!();
    const gid = isRoot ? 1000 : process.getgid!();
    const script = `
      import { Machine, openAgentSession } from ${JSON.stringify(dist)};
      import { readFileSync, readlinkSync } from "node:fs";
      const m = await Machine.boot({ kernel: ${JSON.stringify(join(home, "k"))}, initrd: ${JSON.stringify(join(home, "i"))}, memoryMib: 128, vcpus: 1, network: false });
      const s = await openAgentSession(m);
      await s.close();
      const st = readFileSync("/proc/" + m.pid + "/status", "utf8");
      const ns = (p, n) => readlinkSync("/proc/" + p + "/ns/" + n);
      console.log(JSON.stringify({ st, userns: ns(m.pid, "user") !== ns("self", "user"), mntns: ns(m.pid, "mnt") !== ns("self", "mnt") }));
      await m.close();
    `;
    const c = nodeChild(script, {
      uid,
      gid,
      env: {
        PATH: process.env.PATH,
        HOME: join(home, "home"),
        SUPERMACHINE_ACCEL: "tcg",
        SUPERMACHINE_RUN_DIR: join(home, "home"),
      },
    });
    const r = (await c.first) as { st: string; userns: boolean; mntns: boolean };
    expect(r.st).toMatch(new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s+${uid}\\s+${uid}$`, "m"));
    expect(r.st).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(r.st).toMatch(/^Seccomp:\s+2$/m);
    expect(r.userns).toBe(true); // unprivileged bubblewrap works through a user namespace
    expect(r.mntns).toBe(true);
    await c.exited;
    rmSync(home, { recursive: true, force: true });
  });
});
