import { isSupermachineError } from "@supermachine/errors";
import type { VmWorker } from "./vm-worker.js";

/**
 * Runs a VM operation; if it fails because the agent session closed under
 * it and the VM's QEMU is exiting, reports the exit (`VM_EXITED`, with the
 * exit status and console tail) instead of the bare session error.
 */
export async function guarded<T>(worker: VmWorker, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (!isSupermachineError(err, "SESSION_CLOSED")) throw err;
    let timer: NodeJS.Timeout | undefined;
    const info = await Promise.race([
      worker.machine.exited,
      new Promise<undefined>((r) => {
        timer = setTimeout(() => r(undefined), 1000);
      }),
    ]);
    clearTimeout(timer);
    if (!info) throw err;
    const exitErr = worker.machine.exitError(info, "the VM's QEMU exited");
    (exitErr as { cause?: unknown }).cause = err;
    throw exitErr;
  }
}
