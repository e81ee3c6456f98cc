import { SnapshotError } from "./errors.js";
import {
  BAKE_TRIGGERS,
  type BakeTrigger,
  MEMORY_FILE,
  SNAPSHOT_FORMAT_VERSION,
  type SnapshotFileRecord,
  type SnapshotImageConfig,
  type SnapshotMetadata,
  type SnapshotNetwork,
  STATE_FILE,
} from "./metadata.js";
import { assertSafePath } from "./paths.js";

const HEX64 = /^[0-9a-f]{64}$/;
const OCI_DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

type Obj = Record<string, unknown>;

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  if (typeof v === "object") return "an object";
  return `${typeof v} ${String(v)}`;
}

function bad(field: string, expected: string, got: unknown): SnapshotError {
  return new SnapshotError(
    "SNAPSHOT_METADATA_INVALID",
    `metadata field \`${field}\`: expected ${expected}, got ${describe(got)}`,
    { details: { field, expected } },
  );
}

function obj(v: unknown, field: string): Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw bad(field, "an object", v);
  return v as Obj;
}

function str(
  o: Obj,
  key: string,
  field: string,
  opts: { nonEmpty?: boolean; pattern?: RegExp } = {},
): string {
  const v = o[key];
  if (typeof v !== "string") throw bad(field, "a string", v);
  if (opts.nonEmpty && v.length === 0) throw bad(field, "a non-empty string", v);
  if (opts.pattern && !opts.pattern.test(v)) throw bad(field, `a string matching ${opts.pattern}`, v);
  return v;
}

function optStr(o: Obj, key: string, field: string): string | undefined {
  return o[key] === undefined ? undefined : str(o, key, field);
}

function int(o: Obj, key: string, field: string, min: number, max: number): number {
  const v = o[key];
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw bad(field, `an integer in [${min}, ${max}]`, v);
  }
  return v;
}

function bool(o: Obj, key: string, field: string): boolean {
  const v = o[key];
  if (typeof v !== "boolean") throw bad(field, "a boolean", v);
  return v;
}

/** `{[key]: value}` when value is defined, else `{}` (keeps absent optional fields absent). */
function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

function strArray(o: Obj, key: string, field: string): string[] {
  const v = o[key];
  if (!Array.isArray(v)) throw bad(field, "an array of strings", v);
  return v.map((item, i) => {
    if (typeof item !== "string") throw bad(`${field}[${i}]`, "a string", item);
    return item;
  });
}

function optStrArray(o: Obj, key: string, field: string): string[] | undefined {
  return o[key] === undefined ? undefined : strArray(o, key, field);
}

function withOptional<T extends Obj>(base: T, extra: Obj): T {
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) (base as Obj)[k] = v;
  return base;
}

function parseConfig(v: unknown): SnapshotImageConfig {
  const c = obj(v, "image.config");
  return withOptional(
    {
      env: strArray(c, "env", "image.config.env"),
      workingDir: str(c, "workingDir", "image.config.workingDir"),
      user: str(c, "user", "image.config.user"),
      exposedPorts: strArray(c, "exposedPorts", "image.config.exposedPorts"),
    },
    {
      entrypoint: optStrArray(c, "entrypoint", "image.config.entrypoint"),
      cmd: optStrArray(c, "cmd", "image.config.cmd"),
      stopSignal: optStr(c, "stopSignal", "image.config.stopSignal"),
    },
  ) as SnapshotImageConfig;
}

function parseFiles(v: unknown): Record<string, SnapshotFileRecord> {
  const o = obj(v, "files");
  const out: Record<string, SnapshotFileRecord> = {};
  for (const [name, rec] of Object.entries(o)) {
    const field = `files.${name}`;
    if (!name || name === "." || name === ".." || name.includes("/") || name.includes("\0")) {
      throw bad("files", "plain file names as keys", name);
    }
    const r = obj(rec, field);
    const entry: SnapshotFileRecord = { size: int(r, "size", `${field}.size`, 0, Number.MAX_SAFE_INTEGER) };
    if (r.sha256 !== undefined) entry.sha256 = str(r, "sha256", `${field}.sha256`, { pattern: HEX64 });
    out[name] = entry;
  }
  for (const required of [STATE_FILE, MEMORY_FILE]) {
    if (!out[required]) throw bad(`files.${required}`, "an entry for every snapshot file", undefined);
  }
  return out;
}

/** A root fs content address: `sha256:` and 64 lowercase hex digits (it names a file, so nothing else). */
export const ROOTFS_DIGEST = /^sha256:[0-9a-f]{64}$/;

/**
 * Reads the format version of parsed `metadata.json` contents without
 * validating anything else, or undefined when it has none.
 */
export function metadataFormatVersion(json: unknown): unknown {
  return typeof json === "object" && json !== null ? (json as Obj).formatVersion : undefined;
}

function parseNetwork(v: unknown): SnapshotNetwork {
  const n = obj(v, "network");
  const card = bool(n, "card", "network.card");
  if (n.policy === undefined) return { card };
  // a copy of plain JSON; its rules are validated by the engine when a pool uses it
  return { card, policy: JSON.parse(JSON.stringify(obj(n.policy, "network.policy"))) };
}

