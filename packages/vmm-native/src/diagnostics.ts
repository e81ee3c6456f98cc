import { existsSync } from "node:fs";
import { hardwareAccelerator, kvmAccessProblem } from "./accelerator.js";
import { detectCgroupSupport } from "./confine/cgroup.js";
import { findTool } from "./confine/host-tools.js";
import { resolveConfinement } from "./confine/options.js";
import { chooseEngine } from "./engine.js";
import { guestAssetsFix, resolveGuestAssets } from "./guest-assets.js";
import { hostGuestArch } from "./machine-model.js";
import { networkDiagnostic } from "./network/diagnostic.js";
import { qemuRequirements } from "./qemu-args.js";
import { findQemu } from "./qemu-binary.js";
import { readCapabilities } from "./qemu-capabilities.js";
import { runRoot } from "./run-dir.js";

/** One finding of a health check: what was checked, how it went, and the fix when it did not. */
export interface DiagnosticCheck {
  /** Stable identifier, e.g. `qemu`, `accelerator`. */
  id: string;
  /** What was checked, for people. */
  title: string;
  /** `fail`: the main job cannot run; `warn`: it runs, with a limitation. */
  status: "ok" | "warn" | "fail";
  /** One line on what was found. */
  summary: string;
  /** The command or change that fixes it (for `warn` and `fail`). */
  fix?: string;
}

/** Checks are of the host's own guest architecture (x86_64 here, aarch64 on Apple Silicon and Arm Linux). */
const ARCH = hostGuestArch();
const GUEST_ASSETS_FIX = guestAssetsFix(ARCH);
const QEMU_FIX =
  process.platform === "darwin"
    ? "install QEMU from Homebrew: `brew install qemu` (found in /opt/homebrew/bin or /usr/local/bin)"
    : `install QEMU 10 from Debian bookworm-backports: \`apt-get install -t bookworm-backports ${ARCH === "aarch64" ? "qemu-system-arm" : "qemu-system-x86"}\` ` +
      "(enable bookworm-backports in /etc/apt/sources.list.d first)";

function qemuCheck(): DiagnosticCheck {
  try {
    const q = findQemu(qemuRequirements({ arch: ARCH }, "tcg"));
    const caps = readCapabilities(q.path);
    const major = Number(q.version.split(".")[0]);
    const base = {
      id: "qemu",
      title: "QEMU",
      summary: `${q.path} ${q.version}; accelerators ${caps.accels.join(",")}; network backends ${caps.netdevs.join(",")}`,
    };
    if (!(major >= 9)) {
      return {
        ...base,
        status: "warn",
        summary: `${base.summary} (older than 9: snapshots of restored VMs are slower)`,
        fix: QEMU_FIX,
      };
    }
    return { ...base, status: "ok" };
  } catch (err) {
    return { id: "qemu", title: "QEMU", status: "fail", summary: (err as Error).message, fix: QEMU_FIX };
  }
}

function guestCheck(): DiagnosticCheck {
  try {
    const g = resolveGuestAssets(ARCH);
    return {
      id: "guest",
      title: "guest kernel and agent",
      status: "ok",
      summary: `from the ${g.source === "package" ? "installed guest package" : g.source === "cache" ? "user cache" : "SUPERMACHINE_GUEST_ASSETS manifest"} ${g.manifest} (kernel ${g.kernelHash}, agent ${g.agentHash})`,
    };
  } catch (err) {
    return {
      id: "guest",
      title: "guest kernel and agent",
      status: "fail",
      summary: (err as Error).message.split(";")[0] ?? "missing",
      fix: GUEST_ASSETS_FIX,
    };
  }
}

async function acceleratorCheck(): Promise<DiagnosticCheck> {
  const title = "accelerator";
  const hw = hardwareAccelerator(ARCH);
  let guest: ReturnType<typeof resolveGuestAssets>;
  try {
    guest = resolveGuestAssets(ARCH);
  } catch {
    return {
      id: "accelerator",
      title,
      status: "fail",
      summary: "cannot probe without the guest",
      fix: GUEST_ASSETS_FIX,
    };
  }
  try {
    const e = await chooseEngine({ arch: ARCH, accel: "auto", kernel: guest.kernel, initrd: guest.initrd });
    if (e.accel !== "tcg") {
      return {
        id: "accelerator",
        title,
        status: "ok",
        summary: `${e.accel} (cpu ${e.cpuModel}), proven by a guest boot`,
      };
    }
    if (e.fallbackReason) {
      return {
        id: "accelerator",
        title,
        status: "warn",
        summary: `${hw} is present but cannot run the guest (${e.fallbackReason}); VMs run under TCG software emulation`,
        fix: "nothing to do for correctness; for speed use a host whose KVM runs normal guests (vmx/svm CPU flags)",
      };
    }
    const why = hw === undefined ? (kvmAccessProblem() ?? "no hardware accelerator") : "TCG requested";
    return {
      id: "accelerator",
      title,
      status: "warn",
      summary: `TCG software emulation (${why})`,
      fix: "for speed run on a host with KVM (Linux, vmx/svm) or HVF (macOS)",
    };
  } catch (err) {
    return { id: "accelerator", title, status: "fail", summary: (err as Error).message };
  }
}

