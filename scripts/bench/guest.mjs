// Guest-side helpers shared by the engine and agent benchmarks: a busybox
// ext4 root file system (the same one the engine's integration tests build),
// the host-native build of the guest agent, timing and rounding helpers, and
// a check that no QEMU this process started is left running.
import { execFileSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { summarize } from "./stats.mjs";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * Builds `dir/rootfs.ext4`: Debian's busybox-static (the host's, or `busybox`: the same
 * version for another architecture) with every applet linked
 * in /bin, /etc/passwd and /etc/group, no journal, 64 MiB. Returns its path.
 */
export function busyboxRootfs(dir, busybox = "/bin/busybox") {
  const root = join(dir, "rootfs");
  const image = join(dir, "rootfs.ext4");
  if (existsSync(image)) return image;
  for (const d of ["bin", "etc", "tmp", "proc", "sys", "dev", "root"])
    mkdirSync(join(root, d), { recursive: true });
  copyFileSync(busybox, join(root, "bin/busybox"));
  const applets = execFileSync("/bin/busybox", ["--list"], { encoding: "utf8" })
    .split("\n")
    .filter((a) => a && a !== "busybox");
  for (const a of applets) symlinkSync("busybox", join(root, "bin", a));
  writeFileSync(join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
  writeFileSync(join(root, "etc/group"), "root:x:0:\n");
  execFileSync("mke2fs", ["-q", "-F", "-t", "ext4", "-O", "^has_journal", "-d", root, image, "64M"]);
  return image;
}

/** Path of `sm-init` built for the host (`build-agent.sh --native`), built on first use. */
export function nativeAgentBinary() {
  const script = join(repoRoot, "packages/vmm-native/guest/build-agent.sh");
  const out = execFileSync("bash", [script, "--native"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  })
    .trim()
    .split("\n")
    .pop();
  const bin = join(out, "sm-init");
  if (!existsSync(bin)) throw new Error(`build-agent.sh --native did not produce ${bin}`);
  return bin;
}

/** Every live (non-zombie) process whose parent chain leads to `root`: `{pid, comm, state, ppid}`. */
export function descendantsOf(root = process.pid) {
  const procs = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = readFileSync(`/proc/${e}/stat`, "utf8");
      const rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
      procs.push({
        pid: Number(e),
        comm: s.slice(s.indexOf("(") + 1, s.lastIndexOf(")")),
        state: rest[0],
        ppid: Number(rest[1]),
      });
    } catch {}
  }
  const out = [];
  const stack = [root];
  while (stack.length) {
    const p = stack.pop();
    for (const c of procs) {
      if (c.ppid !== p || c.state === "Z") continue;
      out.push(c);
      stack.push(c.pid);
    }
  }
  return out;
}

/** Live QEMU processes whose parent chain leads to `root`. */
export function qemuDescendants(root = process.pid) {
  return descendantsOf(root)
    .filter((p) => p.comm.startsWith("qemu-system"))
    .map((p) => p.pid);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Milliseconds since `t0` (a `performance.now()` value). */
export const since = (t0) => performance.now() - t0;

/** Rounds to 0.1. */
export const r1 = (x) => Math.round(x * 10) / 10;

/** Table row `{metric, value, unit, note}` for a list of samples: p50 value, p99/min/max in the note. */
export function sampleRow(metric, xs, unit, note = "", digits = r1) {
  const s = summarize(xs);
  return {
    metric,
    value: digits(s.p50),
    unit,
    note: `p50; n=${s.n}, p99 ${digits(s.p99)}, min ${digits(s.min)}, max ${digits(s.max)}${note ? `; ${note}` : ""}`,
  };
}
