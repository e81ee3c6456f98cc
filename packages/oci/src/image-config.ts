import { InvalidImageError } from "./errors.js";

/** The runtime settings of an image (its config blob's `config` section plus platform). */
export interface ImageConfig {
  /** ENTRYPOINT, if set. */
  entrypoint?: string[];
  /** CMD, if set. */
  cmd?: string[];
  /** Environment as `KEY=value` strings. */
  env: string[];
  /** Working directory ("" when unset). */
  workingDir: string;
  /** User (`name`, `uid`, `uid:gid`; "" when unset). */
  user: string;
  /** Exposed ports as `port/proto`, e.g. `80/tcp`. */
  exposedPorts: string[];
  /** Signal to stop the workload with, e.g. `SIGTERM`. */
  stopSignal?: string;
  /** Image labels. */
  labels: Record<string, string>;
  /** Declared volumes. */
  volumes: string[];
  /** Architecture the image was built for. */
  architecture?: string;
  /** OS the image was built for. */
  os?: string;
  /** CPU variant, if any. */
  variant?: string;
}

/** The parsed config blob. */
export interface ParsedImageConfig {
  config: ImageConfig;
  /** Uncompressed layer digests (`rootfs.diff_ids`), in order. */
  diffIds: string[];
}

function strings(v: unknown): string[] | undefined {
  if (!Array.isArray(v)) return undefined;
  return v.filter((s): s is string => typeof s === "string");
}

/** Parses an OCI / Docker image config blob. */
export function parseImageConfig(bytes: Uint8Array): ParsedImageConfig {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(Buffer.from(bytes).toString("utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new InvalidImageError("image config is not valid JSON", { cause: err });
  }
  const c = (json.config ?? json.container_config ?? {}) as Record<string, unknown>;
  const rootfs = json.rootfs as { type?: unknown; diff_ids?: unknown } | undefined;
  const diffIds = strings(rootfs?.diff_ids);
  if (!diffIds) throw new InvalidImageError("image config has no rootfs.diff_ids");
  const obj = (v: unknown) => (v && typeof v === "object" ? (v as Record<string, unknown>) : {});
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj(c.Labels))) if (typeof v === "string") labels[k] = v;
  const config: ImageConfig = {
    env: strings(c.Env) ?? [],
    workingDir: typeof c.WorkingDir === "string" ? c.WorkingDir : "",
    user: typeof c.User === "string" ? c.User : "",
    exposedPorts: Object.keys(obj(c.ExposedPorts)),
    labels,
    volumes: Object.keys(obj(c.Volumes)),
  };
  const entrypoint = strings(c.Entrypoint);
  if (entrypoint) config.entrypoint = entrypoint;
  const cmd = strings(c.Cmd);
  if (cmd) config.cmd = cmd;
  if (typeof c.StopSignal === "string" && c.StopSignal) config.stopSignal = c.StopSignal;
  if (typeof json.architecture === "string") config.architecture = json.architecture;
  if (typeof json.os === "string") config.os = json.os;
  if (typeof json.variant === "string") config.variant = json.variant;
  return { config, diffIds };
}
