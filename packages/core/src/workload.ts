import type { ImageConfig } from "@supermachine/oci";
import { CoreError } from "./errors.js";

/** What the guest init runs as the VM's workload. */
export interface WorkloadSpec {
  argv: string[];
  env: string[];
  cwd: string;
  user: string;
}

/**
 * Derives the workload from the image config and the build overrides:
 * `cmd` replaces ENTRYPOINT + CMD; `env` entries override the image's.
 */
export function workloadFromImage(
  config: ImageConfig,
  overrides: { cmd?: readonly string[]; env?: Record<string, string> },
): WorkloadSpec {
  const argv = overrides.cmd ? [...overrides.cmd] : [...(config.entrypoint ?? []), ...(config.cmd ?? [])];
  const env = mergeEnv(config.env ?? [], overrides.env ?? {});
  return { argv, env, cwd: config.workingDir || "/", user: config.user ?? "" };
}

/** Applies `KEY=VALUE` overrides to an env list, keeping the order of first appearance. */
export function mergeEnv(base: string[], overrides: Record<string, string>): string[] {
  const map = new Map<string, string>();
  for (const kv of base) {
    const i = kv.indexOf("=");
    if (i > 0) map.set(kv.slice(0, i), kv.slice(i + 1));
  }
  for (const [k, v] of Object.entries(overrides)) {
    if (!k || k.includes("="))
      throw new CoreError("INVALID_OPTIONS", `invalid environment variable name ${JSON.stringify(k)}`);
    map.set(k, v);
  }
  return [...map].map(([k, v]) => `${k}=${v}`);
}
