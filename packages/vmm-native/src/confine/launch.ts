import { closeSync, constants, existsSync, openSync } from "node:fs";
import { dirname } from "node:path";
import { type Accelerator, kvmDevice } from "../accelerator.js";
import { VmmError } from "../errors.js";
import { guardAgainstOrphans } from "../orphan-guard.js";
import type { RunDir } from "../run-dir.js";
import { cgroupLimits, createVmCgroup, detectCgroupSupport, removeVmCgroup } from "./cgroup.js";
import {
  prepareConsolePipe,
  prepareMemoryFile,
  prepareQemuDir,
  requireReadable,
  sealQemuDirEntries,
} from "./file-access.js";
import { findTool, qemuDataDirs, requireTool, runtimeFiles } from "./host-tools.js";
import { type Confinement, type ConfineOptions, type QemuIdentity, resolveConfinement } from "./options.js";
import { rewriteQemuPaths } from "./qemu-opts.js";
import { prlimitArgs, type QemuRlimits, qemuRlimits } from "./rlimits.js";
import { noticeTcg } from "./tcg-notice.js";

/** QEMU's seccomp filter: no obsolete syscalls, no privilege changes, no new processes, no scheduler tuning. */
export const SECCOMP_OPTION = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/** Where a VM's files appear inside QEMU's mount namespace. */
export const SANDBOX_PATHS = {
  kernel: "/vm/kernel",
  initrd: "/vm/initrd",
  memory: "/vm/memory.bin",
  consolePipe: "/vm/console.pipe",
  qemuDir: "/run/vm",
} as const;

/** A host path shown to QEMU at the same path (e.g. a socket another layer adds). */
export interface ExtraBind {
  path: string;
  /** Bind read-write (default read-only). */
  writable?: boolean;
  /** A device node (bound with device access). */
  device?: boolean;
}

/** The host files of one VM that QEMU needs. Paths are the ones in QEMU's arguments. */
export interface VmFiles {
  kernel: string;
  initrd: string;
  rootfs?: string;
  /** Guest RAM file. */
  memoryFile: string;
  /** Mapped writable (bake, replay helper); otherwise opened read-only (restore). */
  memoryWritable: boolean;
  /** The VM's run directory; QEMU sees only its `qemu/` subdirectory. */
  runDir: RunDir;
  /** The console FIFO QEMU's serial chardev writes to (outside {@link runDir}'s `qemu/`). */
  consolePipe?: string;
  /** Device-state stream a restore loads; handed to QEMU as an open descriptor. */
  incomingState?: string;
  extraBinds?: ExtraBind[];
}

/** What to launch. */
export interface LaunchRequest {
  /** The QEMU executable. */
  qemu: string;
  /** QEMU's arguments, naming host paths (see {@link VmFiles}). */
  args: string[];
  files: VmFiles;
  accel: Accelerator;
  memoryMib: number;
  vcpus: number;
  confine?: ConfineOptions | false;
  /**
   * A command run first, as the caller, that must exec the rest of the
   * command line (e.g. `["nsenter", "--net=/run/netns/x", "--"]` to place
   * QEMU in a network namespace). Everything after it is confined.
   */
  prefix?: string[];
}

/** Which layers a launch applies (for diagnostics and tests). */
export interface LaunchLayers {
  seccomp: boolean;
  /** QEMU's own uid/gid, no supplementary groups (root only). */
  identity?: QemuIdentity;
  noNewPrivs: boolean;
  emptyEnvironment: boolean;
  mountNamespace: boolean;
  pidNamespace: boolean;
  rlimits?: QemuRlimits;
  /** The VM's cgroup v2 directory, or why there is none. */
  cgroup?: string;
  cgroupUnavailable?: string;
  readOnlyMemory: boolean;
}

/** Child descriptor on which bubblewrap reports QEMU's pid. */
export const INFO_FD = 3;
/** First child descriptor of the files handed to QEMU. */
const FIRST_FILE_FD = 4;

/**
 * The final command line, environment and descriptors of a QEMU launch.
 * Spawn `command` with `args`, `env` and stdio
 * `[stdinPipe ? "pipe" : "ignore", "ignore", "pipe", infoFd ? "pipe" : "ignore", ...fds]`
 * (see `QemuProcess`), then call {@link LaunchPlan.spawned}.
 */
