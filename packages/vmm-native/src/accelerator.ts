import { accessSync, constants } from "node:fs";

/** Hardware acceleration QEMU can use. `tcg` is software emulation and always works. */
export type Accelerator = "kvm" | "hvf" | "tcg";

/** True when /dev/kvm exists and this process may open it read-write. */
export function kvmUsable(): boolean {
  if (process.platform !== "linux") return false;
  try {
    accessSync("/dev/kvm", constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Picks the accelerator: an explicit choice wins, then `SUPERMACHINE_ACCEL`,
 * then KVM when usable, HVF on macOS, TCG otherwise.
 */
export function chooseAccelerator(requested?: Accelerator | "auto"): Accelerator {
  const choice = requested && requested !== "auto" ? requested : process.env.SUPERMACHINE_ACCEL;
  if (choice === "kvm" || choice === "hvf" || choice === "tcg") return choice;
  if (kvmUsable()) return "kvm";
  if (process.platform === "darwin") return "hvf";
  return "tcg";
}
