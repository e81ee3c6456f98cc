import { CoreError } from "./errors.js";
import { runExec } from "./exec.js";
import type { GuestSession } from "./guest-session.js";
import type { WarmupVm } from "./options.js";

/** Creates the VM handed to a `warmup` callback, and the switch that invalidates it. */
export function createWarmupVm(session: GuestSession): { vm: WarmupVm; expire: () => void } {
  let live = true;
  const vm: WarmupVm = {
    exec(options) {
      if (!live) {
        return Promise.reject(
          new CoreError("WARMUP_VM_EXPIRED", "the warmup VM is only usable while the warmup callback runs"),
        );
      }
      return runExec(session, options);
    },
  };
  return {
    vm,
    expire: () => {
      live = false;
    },
  };
}
