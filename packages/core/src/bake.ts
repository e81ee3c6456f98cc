import type { PulledImage } from "@supermachine/oci";
import {
  type Engine,
  type GuestArch,
  type GuestAssets,
  isVmExited,
  Machine,
  machineModel,
  VmExitedError,
} from "@supermachine/vmm-native";
import type { BakeTrigger } from "./bake-plan.js";
import { CoreError, type CoreErrorCode } from "./errors.js";
import { type GuestSession, openGuestSession } from "./guest-session.js";
import type { BuildProgress, ExtraFileSpec, WarmupVm } from "./options.js";
import type { NetworkChoice } from "./validate.js";
import { createWarmupVm } from "./warmup-vm.js";
import type { WorkloadSpec } from "./workload.js";

export type { BakeTrigger } from "./bake-plan.js";

/** Everything one bake needs, already resolved. */
export interface BakePlan {
  image: PulledImage;
  rootfsPath: string;
  /** Content address of the root fs (`sha256:…`): the snapshot names it by this, not by path. */
  rootfsDigest: string;
  assets: GuestAssets;
  /** Accelerator, CPU model and QEMU binary (chosen before the fingerprint). */
  engine: Engine;
  memoryMib: number;
  vcpus: number;
  guestPort: number;
  workload: WorkloadSpec;
  trigger: BakeTrigger;
  extraFiles: Array<ExtraFileSpec & { bytes: Buffer; mode: number }>;
  warmup?: (vm: WarmupVm) => Promise<void>;
  listenerTimeoutMs: number;
  hostname: string;
  onProgress?: (p: BuildProgress) => void;
  /** Network card and the egress policy the bake runs under. */
  network: NetworkChoice;
}

const BOOT_TIMEOUT_MS = 120_000;

/** Kernel messages that mean the guest ran out of memory. */
const OOM_PATTERN = /Out of memory|oom-kill|Kernel panic - not syncing: System is deadlocked on memory/;

/** `BAKE_OUT_OF_MEMORY` when the console shows the guest ran out of memory, else `code`. */
function failureCode<C extends CoreErrorCode>(tail: string, code: C): C | "BAKE_OUT_OF_MEMORY" {
  return OOM_PATTERN.test(tail) ? "BAKE_OUT_OF_MEMORY" : code;
}

/**
 * Boots the image once in `dir` (guest RAM is `dir/memory.bin`), brings it to
 * the trigger point and captures the snapshot there. The VM is always killed
 * before this returns. Failures are typed and carry the console tail.
 */
/** Facts about the engine that baked a snapshot. */
export interface BakeEngineInfo {
  qemuVersion: string;
  machine: string;
  accel: string;
  cpuModel: string;
  /** Guest architecture. */
  arch: GuestArch;
}

export async function bakeSnapshot(dir: string, plan: BakePlan): Promise<BakeEngineInfo> {
  const progress = plan.onProgress ?? (() => {});
  progress({ phase: "boot", message: "booting guest" });
  const machine = await Machine.boot(
    {
      arch: plan.assets.arch,
      kernel: plan.assets.kernel,
      initrd: plan.assets.initrd,
      kernelHash: plan.assets.kernelHash,
      agentHash: plan.assets.agentHash,
      memoryMib: plan.memoryMib,
      vcpus: plan.vcpus,
      rootfs: plan.rootfsPath,
      rootfsDigest: plan.rootfsDigest,
      network: plan.network.card,
    },
    { memoryFile: `${dir}/memory.bin`, engine: plan.engine, network: plan.network.policy },
  );
  let session: GuestSession | undefined;
  try {
    session = await openGuestSession(machine, BOOT_TIMEOUT_MS);
    for (const f of plan.extraFiles) {
      await session.writeFile(f.guestPath, f.bytes, { mode: f.mode, mkdirs: true });
    }
    const exited = session.waitForEvent("WORKLOAD_EXITED");
    exited.catch(() => {}); // only raced while listening; the session closes before capture
    await session.configureWorkload({
      argv: plan.workload.argv,
      env: plan.workload.env,
      cwd: plan.workload.cwd,
      user: plan.workload.user,
      hostname: plan.hostname,
      hold: true,
      // execs run as the image's User in its WorkingDir, as `docker exec` does
      execAsWorkload: true,
      watchPort: plan.trigger === "listener" ? plan.guestPort : undefined,
    });
    if (plan.trigger === "pre-exec") {
      await session.waitForEvent("WORKLOAD_READY");
    } else {
      const hasWorkload = plan.workload.argv.length > 0;
      if (hasWorkload) await session.startWorkload();
      if (plan.trigger === "listener") {
        await waitForListener(session, exited, plan, machine);
      } else if (plan.warmup) {
        const { vm, expire } = createWarmupVm(session);
        try {
          await plan.warmup(vm);
        } catch (err) {
          // the guest dying under the callback is BAKE_GUEST_DIED (the outer catch), not the callback's fault
          if (await guestGone(machine, err)) throw err;
          throw new CoreError("BAKE_WARMUP_FAILED", `warmup callback failed: ${(err as Error).message}`, {
            cause: err,
            details: { consoleTail: await consoleTail(machine) },
          });
        } finally {
          expire();
        }
      }
    }
    await session.close();
    session = undefined;
    progress({ phase: "snapshot", message: "capturing snapshot" });
    await machine.captureSnapshot(dir);
    return {
      qemuVersion: machine.qemuVersion,
      machine: machineModel(plan.assets.arch).machineType,
      accel: machine.accel,
      cpuModel: machine.engine.cpuModel,
      arch: plan.assets.arch,
    };
  } catch (err) {
    if (err instanceof CoreError) throw err;
    if (isVmExited(err) || (await guestGone(machine, err))) {
      const info = await machine.exited;
      const code = failureCode(info.consoleTail, "BAKE_GUEST_DIED");
      const what =
        code === "BAKE_OUT_OF_MEMORY"
          ? `the guest ran out of memory (${plan.memoryMib} MiB)`
          : "the guest died";
      throw new CoreError(code, `${what} during the bake: ${new VmExitedError(info).message}`, {
        cause: err,
        details: { consoleTail: info.consoleTail },
      });
    }
    throw new CoreError("BAKE_FAILED", `bake failed: ${(err as Error).message}`, {
      cause: err,
      details: { consoleTail: await consoleTail(machine) },
    });
  } finally {
    await session?.close();
    await machine.close();
  }
}