export interface LaunchPlan {
  command: string;
  args: string[];
  /**
   * The child's stdin must be a pipe held open while QEMU runs (the macOS
   * orphan guard, see `guardAgainstOrphans`); absent or false: ignored.
   */
  stdinPipe?: boolean;
  env: Record<string, string>;
  /** Open descriptors the child inherits at fd 4, 5, ... */
  fds: number[];
  /**
   * True when the child writes `{"child-pid": N}` on fd 3: the spawned
   * process is bubblewrap's monitor, N the sandbox's init (pid 1 of its pid
   * namespace) and QEMU that init's only child.
   */
  infoFd: boolean;
  /** The spawned process is a monitor: its exit status 128+N means QEMU died of signal N. */
  monitor: boolean;
  layers: LaunchLayers;
  /** The confinement resolved for this launch. */
  confinement: Confinement;
  /** The path QEMU must be given (in QMP commands) for a host path in its run directory. */
  qemuPath(hostPath: string): string;
  /** The `migrate-incoming` URI of {@link VmFiles.incomingState}. */
  incomingUri?: string;
  /** Closes the descriptors opened for the child. Call once spawned (or if spawning failed). */
  spawned(): void;
  /** Once QEMU is up: seals its sockets (see `sealQemuDirEntries`). */
  afterStart(): void;
  /** Once QEMU has exited: removes its cgroup. */
  cleanup(): void;
}

const FDSET = { rootfs: 1, incoming: 2, kvm: 3 } as const;
/** What QEMU creates in its run directory (sealed once it is up). */
const QEMU_SOCKETS = ["qmp.sock", "agent.sock"];
const RESOLV_CONF = "/etc/resolv.conf";

function underDir(path: string, dir: string): string | undefined {
  if (path === dir) return "";
  return path.startsWith(`${dir}/`) ? path.slice(dir.length) : undefined;
}

let cgroupSeq = 0;

/**
 * An unconfined launch: QEMU as the caller, only the orphan guard (the
 * parent-death signal on Linux, a stdin watcher on macOS).
 */
function plainPlan(req: LaunchRequest, confinement: Confinement): LaunchPlan {
  const setpriv = process.platform === "linux" ? findTool("setpriv") : undefined;
  const qemuDir = req.files.runDir.qemuDir;
  const guarded = guardAgainstOrphans(req.qemu, req.args, process.platform, setpriv);
  const all = [...(req.prefix ?? []), guarded.command, ...guarded.args];
  return {
    command: all[0]!,
    args: all.slice(1),
    stdinPipe: guarded.stdinPipe,
    env: { ...process.env } as Record<string, string>,
    fds: [],
    infoFd: false,
    monitor: false,
    confinement,
    layers: {
      seccomp: false,
      noNewPrivs: false,
      emptyEnvironment: false,
      mountNamespace: false,
      pidNamespace: false,
      readOnlyMemory: !req.files.memoryWritable,
    },
    qemuPath: (p) => {
      if (underDir(p, qemuDir) === undefined)
        throw new VmmError("CONFINEMENT_FAILED", `${p} is not in QEMU's run directory`);
      return p;
    },
    incomingUri: req.files.incomingState ? `file:${req.files.incomingState}` : undefined,
    spawned: () => {},
    afterStart: () => sealQemuDirEntries(qemuDir, QEMU_SOCKETS, undefined),
    cleanup: () => {},
  };
}

/**
 * Turns (QEMU binary, arguments, VM files) into the command that runs QEMU
 * confined, modelled on Firecracker's jailer:
 *
 * 1. `prlimit`: no core dumps, bounded descriptors, address space sized from
 *    guest RAM, bounded processes of QEMU's uid;
 * 2. `bwrap`: new mount, pid, ipc, uts and cgroup namespaces; an empty
 *    read-only root showing only QEMU, its libraries and firmware, the VM's
 *    files (`/vm/...`) and its run directory (`/run/vm`); a new session; no
 *    environment; killed with its parent;
 * 3. under root, `setpriv`: QEMU's own uid/gid, no supplementary groups, no
 *    capabilities, `no_new_privs`, parent-death signal;
 * 4. QEMU with `-sandbox` (seccomp) and the root fs, the incoming device
 *    state and /dev/kvm passed as descriptors (`-add-fd`).
 *
 * With a delegated cgroup v2 parent the command first moves itself into a
 * new per-VM cgroup (memory, pids, cpu). Throws `CONFINEMENT_FAILED` when a
 * layer cannot be applied; `confine: false` or `SUPERMACHINE_CONFINE=off`
 * gives the unconfined launch.
 */
