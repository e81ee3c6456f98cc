// The differences between a container (crun, Docker's configuration) and a
// supermachine VM of the same image that are intended, each with its reason.
// packages/core/README.md ("Guest fidelity") lists the same ones; a
// difference that no rule here explains fails the differential test.
import type { ProbeDifference } from "./fidelity.js";

/** What a rule may look at besides the difference itself. */
export interface DifferenceContext {
  /** rlimits whose container value had to be lowered to this host's hard limit. */
  cappedRlimits: string[];
}

/** One intended difference. */
export interface ExplainedDifference {
  id: string;
  reason: string;
  applies(d: ProbeDifference, ctx: DifferenceContext): boolean;
}

/** /dev entries only the VM has: its own devices, which a container gets only with --device. */
const VM_DEVICES =
  /^dev\.\/dev\/(console|hwrng|kmsg|ttyS0|vda|vport\d+p\d+|vsock|fuse|loop-control|loop\d+|net|net\/tun|cpu_dma_latency|snapshot|rtc0|mem|port|nvram|hpet|vhost-net|vhost-vsock|uinput|autofs|btrfs-control|mapper|userfaultfd)$/;

const ok = (v?: string) => v === "ok";
const usable = (v?: string) => v === "ok" || (v ?? "").startsWith("blocked:");

export const EXPLAINED: ExplainedDifference[] = [
  {
    id: "privileged-root",
    reason:
      "root in the guest holds every capability (the VM, not a capability set, is the isolation boundary), so mounting, namespaces, FUSE, nf_tables and BPF work as under `docker run --privileged`; a container's root has Docker's 14 default capabilities",
    applies: (d) => /^status\.Cap(Prm|Eff|Bnd)$/.test(d.key) && d.vm === "000001ffffffffff",
  },
  {
    id: "features-unblocked",
    reason:
      "a kernel feature the container's capability set blocks (EPERM) is usable by the guest's root; a feature the container has is never missing in the VM",
    applies: (d) => d.key.startsWith("feature.") && ok(d.vm) && d.container?.startsWith("blocked:") === true,
  },
  {
    id: "vm-devices",
    reason:
      "/dev is the guest kernel's devtmpfs: besides the standard nodes and links it holds the VM's own devices (serial console, root disk, agent port, RNG, vsock) and the ones workloads use without --device (/dev/fuse, /dev/loop-control and loop devices, /dev/net/tun, /dev/kmsg)",
    applies: (d) =>
      (d.container === undefined && VM_DEVICES.test(d.key)) ||
      (d.key.startsWith("feature.dev_") && usable(d.vm) && d.container === "absent:ENOENT"),
  },
  {
    id: "dev-devtmpfs",
    reason:
      "the same /dev mount flags (rw,nosuid,mode=755), on devtmpfs instead of a tmpfs filled by the runtime",
    applies: (d) => d.key === "mount./dev" && d.vm === "devtmpfs rw,nosuid mode=755",
  },
  {
    id: "no-kcore",
    reason:
      "runtimes link /dev/core to /proc/kcore when it exists (then mask it); the guest kernel has no /proc/kcore",
    applies: (d) => d.key === "dev./dev/core" && d.vm === undefined,
  },
  {
    id: "etc-files-not-mounts",
    reason:
      "/etc/hosts, /etc/hostname and /etc/resolv.conf have the runtime's content but are files of the root fs, not bind mounts from the host",
    applies: (d) => /^mount\.\/etc\/(hosts|hostname|resolv\.conf)$/.test(d.key) && d.vm === undefined,
  },
  {
    id: "no-masked-paths",
    reason:
      "runtimes mask or make read-only parts of /proc and /sys that describe the host's kernel; the guest's /proc and /sys describe its own kernel and are left as they are",
    applies: (d) =>
      /^mount\.\/(proc|sys)\/./.test(d.key) && d.key !== "mount./sys/fs/cgroup" && d.vm === undefined,
  },
  {
    id: "sys-writable",
    reason:
      "/sys and the cgroup2 hierarchy are writable by the guest's root (a container's are read-only: they belong to the host)",
    applies: (d) =>
      (d.key === "mount./sys" && d.vm === "sysfs rw,nosuid,nodev,noexec") ||
      (d.key === "mount./sys/fs/cgroup" && d.vm === "cgroup2 rw,nosuid,nodev,noexec"),
  },
  {
    id: "exec-cgroups",
    reason:
      "every exec runs in a cgroup of its own (/sm-exec/eN, with the memory, pids, cpu and io controllers) so a timeout can kill all it started; a container's processes see their container's cgroup as /",
    applies: (d) => d.key === "cgroup.path" && /^\/sm-exec\/e\d+$/.test(d.vm ?? ""),
  },
  {
    id: "rlimits-from-memory",
    reason: "the kernel derives RLIMIT_SIGPENDING from the machine's memory (the VM's, not the host's)",
    applies: (d) => d.key === "rlimit.sigpending",
  },
  {
    id: "host-capped-rlimit",
    reason:
      "the test host could not give the container Docker's limit (raising a hard limit needs CAP_SYS_RESOURCE, which a sandboxed CI host may lack); the VM's value is checked against Docker's default directly",
    applies: (d, ctx) => ctx.cappedRlimits.some((r) => d.key === `rlimit.${r}`),
  },
  {
    id: "tmpfs-user-xattrs",
    reason:
      "the writable layer is a tmpfs, and Linux 6.1's tmpfs has trusted.* and security.* xattrs but not user.* (added in 6.6); a container's upper layer is the host's disk file system",
    applies: (d) => d.key === "fs.xattr_user" && d.vm === "error EOPNOTSUPP" && d.container === "ok",
  },
  {
    id: "probe-mount",
    reason: "the test bind-mounts the probe into the container; the VM gets it as a file",
    applies: (d) => d.key === "mount./sm-probe" && d.vm === undefined,
  },
];

/** Splits differences into explained (with their rule) and unexplained ones. */
export function classifyDifferences(
  diffs: ProbeDifference[],
  ctx: DifferenceContext,
): { explained: Array<ProbeDifference & { id: string }>; unexplained: ProbeDifference[] } {
  const explained: Array<ProbeDifference & { id: string }> = [];
  const unexplained: ProbeDifference[] = [];
  for (const d of diffs) {
    const rule = EXPLAINED.find((r) => r.applies(d, ctx));
    if (rule) explained.push({ ...d, id: rule.id });
    else unexplained.push(d);
  }
  return { explained, unexplained };
}

/** True when the VM's value of a feature is at least what the container has. */
export function featureNotWorse(container?: string, vm?: string): boolean {
  return !usable(container) || ok(vm) || vm === container;
}
