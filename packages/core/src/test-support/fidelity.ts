// The differential test's host side: builds the static probe (and the small
// programs the kernel-feature tests run), runs it in an image under `crun`
// with the configuration Docker would give the container, and compares its
// output with the same probe run inside a supermachine VM.
import { execFile, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statfsSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));

/** Host paths of the static programs copied into guests and containers. */
export interface FidelityTools {
  /** Prints what a process sees (see fidelity/probe.c). */
  probe: string;
  /** Waits for a directory change through dnotify. */
  dnotifyWatch: string;
  /** Reads a file through io_uring. */
  uringCat: string;
}

const SOURCES = { probe: "probe.c", dnotifyWatch: "dnotify-watch.c", uringCat: "uring-cat.c" } as const;

/**
 * Builds the programs of `fidelity/` static with musl (cached by source hash
 * under the OS temp dir). The kernel's UAPI headers come from the host's
 * linux-libc-dev through a directory of links, as musl ships none.
 */
export function buildFidelityTools(): FidelityTools {
  const src = join(here, "fidelity");
  const h = createHash("sha256");
  for (const f of Object.values(SOURCES)) h.update(f).update(readFileSync(join(src, f)));
  const dir = join(tmpdir(), "sm-fidelity-tools", h.digest("hex").slice(0, 16));
  const out = {
    probe: join(dir, "probe"),
    dnotifyWatch: join(dir, "dnotify-watch"),
    uringCat: join(dir, "uring-cat"),
  };
  if (Object.values(out).every((p) => existsSync(p))) return out;
  const tmp = `${dir}.tmp.${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const headers = join(tmp, "kernel-headers");
  mkdirSync(headers, { recursive: true });
  symlinkSync("/usr/include/linux", join(headers, "linux"));
  symlinkSync("/usr/include/x86_64-linux-gnu/asm", join(headers, "asm"));
  symlinkSync("/usr/include/asm-generic", join(headers, "asm-generic"));
  for (const file of Object.values(SOURCES)) {
    const name = file.replace(/\.c$/, "");
    execFileSync(
      "musl-gcc",
      [
        "-static",
        "-Os",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-isystem",
        headers,
        "-o",
        join(tmp, name),
        join(src, file),
      ],
      { stdio: ["ignore", "inherit", "inherit"] },
    );
  }
  rmSync(headers, { recursive: true });
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return out;
}

/** The fields of an OCI image config the runtime spec is made from. */
export interface RawImageConfig {
  User?: string;
  WorkingDir?: string;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  [k: string]: unknown;
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

function blobPath(layout: string, digest: string): string {
  const [alg, hex] = digest.split(":");
  return join(layout, "blobs", alg as string, hex as string);
}

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, "utf8")) as T;
}

function manifestDescriptor(layout: string, tag: string): Descriptor {
  const index = readJson<{ manifests: Descriptor[] }>(join(layout, "index.json"));
  const d = index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag);
  if (!d) throw new Error(`${layout} has no tag ${tag}`);
  return d;
}

/** The image config (`config` object of the config blob) of `layout:tag`. */
export function readImageConfig(layout: string, tag: string): RawImageConfig {
  const manifest = readJson<{ config: Descriptor }>(blobPath(layout, manifestDescriptor(layout, tag).digest));
  return readJson<{ config?: RawImageConfig }>(blobPath(layout, manifest.config.digest)).config ?? {};
}

/**
 * Copies `src:srcTag` to a new layout `dst:tag` whose config is changed by
 * `patch` (same layers, new config and manifest blobs).
 */
export function deriveLayout(
  src: string,
  srcTag: string,
  dst: string,
  tag: string,
  patch: (config: RawImageConfig) => void,
): void {
  rmSync(dst, { recursive: true, force: true });
  cpSync(src, dst, { recursive: true });
  const md = manifestDescriptor(src, srcTag);
  const manifest = readJson<{ config: Descriptor; [k: string]: unknown }>(blobPath(src, md.digest));
  const full = readJson<{ config?: RawImageConfig; [k: string]: unknown }>(
    blobPath(src, manifest.config.digest),
  );
  full.config ??= {};
  patch(full.config);
  const put = (bytes: Buffer): Descriptor & { digest: string } => {
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    writeFileSync(blobPath(dst, digest), bytes);
    return { mediaType: "", digest, size: bytes.length };
  };
  const cfg = put(Buffer.from(JSON.stringify(full)));
  manifest.config = { ...manifest.config, digest: cfg.digest, size: cfg.size };
  const man = put(Buffer.from(JSON.stringify(manifest)));
  const index = {
    schemaVersion: 2,
    manifests: [
      {
        mediaType: md.mediaType,
        digest: man.digest,
        size: man.size,
        annotations: { "org.opencontainers.image.ref.name": tag },
      },
    ],
  };
  writeFileSync(join(dst, "index.json"), JSON.stringify(index));
}

/** Docker's default capability set (moby's `oci/caps/defaults.go`). */
const DOCKER_CAPS = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

/** Paths Docker masks and makes read-only in /proc and /sys. */
const DOCKER_MASKED = [
  "/proc/asound",
  "/proc/acpi",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/sys/firmware",
  "/sys/devices/virtual/powercap",
];
const DOCKER_READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/**
 * The rlimits the guest gives every process (see the agent's guest-env.c):
 * Docker on a systemd host (nofile 1024:524288, nproc and core unlimited)
 * and the kernel's defaults for the rest. Written into the container's spec
 * so the container gets what a Docker host gives, not this test's limits.
 */
const RLIMITS: Array<[string, number | "inf", number | "inf"]> = [
  ["RLIMIT_NOFILE", 1024, 524288],
  ["RLIMIT_NPROC", "inf", "inf"],
  ["RLIMIT_CORE", "inf", "inf"],
  ["RLIMIT_STACK", 8 << 20, "inf"],
  ["RLIMIT_MEMLOCK", 8 << 20, 8 << 20],
  ["RLIMIT_MSGQUEUE", 819200, 819200],
  ["RLIMIT_NICE", 0, 0],
  ["RLIMIT_RTPRIO", 0, 0],
  ["RLIMIT_AS", "inf", "inf"],
  ["RLIMIT_CPU", "inf", "inf"],
  ["RLIMIT_DATA", "inf", "inf"],
  ["RLIMIT_FSIZE", "inf", "inf"],
  ["RLIMIT_LOCKS", "inf", "inf"],
  ["RLIMIT_RSS", "inf", "inf"],
  ["RLIMIT_RTTIME", "inf", "inf"],
];
/** JSON cannot carry 2^64-1 as a JS number: written as this string, then replaced by the literal. */
const RLIM_INFINITY = "__RLIM_INFINITY__";

/** uid, gid and supplementary groups of an image `User` in rootfs, as Docker resolves them. */
export function resolveImageUser(
  rootfs: string,
  spec: string,
): { uid: number; gid: number; groups: number[] } {
  const lines = (f: string) => {
    try {
      return readFileSync(join(rootfs, f), "utf8").split("\n").filter(Boolean);
    } catch {
      return [];
    }
  };
  const passwd = lines("etc/passwd").map((l) => l.split(":"));
  const group = lines("etc/group").map((l) => l.split(":"));
  const [u = "", g] = (spec || "0").split(":");
  const entry = passwd.find((f) => f[0] === u || (/^\d+$/.test(u) && f[2] === u));
  if (!entry && !/^\d+$/.test(u)) throw new Error(`user ${u} is not in the image's /etc/passwd`);
  const uid = entry ? Number(entry[2]) : Number(u);
  let gid = entry ? Number(entry[3]) : 0;
  if (g !== undefined) {
    const ge = group.find((f) => f[0] === g);
    gid = /^\d+$/.test(g) ? Number(g) : Number(ge?.[2]);
  }
  const name = entry?.[0];
  const groups = name
    ? group.filter((f) => (f[3] ?? "").split(",").includes(name)).map((f) => Number(f[2]))
    : [];
  return { uid, gid, groups };
}

