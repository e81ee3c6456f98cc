import type { Image, NetworkOptions, Vm } from "../index.js";

/** How `logs` (and `run --logs` without a command) reads a VM's workload output. */
export interface LogsPlan {
  /** Let the workload run this long before printing (ms). */
  waitMs: number;
  /** Keep printing new output until interrupted. */
  follow: boolean;
  /** How often `follow` asks the guest (ms). */
  pollMs?: number;
  /** Egress policy of the VM (over the image's). */
  network?: NetworkOptions;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Prints a VM's workload output (`vm.logs()`) on stdout: once after
 * `waitMs`, or with `follow` every new byte until SIGINT/SIGTERM. The guest
 * keeps the newest 64 KiB; bytes that scrolled out between two reads are
 * reported on stderr as dropped. Resolves with the exit status.
 */
export async function printLogs(vm: Vm, plan: LogsPlan): Promise<number> {
  let stop: ((code: number) => void) | undefined;
  const stopped = new Promise<number>((resolve) => {
    stop = resolve;
  });
  const onSignal = (sig: NodeJS.Signals) => stop?.(sig === "SIGINT" ? 130 : 143);
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const first = await Promise.race([sleep(plan.waitMs).then(() => undefined), stopped]);
    if (first !== undefined) return first;
    let printed = 0;
    for (;;) {
      const { output, totalBytes } = await vm.logs();
      const fresh = totalBytes - printed;
      if (fresh > output.length) {
        process.stderr.write(
          `supermachine: ${fresh - output.length} earlier bytes of output are gone (the guest keeps the newest 64 KiB)\n`,
        );
        process.stdout.write(output);
      } else if (fresh > 0) {
        process.stdout.write(output.subarray(output.length - fresh));
      }
      printed = totalBytes;
      if (!plan.follow) return 0;
      const code = await Promise.race([sleep(plan.pollMs ?? 200).then(() => undefined), stopped]);
      if (code !== undefined) return code;
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

/** Restores one VM from `image`, prints its workload's output, and stops it. */
export async function logsOfImage(image: Image, plan: LogsPlan): Promise<number> {
  const pool = await image.pool({
    min: 1,
    max: 1,
    restoreOnRelease: false,
    ...(plan.network ? { network: plan.network } : {}),
  });
  try {
    const vm = await pool.acquire();
    try {
      return await printLogs(vm, plan);
    } finally {
      await vm.release();
    }
  } finally {
    await pool.shutdown();
  }
}
