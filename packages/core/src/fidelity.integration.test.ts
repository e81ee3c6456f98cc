// Guest fidelity: what runs under a container runtime runs here, unchanged.
//  1. The differential test: one static probe (test-support/fidelity/probe.c)
//     runs in the same image under crun, with the configuration Docker gives
//     a container, and inside a supermachine VM; every difference must be one
//     of the intended ones of test-support/fidelity-differences.ts (listed
//     with their reasons in the README), on the busybox image as root and as
//     a user with its own WorkingDir, and on the Debian image.
//  2. Real programs using the kernel features containers rely on, in a VM:
//     user namespaces (unshare -Ur), bubblewrap, a FUSE file system, loop
//     devices, inotifywait, a dnotify watcher, io_uring.
// Needs root (crun, overlay mounts), like the rest of the integration suite.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Image, type Pool, type Vm } from "./index.js";
import {
  buildFidelityTools,
  deriveLayout,
  type FidelityTools,
  parseProbe,
  probeDifferences,
  runInContainer,
} from "./test-support/fidelity.js";
import { classifyDifferences, featureNotWorse } from "./test-support/fidelity-differences.js";
import { layoutPath } from "./test-support/images.js";
import { qemuPids, waitFor } from "./test-support/procs.js";

const HOSTNAME = "supermachine";
/** Kernel features every VM must have, whatever the host running the container has. */
const REQUIRED_FEATURES = [
  "ns_user",
  "ns_pid",
  "ns_net",
  "ns_ipc",
  "ns_uts",
  "ns_cgroup",
  "ns_mnt",
  "ns_time",
  "unshare_user",
  "unshare_all_in_userns",
  "unshare_net",
  "unshare_mnt",
  "unshare_pid",
  "unshare_cgroup",
  "seccomp",
  "seccomp_filter",
  "inotify",
  "dnotify",
  "fuse_fs",
  "overlay_fs",
  "io_uring",
  "keyctl",
  "loop_driver",
  "userfaultfd",
  "memfd",
  "pidfd",
  "sysv_shm",
  "posix_mqueue",
  "ptmx",
  "ping_socket",
  "ipv6",
  "landlock",
];
/** Features only root can use (a non-root probe sees them blocked, in a container too). */
const ROOT_FEATURES = [
  "fanotify",
  "dev_fuse",
  "bpf",
  "nftables",
  "dev_loop_control",
  "unshare_net",
  "unshare_mnt",
  "unshare_pid",
  "unshare_cgroup",
];

let tools: FidelityTools;
let work: string;
let snapshotsDir: string;
const layouts: Record<string, { dir: string; tag: string }> = {};
const pools = new Map<string, Pool>();

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error("the fidelity test needs root (crun and overlay mounts)");
  tools = buildFidelityTools();
  work = mkdtempSync(join(tmpdir(), "sm-fidelity-"));
  snapshotsDir = join(work, "snapshots");
  const busybox = layoutPath("busybox");
  const debian = layoutPath("debian");
  if (!busybox || !debian)
    throw new Error("the busybox and debian test layouts are needed (scripts/test-images)");
  layouts.busybox = { dir: busybox, tag: "latest" };
  layouts.debian = { dir: debian, tag: "bookworm" };
  // busybox with a User, a WorkingDir that the image lacks, and an Env of its own
  const user = join(work, "busybox-user");
  deriveLayout(busybox, "latest", user, "latest", (c) => {
    c.User = "www";
    c.WorkingDir = "/home/www/app";
    c.Env = [...(c.Env ?? []), "APP_MODE=fidelity"];
  });
  layouts["busybox-user"] = { dir: user, tag: "latest" };
});

afterAll(async () => {
  for (const p of pools.values()) await p.shutdown();
  if (work) rmSync(work, { recursive: true, force: true });
  expect(await waitFor(() => qemuPids().length === 0, 10_000)).toBe(true);
});

/** A VM of one of the test layouts (one pool per layout, baked on first use). */
async function vmOf(name: string): Promise<Vm> {
  let pool = pools.get(name);
  if (!pool) {
    const l = layouts[name];
    if (!l) throw new Error(`no layout ${name}`);
    const image = await Image.build({ ref: `oci:${l.dir}:${l.tag}`, snapshotsDir });
    pool = await image.pool({ min: 0, max: 1 });
    pools.set(name, pool);
  }
  return pool.acquire();
}

