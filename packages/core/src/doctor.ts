import { accessSync, constants, existsSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { checkRootfsTools } from "@supermachine/oci";
import { defaultSnapshotsDir } from "@supermachine/snapshot";
import { type DiagnosticCheck, engineDiagnostics } from "@supermachine/vmm-native";

/** One finding of {@link doctor}. `fail` means the main job cannot run here. */
export type DoctorCheck = DiagnosticCheck;

/** What {@link doctor} found. */
export interface DoctorReport {
  /** False when any check failed: baking and running VMs cannot work on this host as it is. */
  ok: boolean;
  checks: DoctorCheck[];
}

/** Options of {@link doctor}. */
export interface DoctorOptions {
  /** The snapshots directory to check. Default: the one `Image.build` uses. */
  snapshotsDir?: string;
}

function rootfsCheck(): DoctorCheck {
  const s = checkRootfsTools();
  return s.ok
    ? { id: "e2fsprogs", title: "root fs encoder", status: "ok", summary: `mke2fs ${s.version}` }
    : {
        id: "e2fsprogs",
        title: "root fs encoder",
        status: "fail",
        summary: s.problem ?? "unusable",
        fix: s.fix,
      };
}

function snapshotsCheck(dir: string): DoctorCheck {
  const title = "snapshots directory";
  let probe = dir;
  while (!existsSync(probe) && dirname(probe) !== probe) probe = dirname(probe);
  try {
    accessSync(probe, constants.W_OK | constants.X_OK);
  } catch {
    return {
      id: "snapshots",
      title,
      status: "fail",
      summary: `${probe} is not writable, so ${dir} cannot hold snapshots`,
      fix: `choose a writable directory (BuildOptions.snapshotsDir or SUPERMACHINE_SNAPSHOTS_DIR)`,
    };
  }
  if (probe === dir && (statSync(dir).mode & 0o077) !== 0) {
    return {
      id: "snapshots",
      title,
      status: "warn",
      summary: `${dir} is mode ${(statSync(dir).mode & 0o777).toString(8)}: other users can read guest memory and environment`,
      fix: `chmod 700 ${dir}`,
    };
  }
  return {
    id: "snapshots",
    title,
    status: "ok",
    summary: existsSync(dir) ? dir : `${dir} (created on first bake)`,
  };
}

/**
 * Checks that this host can bake and run VMs, and explains what it finds:
 * QEMU (path, version, backends), the accelerator verdict and why, the root
 * fs encoder, the guest kernel and agent, the snapshots and run directories,
 * orphan protection and cgroup delegation. Each finding that is not `ok`
 * carries its fix. The accelerator check may boot the guest once to probe
 * KVM/HVF (then the verdict is cached). Never throws.
 */
export async function doctor(options: DoctorOptions = {}): Promise<DoctorReport> {
  const engine = await engineDiagnostics();
  const checks = [
    ...engine.slice(0, 2),
    rootfsCheck(),
    ...engine.slice(2),
    snapshotsCheck(options.snapshotsDir ?? defaultSnapshotsDir()),
  ];
  return { ok: checks.every((c) => c.status !== "fail"), checks };
}