/** `/etc/hosts` as Docker writes it (the hostname on the container's own address). */
export function dockerHosts(hostname: string, address: string): string {
  return [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "ff00::0\tip6-mcastprefix",
    "ff02::1\tip6-allnodes",
    "ff02::2\tip6-allrouters",
    `${address}\t${hostname}`,
    "",
  ].join("\n");
}

/** This process's hard limit for an `RLIMIT_*` name (from /proc/self/limits). */
function hostHardLimit(type: string): number | "inf" {
  const names: Record<string, string> = {
    RLIMIT_NOFILE: "Max open files",
    RLIMIT_NPROC: "Max processes",
    RLIMIT_CORE: "Max core file size",
    RLIMIT_STACK: "Max stack size",
    RLIMIT_MEMLOCK: "Max locked memory",
    RLIMIT_MSGQUEUE: "Max msgqueue size",
    RLIMIT_NICE: "Max nice priority",
    RLIMIT_RTPRIO: "Max realtime priority",
    RLIMIT_AS: "Max address space",
    RLIMIT_CPU: "Max cpu time",
    RLIMIT_DATA: "Max data size",
    RLIMIT_FSIZE: "Max file size",
    RLIMIT_LOCKS: "Max file locks",
    RLIMIT_RSS: "Max resident set",
    RLIMIT_RTTIME: "Max realtime timeout",
  };
  const line = readFileSync("/proc/self/limits", "utf8")
    .split("\n")
    .find((l) => l.startsWith(names[type] ?? "?"));
  const hard = line?.slice(26).trim().split(/\s+/)[1];
  return !hard || hard === "unlimited" ? "inf" : Number(hard);
}