function setprivCheck(): DiagnosticCheck {
  if (process.platform === "darwin") {
    return {
      id: "setpriv",
      title: "orphan protection",
      status: "ok",
      summary: "a watcher on a pipe from Node kills QEMU when Node dies (macOS has no parent-death signal)",
    };
  }
  const found = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p));
  return found
    ? {
        id: "setpriv",
        title: "orphan protection",
        status: "ok",
        summary: `${found} (QEMU dies with its parent, SIGKILL included)`,
      }
    : {
        id: "setpriv",
        title: "orphan protection",
        status: "warn",
        summary: "setpriv not found: a SIGKILLed Node process can leave QEMU running",
        fix: "apt-get install util-linux",
      };
}

function confinementCheck(): DiagnosticCheck {
  const id = "confinement";
  const title = "QEMU confinement";
  let c: ReturnType<typeof resolveConfinement>;
  try {
    c = resolveConfinement(undefined);
  } catch (err) {
    return {
      id,
      title,
      status: "fail",
      summary: (err as Error).message,
      fix: "set SUPERMACHINE_QEMU_UID/GID",
    };
  }
  if (!c.enabled) {
    return {
      id,
      title,
      status: "warn",
      summary:
        process.platform === "linux"
          ? "off (SUPERMACHINE_CONFINE=off): QEMU runs as this user with its environment and sees the whole host"
          : `not available on ${process.platform}: QEMU runs unconfined`,
      fix: process.platform === "linux" ? "unset SUPERMACHINE_CONFINE" : undefined,
    };
  }
  const missing = [
    ["bwrap", "bubblewrap"],
    ["prlimit", "util-linux"],
    ["setpriv", "util-linux"],
  ].filter(([tool]) => !findTool(tool as string));
  if (missing.length) {
    return {
      id,
      title,
      status: "fail",
      summary: `${missing.map(([t]) => t).join(", ")} not installed: QEMU cannot be confined`,
      fix: `apt-get install ${[...new Set(missing.map(([, p]) => p))].join(" ")}`,
    };
  }
  const who = c.identity
    ? `as uid ${c.identity.uid}/gid ${c.identity.gid}, no groups`
    : "as this user, in a user namespace";
  return {
    id,
    title,
    status: "ok",
    summary: `seccomp, ${who}, no_new_privs, empty environment, own mount/pid namespaces, rlimits`,
  };
}

function runDirCheck(): DiagnosticCheck {
  const title = "run directory";
  try {
    return { id: "run-dir", title, status: "ok", summary: `${runRoot()} (private, reaped)` };
  } catch (err) {
    return {
      id: "run-dir",
      title,
      status: "fail",
      summary: (err as Error).message,
      fix: "set SUPERMACHINE_RUN_DIR to a directory of your own",
    };
  }
}

function cgroupCheck(): DiagnosticCheck {
  const title = "cgroup delegation";
  const cg = detectCgroupSupport(process.env.SUPERMACHINE_CGROUP_PARENT || undefined);
  if (cg.usable) {
    return { id: "cgroup", title, status: "ok", summary: `cgroup v2, per-VM cgroups under ${cg.parent}` };
  }
  return {
    id: "cgroup",
    title,
    status: "warn",
    summary: `${cg.reason}: per-VM limits are rlimits only`,
    fix:
      "boot with the unified cgroup hierarchy (systemd.unified_cgroup_hierarchy=1) and run under a delegated " +
      "subtree (e.g. `systemd-run --scope -p Delegate=yes ...`), or set SUPERMACHINE_CGROUP_PARENT",
  };
}

/**
 * The engine's health checks: QEMU (path, version, backends), the guest
 * assets, the accelerator verdict and why (this may boot the guest once to
 * probe KVM/HVF, then the verdict is cached), orphan protection, QEMU's
 * confinement, the run directory and cgroup delegation. Never throws.
 */
export async function engineDiagnostics(): Promise<DiagnosticCheck[]> {
  const qemu = qemuCheck();
  const guest = guestCheck();
  const accel =
    qemu.status === "fail"
      ? {
          id: "accelerator",
          title: "accelerator",
          status: "fail" as const,
          summary: "no QEMU to probe with",
          fix: QEMU_FIX,
        }
      : await acceleratorCheck();
  return [
    qemu,
    guest,
    accel,
    setprivCheck(),
    confinementCheck(),
    runDirCheck(),
    cgroupCheck(),
    networkDiagnostic(),
  ];
}