/**
 * Strictly validates parsed `metadata.json` contents and returns a clean
 * copy holding only the fields of the format (unknown fields are dropped).
 *
 * Throws `SNAPSHOT_VERSION` for a `formatVersion` other than 2,
 * `SNAPSHOT_UNSAFE_PATH` for a guest path that is not absolute and
 * normalized or holds NUL or control characters, and
 * `SNAPSHOT_METADATA_INVALID` naming the first bad field (`details.field`).
 */
export function parseSnapshotMetadata(json: unknown): SnapshotMetadata {
  const m = obj(json, "(root)");
  if (m.formatVersion !== SNAPSHOT_FORMAT_VERSION) {
    const hint =
      m.formatVersion === 1
        ? "; version 1 named its root fs by a host path and cannot move: bake the image again"
        : "";
    throw new SnapshotError(
      "SNAPSHOT_VERSION",
      `snapshot format version ${describe(m.formatVersion)} is not supported (this build reads version ${SNAPSHOT_FORMAT_VERSION})${hint}`,
      { details: { field: "formatVersion", formatVersion: m.formatVersion } },
    );
  }
  const createdAt = str(m, "createdAt", "createdAt");
  if (Number.isNaN(Date.parse(createdAt))) throw bad("createdAt", "an ISO 8601 date", createdAt);
  const trigger = m.trigger;
  if (typeof trigger !== "string" || !BAKE_TRIGGERS.includes(trigger as BakeTrigger)) {
    throw bad("trigger", `one of ${BAKE_TRIGGERS.join(", ")}`, trigger);
  }

  const image = obj(m.image, "image");
  const workload = obj(m.workload, "workload");
  const engine = obj(m.engine, "engine");
  const assets = obj(m.assets, "assets");
  const rootfs = obj(m.rootfs, "rootfs");
  const extraRaw = m.extraFiles;
  if (!Array.isArray(extraRaw)) throw bad("extraFiles", "an array", extraRaw);

  return withOptional(
    {
      formatVersion: SNAPSHOT_FORMAT_VERSION,
      fingerprint: str(m, "fingerprint", "fingerprint", { pattern: HEX64 }),
      createdAt,
      image: {
        ref: str(image, "ref", "image.ref", { nonEmpty: true }),
        manifestDigest: str(image, "manifestDigest", "image.manifestDigest", { pattern: OCI_DIGEST }),
        config: parseConfig(image.config),
      },
      memoryMib: int(m, "memoryMib", "memoryMib", 1, 1 << 20),
      vcpus: int(m, "vcpus", "vcpus", 1, 1024),
      guestPort: int(m, "guestPort", "guestPort", 1, 65535),
      listenerRequired: bool(m, "listenerRequired", "listenerRequired"),
      trigger: trigger as BakeTrigger,
      extraFiles: extraRaw.map((f, i) => {
        const e = obj(f, `extraFiles[${i}]`);
        const field = `extraFiles[${i}].guestPath`;
        const guestPath = str(e, "guestPath", field, { nonEmpty: true });
        assertSafePath(guestPath, `metadata field \`${field}\``, { details: { field } });
        return {
          guestPath,
          sha256: str(e, "sha256", `extraFiles[${i}].sha256`, { pattern: HEX64 }),
          mode: int(e, "mode", `extraFiles[${i}].mode`, 0, 0o7777),
        };
      }),
      workload: {
        argv: strArray(workload, "argv", "workload.argv"),
        env: strArray(workload, "env", "workload.env"),
        cwd: str(workload, "cwd", "workload.cwd"),
        user: str(workload, "user", "workload.user"),
      },
      engine: {
        qemuVersion: str(engine, "qemuVersion", "engine.qemuVersion", { nonEmpty: true }),
        machine: str(engine, "machine", "engine.machine", { nonEmpty: true }),
        accel: str(engine, "accel", "engine.accel", { nonEmpty: true }),
        ...optional("cpuModel", optStr(engine, "cpuModel", "engine.cpuModel")),
        ...optional("arch", optStr(engine, "arch", "engine.arch")),
      },
      assets: {
        kernelHash: str(assets, "kernelHash", "assets.kernelHash", { nonEmpty: true }),
        agentHash: str(assets, "agentHash", "assets.agentHash", { nonEmpty: true }),
      },
      rootfs: {
        digest: str(rootfs, "digest", "rootfs.digest", { pattern: ROOTFS_DIGEST }),
        size: int(rootfs, "size", "rootfs.size", 0, Number.MAX_SAFE_INTEGER),
        sha256: str(rootfs, "sha256", "rootfs.sha256", { pattern: HEX64 }),
      },
      files: parseFiles(m.files),
    },
    {
      parentFingerprint:
        m.parentFingerprint === undefined
          ? undefined
          : str(m, "parentFingerprint", "parentFingerprint", { pattern: HEX64 }),
      warmupTag: optStr(m, "warmupTag", "warmupTag"),
      network: m.network === undefined ? undefined : parseNetwork(m.network),
    },
  ) as SnapshotMetadata;
}
