import { type NetworkPolicy, normalizePolicy } from "@supermachine/vmm-native";
import { CoreError } from "./errors.js";

/** Throws `INVALID_OPTIONS` unless `value` is an integer in [min, max]. Returns it (or the default). */
export function intOption(
  name: string,
  value: number | undefined,
  dflt: number,
  min: number,
  max: number,
): number {
  if (value === undefined || value === null) return dflt;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new CoreError(
      "INVALID_OPTIONS",
      `${name} must be an integer from ${min} to ${max}, got ${String(value)}`,
    );
  }
  return value;
}

/** Throws `INVALID_OPTIONS` unless `value` is one of `allowed`. */
export function enumOption<T extends string>(
  name: string,
  value: string | undefined,
  dflt: T,
  allowed: readonly T[],
): T {
  if (value === undefined || value === null) return dflt;
  if (!allowed.includes(value as T)) {
    throw new CoreError(
      "INVALID_OPTIONS",
      `${name} must be one of ${allowed.join(", ")}, got ${JSON.stringify(value)}`,
    );
  }
  return value as T;
}

/** A validated `network` option: whether there is a network card and its egress policy. */
export interface NetworkChoice {
  card: boolean;
  /** The policy as given (plain JSON), undefined for the engine's default. */
  policy?: NetworkPolicy;
}

/**
 * Validates a `network` option (`"none"` only where `allowNone`): the policy
 * is checked by the engine's parser and kept as plain JSON. Throws
 * `INVALID_OPTIONS` naming the problem.
 */
export function networkOption(value: unknown, allowNone: boolean): NetworkChoice {
  if (value === undefined || value === null) return { card: true };
  if (value === "none") {
    if (allowNone) return { card: false };
    throw new CoreError(
      "INVALID_OPTIONS",
      'network: "none" is a build option (the network card is part of the baked device model); a pool can refuse all traffic with { allowInternetAccess: false, dns: false }',
    );
  }
  try {
    normalizePolicy(value as NetworkPolicy);
  } catch (err) {
    throw new CoreError("INVALID_OPTIONS", `network: ${(err as Error).message}`, { cause: err });
  }
  return { card: true, policy: JSON.parse(JSON.stringify(value)) as NetworkPolicy };
}