async function waitForListener(
  session: GuestSession,
  exited: Promise<unknown>,
  plan: BakePlan,
  machine: Machine,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((r) => {
    timer = setTimeout(() => r("timeout"), plan.listenerTimeoutMs);
  });
  try {
    const what = await Promise.race([
      session.waitForEvent("LISTENING").then(
        () => "listening" as const,
        () => "closed" as const,
      ),
      exited.then(
        () => "exited" as const,
        () => "closed" as const,
      ),
      timeout,
    ]);
    if (what === "listening") return;
    // the session closed: the guest died (QEMU exited), which the caller reports as BAKE_GUEST_DIED
    if (what === "closed" && (await guestGone(machine, undefined))) {
      throw machine.exitError(await machine.exited, "the guest died while the workload started");
    }
    const tail = await consoleTail(machine);
    if (what === "exited" || what === "closed") {
      const code = failureCode(tail, "BAKE_WORKLOAD_EXITED");
      const how =
        code === "BAKE_OUT_OF_MEMORY" ? `was killed for lack of memory (${plan.memoryMib} MiB)` : "exited";
      // its own stdout/stderr (kept by the agent, not on the console) say why
      const logs = await session
        .workloadLogs({ maxBytes: 8192 })
        .then((l) => l.tail.toString("utf8"))
        .catch(() => "");
      throw new CoreError(
        code,
        `the workload ${JSON.stringify(plan.workload.argv)} ${how} before listening on port ${plan.guestPort}\n--- workload output ---\n${logs}--- console ---\n${tail}`,
        { details: { consoleTail: tail, workloadLogs: logs } },
      );
    }
    throw new CoreError(
      "BAKE_LISTENER_TIMEOUT",
      `nothing listened on guest port ${plan.guestPort} within ${plan.listenerTimeoutMs} ms\n${tail}`,
      { details: { consoleTail: tail } },
    );
  } finally {
    clearTimeout(timer);
  }
}

/**
 * True when the guest is gone: QEMU has exited, or it exits within a second
 * of a failure that says the session or VM ended (`err` SESSION_CLOSED or
 * VM_EXITED, or `err` undefined: the session closed).
 */
async function guestGone(machine: Machine, err: unknown): Promise<boolean> {
  if (machine.hasExited) return true;
  const code = (err as { code?: unknown } | undefined)?.code;
  if (err !== undefined && code !== "SESSION_CLOSED" && code !== "VM_EXITED") return false;
  let timer: NodeJS.Timeout | undefined;
  const exited = await Promise.race([
    machine.exited.then(() => true),
    new Promise<false>((r) => {
      timer = setTimeout(() => r(false), 1000);
    }),
  ]);
  clearTimeout(timer);
  return exited;
}

async function consoleTail(machine: Machine): Promise<string> {
  return machine.consoleTail();
}