/** True when the host's /sys/fs/cgroup is a cgroup v2 mount (else v1 hierarchies). */
function hostCgroupV2(): boolean {
  try {
    return statfsSync("/sys/fs/cgroup").type === 0x63677270;
  } catch {
    return false;
  }
}

/**
 * Runs `argv` (with `programs` bind-mounted read-only at their guest paths)
 * in the image `layout:tag` under crun, with the runtime spec Docker makes
 * for `docker run` of that image: the image's Env, User (and the groups that
 * list it), WorkingDir; Docker's capabilities, mounts, masked and read-only
 * paths, sysctls, /etc/hosts, /etc/hostname and /etc/resolv.conf; the root
 * an overlay over the unpacked layers. Docker's seccomp profile is not
 * applied (it only filters system calls). Needs root. Returns stdout, and
 * the rlimits that had to be lowered to this host's hard limits (raising a
 * hard limit needs CAP_SYS_RESOURCE, which a sandboxed host may lack).
 */
export async function runInContainer(opts: {
  layout: string;
  tag: string;
  hostname: string;
  argv: string[];
  programs: Record<string, string>;
}): Promise<{ stdout: string; cappedRlimits: string[] }> {
  const work = mkdtempSync(join(tmpdir(), "sm-crun-"));
  const id = `sm-fidelity-${process.pid}-${Date.now()}`;
  const bundle = join(work, "bundle");
  const merged = join(work, "merged");
  let mounted = false;
  try {
    await run("umoci", ["unpack", "--image", `${opts.layout}:${opts.tag}`, bundle]);
    for (const d of ["upper", "work", "merged", "etc"]) mkdirSync(join(work, d));
    await run("mount", [
      "-t",
      "overlay",
      "overlay",
      "-o",
      `lowerdir=${bundle}/rootfs,upperdir=${work}/upper,workdir=${work}/work,index=off`,
      merged,
    ]);
    mounted = true;
    const image = readImageConfig(opts.layout, opts.tag);
    const user = resolveImageUser(join(bundle, "rootfs"), image.User ?? "");
    const env = [...(image.Env ?? [])];
    if (!env.some((e) => e.startsWith("PATH=")))
      env.unshift("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    env.push(`HOSTNAME=${opts.hostname}`);
    const cwd = image.WorkingDir || "/";
    mkdirSync(join(merged, cwd), { recursive: true });
    writeFileSync(join(work, "etc", "hosts"), dockerHosts(opts.hostname, "127.0.1.1"));
    writeFileSync(join(work, "etc", "hostname"), `${opts.hostname}\n`);
    writeFileSync(join(work, "etc", "resolv.conf"), "nameserver 10.0.2.3\n");
    const bind = (source: string, destination: string, ro = false) => ({
      destination,
      type: "bind",
      source,
      options: ["rbind", "rprivate", ...(ro ? ["ro"] : [])],
    });
    const caps = user.uid === 0 ? DOCKER_CAPS : [];
    const capped = new Set<string>();
    const v2 = hostCgroupV2();
    const spec = {
      ociVersion: "1.0.2",
      process: {
        terminal: false,
        user: { uid: user.uid, gid: user.gid, additionalGids: user.groups },
        args: opts.argv,
        env,
        cwd,
        capabilities: { bounding: DOCKER_CAPS, effective: caps, permitted: caps },
        rlimits: RLIMITS.map(([type, soft, hard]) => {
          const cap = hostHardLimit(type);
          const clamp = (v: number | "inf"): number | "inf" => {
            if (cap === "inf" || (v !== "inf" && v <= cap)) return v;
            capped.add(type);
            return cap;
          };
          const s2 = clamp(soft);
          const h2 = clamp(hard);
          return {
            type,
            soft: s2 === "inf" ? RLIM_INFINITY : s2,
            hard: h2 === "inf" ? RLIM_INFINITY : h2,
          };
        }),
        noNewPrivileges: false,
        oomScoreAdj: 0,
      },
      root: { path: merged, readonly: false },
      hostname: opts.hostname,
      mounts: [
        { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
        {
          destination: "/dev",
          type: "tmpfs",
          source: "tmpfs",
          options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
          destination: "/dev/pts",
          type: "devpts",
          source: "devpts",
          options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
        {
          destination: "/sys/fs/cgroup",
          type: "cgroup",
          source: "cgroup",
          options: ["ro", "nosuid", "noexec", "nodev"],
        },
        {
          destination: "/dev/mqueue",
          type: "mqueue",
          source: "mqueue",
          options: ["nosuid", "noexec", "nodev"],
        },
        {
          destination: "/dev/shm",
          type: "tmpfs",
          source: "shm",
          options: ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
        },
        bind(join(work, "etc", "resolv.conf"), "/etc/resolv.conf"),
        bind(join(work, "etc", "hostname"), "/etc/hostname"),
        bind(join(work, "etc", "hosts"), "/etc/hosts"),
        ...Object.entries(opts.programs).map(([dest, src]) => bind(src, dest, true)),
      ],
      linux: {
        // Docker's namespaces on a cgroup v2 host (a private cgroup namespace)
        namespaces: [
          { type: "pid" },
          { type: "network" },
          { type: "ipc" },
          { type: "uts" },
          { type: "mount" },
          { type: "cgroup" },
        ],
        sysctl: { "net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647" },
        maskedPaths: DOCKER_MASKED,
        readonlyPaths: DOCKER_READONLY,
      },
    };
    writeFileSync(
      join(bundle, "config.json"),
      JSON.stringify(spec, null, 1).replaceAll(`"${RLIM_INFINITY}"`, "18446744073709551615"),
    );
    // crun refuses a host with cgroup v1 hierarchies next to a cgroup2 mount
    // ("hybrid"); on such a host it runs in a mount namespace whose
    // /sys/fs/cgroup is the cgroup2 hierarchy alone, as on a cgroup v2 host.
    const crun = [
      "crun",
      "--cgroup-manager=disabled",
      "--root",
      join(work, "state"),
      "run",
      "--bundle",
      bundle,
      id,
    ];
    const argv = v2
      ? crun
      : [
          "unshare",
          "--mount",
          "--propagation",
          "private",
          "sh",
          "-c",
          'umount -l /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$@"',
          "sh",
          ...crun,
        ];
    const { stdout } = await run(argv[0] as string, argv.slice(1), { maxBuffer: 1 << 24, timeout: 120_000 });
    return { stdout, cappedRlimits: [...capped].map((r) => r.replace(/^RLIMIT_/, "").toLowerCase()) };
  } finally {
    await run("crun", ["--root", join(work, "state"), "delete", "--force", id]).catch(() => {});
    if (mounted) await run("umount", ["-l", merged]).catch(() => {});
    rmSync(work, { recursive: true, force: true });
  }
}

/** Parses the probe's `key<TAB>value` lines. */
export function parseProbe(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split("\n")) {
    const i = line.indexOf("\t");
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1));
  }
  return m;
}

/** One key whose value differs between the container and the VM. */
export interface ProbeDifference {
  key: string;
  container?: string;
  vm?: string;
}

/** Every key whose value differs (or that only one side has). */
export function probeDifferences(container: Map<string, string>, vm: Map<string, string>): ProbeDifference[] {
  const keys = [...new Set([...container.keys(), ...vm.keys()])].sort();
  return keys
    .filter((k) => container.get(k) !== vm.get(k))
    .map((key) => ({ key, container: container.get(key), vm: vm.get(key) }));
}