export function planQemuLaunch(req: LaunchRequest): LaunchPlan {
  const confinement = resolveConfinement(req.confine);
  if (req.accel === "tcg") noticeTcg(confinement.enabled);
  if (!confinement.enabled) return plainPlan(req, confinement);
  const id = confinement.identity;
  const f = req.files;
  const qemuDir = f.runDir.qemuDir;
  const prlimit = requireTool("prlimit", "util-linux");
  const bwrap = requireTool("bwrap", "bubblewrap");
  const setpriv = id ? requireTool("setpriv", "util-linux") : undefined;

  requireReadable(f.kernel, "the guest kernel", id);
  requireReadable(f.initrd, "the guest initramfs", id);
  prepareMemoryFile(f.memoryFile, f.memoryWritable, id);
  prepareQemuDir(qemuDir, id);
  if (f.consolePipe) prepareConsolePipe(f.consolePipe, id);

  const fds: number[] = [];
  const addFd = (path: string, flags: number, set: number, opaque: string): string[] => {
    fds.push(openSync(path, flags));
    return ["-add-fd", `fd=${FIRST_FILE_FD + fds.length - 1},set=${set},opaque=${opaque}`];
  };
  const closeFds = () => {
    for (const fd of fds.splice(0)) closeSync(fd);
  };
  let cgroup: string | undefined;
  try {
    const fdArgs: string[] = [];
    if (f.rootfs) fdArgs.push(...addFd(f.rootfs, constants.O_RDONLY, FDSET.rootfs, "rootfs"));
    if (f.incomingState) fdArgs.push(...addFd(f.incomingState, constants.O_RDONLY, FDSET.incoming, "state"));
    let args = [...req.args];
    if (req.accel === "kvm") {
      fdArgs.push(...addFd(kvmDevice(), constants.O_RDWR, FDSET.kvm, "kvm"));
      const i = args.indexOf("-accel");
      if (i >= 0 && args[i + 1]?.startsWith("kvm"))
        args[i + 1] = `${args[i + 1]},device=/dev/fdset/${FDSET.kvm}`;
    }
    const extra = f.extraBinds ?? [];
    const map = (p: string): string | undefined => {
      if (p === f.kernel) return SANDBOX_PATHS.kernel;
      if (p === f.initrd) return SANDBOX_PATHS.initrd;
      if (p === f.memoryFile) return SANDBOX_PATHS.memory;
      if (f.consolePipe && p === f.consolePipe) return SANDBOX_PATHS.consolePipe;
      if (f.rootfs && p === f.rootfs) return `/dev/fdset/${FDSET.rootfs}`;
      const rest = underDir(p, qemuDir);
      if (rest !== undefined) return SANDBOX_PATHS.qemuDir + rest;
      if (extra.some((b) => b.path === p)) return p;
      return undefined;
    };
    args = rewriteQemuPaths(args, map, ["/vm/", "/run/vm", "/dev/fdset/", ...extra.map((b) => b.path)]);
    const qemuArgs = ["-sandbox", SECCOMP_OPTION, ...fdArgs, ...args];

    const rt = runtimeFiles(req.qemu);
    const roDirs = new Set([...rt.dirs, ...qemuDataDirs(req.qemu)]);
    const roFiles = new Set([req.qemu, ...rt.files]);
    if (setpriv) {
      const srt = runtimeFiles(setpriv);
      for (const d of srt.dirs) roDirs.add(d);
      for (const x of srt.files) roFiles.add(x);
      roFiles.add(setpriv);
    }
    const mounts: string[][] = [];
    for (const d of roDirs) mounts.push(["--ro-bind", d, d]);
    for (const x of roFiles)
      if (![...roDirs].some((d) => x.startsWith(`${d}/`))) mounts.push(["--ro-bind", x, x]);
    mounts.push(["--ro-bind", f.kernel, SANDBOX_PATHS.kernel]);
    mounts.push(["--ro-bind", f.initrd, SANDBOX_PATHS.initrd]);
    mounts.push([f.memoryWritable ? "--bind" : "--ro-bind", f.memoryFile, SANDBOX_PATHS.memory]);
    if (f.consolePipe) mounts.push(["--bind", f.consolePipe, SANDBOX_PATHS.consolePipe]);
    mounts.push(["--bind", qemuDir, SANDBOX_PATHS.qemuDir]);
    for (const b of extra)
      mounts.push([b.device ? "--dev-bind" : b.writable ? "--bind" : "--ro-bind", b.path, b.path]);
    // QEMU's user networking (libslirp) forwards the guest's DNS to the servers in the host's resolv.conf
    const userNet = args.some((a, i) => args[i - 1] === "-netdev" && a.startsWith("user"));
    if (userNet && existsSync(RESOLV_CONF)) mounts.push(["--ro-bind", RESOLV_CONF, RESOLV_CONF]);
    const parents = new Set<string>();
    for (const m of mounts) {
      for (let d = dirname(m[2]!); d !== "/"; d = dirname(d)) parents.add(d);
    }
    const dirArgs = [...parents]
      .sort((a, b) => a.split("/").length - b.split("/").length || a.localeCompare(b))
      .flatMap((d) => ["--perms", "0755", "--dir", d]);

    const bwrapArgs = [
      "--unshare-pid",
      "--unshare-ipc",
      "--unshare-uts",
      "--unshare-cgroup-try",
      ...(id
        ? [
            "--cap-drop",
            "ALL",
            "--cap-add",
            "CAP_SETUID",
            "--cap-add",
            "CAP_SETGID",
            "--cap-add",
            "CAP_SETPCAP",
          ]
        : ["--unshare-user"]),
      "--die-with-parent",
      "--new-session",
      "--clearenv",
      "--chdir",
      "/",
      "--tmpfs",
      "/",
      ...dirArgs,
      ...mounts.flat(),
      "--proc",
      "/proc",
      "--dev",
      "/dev",
      "--remount-ro",
      "/",
      "--info-fd",
      String(INFO_FD),
      "--",
    ];
    const dropIds =
      id && setpriv
        ? [
            setpriv,
            "--reuid",
            String(id.uid),
            "--regid",
            String(id.gid),
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--pdeathsig",
            "KILL",
            "--",
          ]
        : [];
    const limits = qemuRlimits(req.memoryMib, req.accel, Boolean(id));
    let chain = [
      prlimit,
      ...prlimitArgs(limits),
      "--",
      bwrap,
      ...bwrapArgs,
      ...dropIds,
      req.qemu,
      ...qemuArgs,
    ];

    const cg = detectCgroupSupport(confinement.cgroupParent);
    if (cg.usable) {
      cgroup = createVmCgroup(
        cg.parent,
        `supermachine-${process.pid}-${++cgroupSeq}`,
        cgroupLimits(req.memoryMib, req.vcpus, req.accel),
      );
      f.runDir.recordCgroup(cgroup);
      chain = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', `${cgroup}/cgroup.procs`, ...chain];
    }
    chain = [...(req.prefix ?? []), ...chain];
    const cgroupDir = cgroup;
    return {
      command: chain[0]!,
      args: chain.slice(1),
      env: {},
      fds,
      infoFd: true,
      monitor: true,
      confinement,
      layers: {
        seccomp: true,
        ...(id ? { identity: id } : {}),
        noNewPrivs: true,
        emptyEnvironment: true,
        mountNamespace: true,
        pidNamespace: true,
        rlimits: limits,
        ...(cgroupDir ? { cgroup: cgroupDir } : { cgroupUnavailable: cg.usable ? "" : cg.reason }),
        readOnlyMemory: !f.memoryWritable,
      },
      qemuPath: (p) => {
        const rest = underDir(p, qemuDir);
        if (rest === undefined)
          throw new VmmError("CONFINEMENT_FAILED", `${p} is not in QEMU's run directory`);
        return SANDBOX_PATHS.qemuDir + rest;
      },
      incomingUri: f.incomingState ? `file:/dev/fdset/${FDSET.incoming}` : undefined,
      spawned: closeFds,
      afterStart: () => sealQemuDirEntries(qemuDir, QEMU_SOCKETS, id),
      cleanup: () => {
        if (cgroupDir) removeVmCgroup(cgroupDir);
      },
    };
  } catch (err) {
    closeFds();
    if (cgroup) removeVmCgroup(cgroup);
    throw err;
  }
}
