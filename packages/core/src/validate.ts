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
