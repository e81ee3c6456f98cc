import { accessSync, constants, existsSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hardwareAccelerator, kvmAccessProblem } from "./accelerator.js";
import { chooseEngine } from "./engine.js";
import { GUEST_ASSETS_FIX, resolveGuestAssets } from "./guest-assets.js";
import { qemuRequirements } from "./qemu-args.js";
import { findQemu } from "./qemu-binary.js";
import { readCapabilities } from "./qemu-capabilities.js";

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

const QEMU_FIX =
  "install QEMU 10 from Debian bookworm-backports: `apt-get install -t bookworm-backports qemu-system-x86` " +
  "(enable bookworm-backports in /etc/apt/sources.list.d first)";

function qemuCheck(): DiagnosticCheck {
  try {
    const q = findQemu(qemuRequirements({}, "tcg"));
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
    const g = resolveGuestAssets();
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
  const hw = hardwareAccelerator();
  let guest: ReturnType<typeof resolveGuestAssets>;
  try {
    guest = resolveGuestAssets();
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
    const e = await chooseEngine({ accel: "auto", kernel: guest.kernel, initrd: guest.initrd });
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

function runDirCheck(): DiagnosticCheck {
  const dir = process.env.SUPERMACHINE_RUN_DIR ?? join(tmpdir(), "supermachine");
  const title = "run directory";
  const parent = existsSync(dir) ? dir : tmpdir();
  try {
    accessSync(parent, constants.W_OK | constants.X_OK);
  } catch {
    return {
      id: "run-dir",
      title,
      status: "fail",
      summary: `${parent} is not writable`,
      fix: `make ${parent} writable, or set SUPERMACHINE_RUN_DIR`,
    };
  }
  if (existsSync(dir)) {
    const st = statSync(dir);
    if (typeof process.getuid === "function" && st.uid !== process.getuid()) {
      return {
        id: "run-dir",
        title,
        status: "fail",
        summary: `${dir} belongs to uid ${st.uid}, not to this user`,
        fix: `remove ${dir}, or set SUPERMACHINE_RUN_DIR to a directory of your own`,
      };
    }
    if ((st.mode & 0o077) !== 0) {
      return {
        id: "run-dir",
        title,
        status: "warn",
        summary: `${dir} is mode ${(st.mode & 0o777).toString(8)}: other users can see VM sockets and logs`,
        fix: `chmod 700 ${dir}`,
      };
    }
  }
  return { id: "run-dir", title, status: "ok", summary: `${dir} (private)` };
}

function cgroupCheck(): DiagnosticCheck {
  const title = "cgroup delegation";
  try {
    const mounts = readFileSync("/proc/self/mounts", "utf8");
    const v2 = /^\S+ \/sys\/fs\/cgroup cgroup2 /m.test(mounts);
    if (!v2) {
      return {
        id: "cgroup",
        title,
        status: "warn",
        summary:
          "cgroup v2 is not mounted at /sys/fs/cgroup (v1 hierarchies): per-VM limits fall back to rlimits",
        fix: "boot the host with the unified cgroup hierarchy (systemd.unified_cgroup_hierarchy=1) and delegate a subtree to this user",
      };
    }
    const own = readFileSync("/proc/self/cgroup", "utf8").match(/^0::(.*)$/m)?.[1] ?? "/";
    const ctl = join("/sys/fs/cgroup", own, "cgroup.subtree_control");
    accessSync(ctl, constants.W_OK);
    return {
      id: "cgroup",
      title,
      status: "ok",
      summary: `cgroup v2, ${join("/sys/fs/cgroup", own)} is delegated`,
    };
  } catch {
    return {
      id: "cgroup",
      title,
      status: "warn",
      summary: "this process's cgroup v2 subtree is not delegated: per-VM limits fall back to rlimits",
      fix: "run under a delegated cgroup (e.g. `systemd-run --user --scope -p Delegate=yes ...`)",
    };
  }
}

/**
 * The engine's health checks: QEMU (path, version, backends), the guest
 * assets, the accelerator verdict and why (this may boot the guest once to
 * probe KVM/HVF, then the verdict is cached), orphan protection, the run
 * directory and cgroup delegation. Never throws.
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
  return [qemu, guest, accel, setprivCheck(), runDirCheck(), cgroupCheck()];
}