async function sh(vm: Vm, script: string, timeoutMs = 60_000): Promise<string> {
  const r = await vm.exec({ argv: ["sh", "-c", script], timeoutMs });
  expect(r.exitCode, `${script}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(0);
  return r.stdout.toString();
}

describe("differential: the same probe under crun and in a VM", () => {
  for (const name of ["busybox", "busybox-user", "debian"]) {
    it(`${name}: every difference is an intended one`, async () => {
      const l = layouts[name] as { dir: string; tag: string };
      const { stdout, cappedRlimits } = await runInContainer({
        layout: l.dir,
        tag: l.tag,
        hostname: HOSTNAME,
        argv: ["/sm-probe"],
        programs: { "/sm-probe": tools.probe },
      });
      const container = parseProbe(stdout);
      await using vm = await vmOf(name);
      await vm.writeFile("/sm-probe", readFileSync(tools.probe), 0o755);
      const r = await vm.exec({ argv: ["/sm-probe"], timeoutMs: 120_000 });
      expect(r.exitCode, r.stderr.toString()).toBe(0);
      const inVm = parseProbe(r.stdout.toString());
      expect(container.size).toBeGreaterThan(80);
      expect(inVm.size).toBeGreaterThan(80);

      const diffs = probeDifferences(container, inVm);
      const { explained, unexplained } = classifyDifferences(diffs, { cappedRlimits });
      const fmt = (d: { key: string; container?: string; vm?: string }) =>
        `${d.key}: container=${d.container ?? "(none)"} vm=${d.vm ?? "(none)"}`;
      console.log(
        `${name}: ${container.size} probe lines, ${explained.length} intended differences:\n` +
          explained.map((d) => `  [${d.id}] ${fmt(d)}`).join("\n"),
      );
      expect(unexplained.map(fmt)).toEqual([]);

      // what a container gives, checked on the VM's own values too
      const root = name !== "busybox-user";
      const v = (k: string) => inVm.get(k);
      expect(v("umask")).toBe("0022");
      expect(v("env.HOSTNAME")).toBe(HOSTNAME);
      expect(v("env.PATH")).toBe("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
      expect(v("env.HOME")).toBe(root ? "/root" : "/home/www");
      expect(v("env.TERM")).toBeUndefined(); // no tty
      expect(v("id.uid")).toBe(root ? "0" : "1000");
      expect(v("cwd")).toBe(root ? "/" : "/home/www/app");
      if (!root) expect(v("env.APP_MODE")).toBe("fidelity");
      expect(v("rlimit.nofile")).toBe("1024:524288");
      expect(v("rlimit.nproc")).toBe("inf:inf");
      expect(v("host.hostname")).toBe(HOSTNAME);
      expect(v("host.hosts_self")).toBe("local");
      expect(v("sysctl.ping_group_range")).toBe("0 2147483647");
      expect(v("sysctl.ip_unprivileged_port_start")).toBe("0");
      expect(v("mount./dev/shm")).toBe("tmpfs rw,nosuid,nodev,noexec");
      expect(v("mount./dev/mqueue")).toBe("mqueue rw,nosuid,nodev,noexec");
      expect(v("mount./dev/pts")).toBe("devpts rw,nosuid,noexec gid=5,mode=620,ptmxmode=666");
      expect(v("dev./dev/ptmx")).toBe("lnk -> pts/ptmx");
      expect(v("dev./dev/fd")).toBe("lnk -> /proc/self/fd");
      expect(v("cgroup.fs")).toBe("cgroup2");
      expect(v("cgroup.controllers_file")).toBe("yes");
      // the root file system: one inode space, one st_dev, hard links, df
      expect(v("fs.readdir_ino_matches_stat")).toBe("yes");
      expect(v("fs.st_dev_uniform")).toBe("yes");
      expect(v("fs.hardlink")).toBe("ok");
      expect(v("fs.statvfs")).toBe("sized");
      expect(v("fs.dev_shm_writable")).toBe("yes");
      expect(["yes", "n/a"]).toContain(v("fs.copy_up_keeps_ino"));
      // kernel features: all there, and none worse than in the container
      for (const f of REQUIRED_FEATURES) {
        if (!root && ROOT_FEATURES.includes(f)) continue;
        expect(`${f}=${v(`feature.${f}`)}`).toBe(`${f}=ok`);
      }
      if (root) for (const f of ROOT_FEATURES) expect(`${f}=${v(`feature.${f}`)}`).toBe(`${f}=ok`);
      for (const [k, c] of container) {
        if (k.startsWith("feature.")) expect(featureNotWorse(c, v(k)), `${k}: ${c} vs ${v(k)}`).toBe(true);
      }
    });
  }
});

describe("real programs using kernel features, in a VM", () => {
  it("busybox: unshare -Ur as an unprivileged user, and a loop-mounted ext2 image", async () => {
    await using vm = await vmOf("busybox");
    const out = await sh(vm, `su www -c "unshare -Ur sh -c 'id; cat /proc/self/uid_map'"`);
    expect(out).toMatch(/^uid=0\(root\) gid=0\(root\)/);
    expect(out).toMatch(/^\s*0\s+1000\s+1$/m);
    const loop = await sh(
      vm,
      "dd if=/dev/zero of=/tmp/disk.img bs=1k count=2048 2>/dev/null && mke2fs -q -F /tmp/disk.img && " +
        "mkdir -p /mnt/loop && mount -o loop /tmp/disk.img /mnt/loop && echo on-a-loop > /mnt/loop/f && " +
        "grep /mnt/loop /proc/mounts && umount /mnt/loop && mount -o loop,ro /tmp/disk.img /mnt/loop && cat /mnt/loop/f && umount /mnt/loop",
    );
    expect(loop).toMatch(/^\/dev\/loop\d+ \/mnt\/loop ext2 /m);
    expect(loop).toContain("on-a-loop\n");
  });

  describe("debian", () => {
    let vm: Vm;
    beforeAll(async () => {
      vm = await vmOf("debian");
      await vm.writeFile("/usr/local/bin/dnotify-watch", readFileSync(tools.dnotifyWatch), 0o755);
      await vm.writeFile("/usr/local/bin/uring-cat", readFileSync(tools.uringCat), 0o755);
    });
    afterAll(async () => {
      await vm?.release();
    });

    it("unshare -Ur id (util-linux) as nobody", async () => {
      const out = await sh(
        vm,
        "setpriv --reuid=65534 --regid=65534 --clear-groups unshare -Ur sh -c 'id; cat /proc/self/uid_map'",
      );
      expect(out).toMatch(/^uid=0\(root\) gid=0\(root\)/);
      expect(out).toMatch(/^\s*0\s+65534\s+1$/m);
    });

    it("bubblewrap runs a command in new namespaces, as root and unprivileged", async () => {
      const outer = (await sh(vm, "readlink /proc/self/ns/net /proc/self/ns/pid")).split("\n");
      const bwrap =
        "bwrap --ro-bind / / --proc /proc --dev /dev --tmpfs /tmp --unshare-all --die-with-parent " +
        "sh -c 'readlink /proc/self/ns/net /proc/self/ns/pid; id -u; touch /etc/bwrap-test 2>/dev/null || echo read-only'";
      for (const prefix of ["", "setpriv --reuid=65534 --regid=65534 --clear-groups "]) {
        const lines = (await sh(vm, prefix + bwrap)).split("\n");
        expect(lines[0]).toMatch(/^net:\[\d+\]$/);
        expect(lines[0]).not.toBe(outer[0]);
        expect(lines[1]).not.toBe(outer[1]);
        expect(lines[2]).toBe(prefix ? "65534" : "0");
        expect(lines[3]).toBe("read-only");
      }
    });

    it("a FUSE file system (fuse2fs) is mounted and read", async () => {
      const dir = mkdtempSync(join(work, "fuse-src-"));
      mkdirSync(join(dir, "sub"));
      writeFileSync(join(dir, "sub", "hello.txt"), "hello from fuse\n");
      const img = join(work, "fuse.img");
      execFileSync("mke2fs", ["-q", "-F", "-t", "ext4", "-d", dir, img, "4M"]);
      await vm.writeFile("/tmp/fuse.img", readFileSync(img));
      const out = await sh(
        vm,
        "mkdir -p /mnt/fuse && fuse2fs /tmp/fuse.img /mnt/fuse -o ro && grep ' /mnt/fuse ' /proc/mounts && " +
          "cat /mnt/fuse/sub/hello.txt && umount /mnt/fuse && ! grep -q ' /mnt/fuse ' /proc/mounts",
      );
      expect(out).toMatch(/^\/tmp\/fuse\.img \/mnt\/fuse fuse\.ext4 /m);
      expect(out).toContain("hello from fuse\n");
    });

    it("inotifywait sees a file created", async () => {
      const out = await sh(
        vm,
        "mkdir -p /tmp/watched && (inotifywait -t 30 -e create /tmp/watched > /tmp/inotify.out 2>/tmp/inotify.err &) && " +
          "for i in $(seq 300); do grep -q 'Watches established' /tmp/inotify.err 2>/dev/null && break; sleep 0.1; done && " +
          "touch /tmp/watched/new-file && for i in $(seq 300); do [ -s /tmp/inotify.out ] && break; sleep 0.1; done; cat /tmp/inotify.out",
      );
      expect(out).toBe("/tmp/watched/ CREATE new-file\n");
    });

    it("a dnotify watcher (fcntl F_NOTIFY) sees a file created", async () => {
      const out = await sh(
        vm,
        "mkdir -p /tmp/dn && (dnotify-watch /tmp/dn > /tmp/dn.out 2>&1; echo exit=$? >> /tmp/dn.out) & " +
          "for i in $(seq 300); do grep -q ready /tmp/dn.out 2>/dev/null && break; sleep 0.1; done; " +
          "touch /tmp/dn/new-file; for i in $(seq 300); do grep -q exit= /tmp/dn.out && break; sleep 0.1; done; cat /tmp/dn.out",
      );
      expect(out).toMatch(/^ready\ndnotify: \/tmp\/dn changed \(fd \d+\)\nexit=0\n$/);
    });

    it("io_uring reads a file (openat, read, close through the rings)", async () => {
      const out = await sh(vm, "printf 'through io_uring\\n' > /tmp/uring.txt && uring-cat /tmp/uring.txt");
      expect(out).toBe("through io_uring\n");
    });
  });
});
