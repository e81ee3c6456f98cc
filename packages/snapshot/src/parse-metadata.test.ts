import { describe, expect, it } from "vitest";
import { SnapshotError } from "./errors.js";
import { parseSnapshotMetadata } from "./parse-metadata.js";

function valid(): Record<string, unknown> {
  return {
    formatVersion: 2,
    fingerprint: "a".repeat(64),
    createdAt: "2025-01-01T00:00:00.000Z",
    image: {
      ref: "busybox:latest",
      manifestDigest: `sha256:${"b".repeat(64)}`,
      config: { env: [], workingDir: "", user: "", exposedPorts: [], cmd: ["sh"], labels: { x: "y" } },
    },
    memoryMib: 256,
    vcpus: 1,
    guestPort: 80,
    listenerRequired: false,
    trigger: "pre-exec",
    extraFiles: [{ guestPath: "/etc/x", sha256: "c".repeat(64), mode: 0o644 }],
    workload: { argv: ["sh"], env: [], cwd: "/", user: "" },
    engine: { qemuVersion: "10.0.2", machine: "microvm", accel: "tcg" },
    assets: { kernelHash: "k", agentHash: "a" },
    rootfs: { digest: `sha256:${"e".repeat(64)}`, size: 10, sha256: "f".repeat(64) },
    files: { "restore.snap": { size: 5, sha256: "d".repeat(64) }, "memory.bin": { size: 256 * 1024 * 1024 } },
    network: { card: true, policy: {} },
    unknownField: true,
  };
}

function errorOf(json: unknown): SnapshotError {
  try {
    parseSnapshotMetadata(json);
  } catch (err) {
    expect(err).toBeInstanceOf(SnapshotError);
    return err as SnapshotError;
  }
  throw new Error("expected parseSnapshotMetadata to throw");
}

function set(obj: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const keys = path.split(".");
  let cur = obj as Record<string, unknown>;
  for (const k of keys.slice(0, -1)) cur = cur[k] as Record<string, unknown>;
  const last = keys.at(-1)!;
  if (value === undefined) delete cur[last];
  else cur[last] = value;
  return obj;
}

describe("parseSnapshotMetadata", () => {
  it("accepts valid metadata and drops unknown fields", () => {
    const m = parseSnapshotMetadata(valid());
    expect(m.memoryMib).toBe(256);
    expect(m.image.config.cmd).toEqual(["sh"]);
    expect("unknownField" in m).toBe(false);
    expect("labels" in m.image.config).toBe(false);
    expect("entrypoint" in m.image.config).toBe(false);
    expect(m.extraFiles[0]?.mode).toBe(0o644);
  });

  it("rejects another format version with SNAPSHOT_VERSION", () => {
    const err = errorOf({ ...valid(), formatVersion: 3 });
    expect(err.code).toBe("SNAPSHOT_VERSION");
    expect(err.message).toMatch(/number 3/);
    // format 1 named its root fs by a host path: refused with the fix
    const v1 = errorOf({ ...valid(), formatVersion: 1 });
    expect(v1.code).toBe("SNAPSHOT_VERSION");
    expect(v1.message).toMatch(/bake the image again/);
    expect(errorOf({ ...valid(), formatVersion: undefined }).code).toBe("SNAPSHOT_VERSION");
  });

  const cases: Array<[string, unknown]> = [
    ["fingerprint", "xyz"],
    ["createdAt", "not a date"],
    ["image.ref", ""],
    ["image.manifestDigest", "nodigest"],
    ["image.config.env", "A=1"],
    ["image.config.cmd", [1]],
    ["memoryMib", 0],
    ["memoryMib", 1.5],
    ["vcpus", "1"],
    ["guestPort", 70000],
    ["listenerRequired", "false"],
    ["trigger", "later"],
    ["extraFiles", {}],
    ["workload.argv", undefined],
    ["engine.qemuVersion", ""],
    ["engine.accel", undefined],
    ["assets.kernelHash", 5],
    ["files.memory.bin", undefined],
    ["warmupTag", 3],
    ["parentFingerprint", "short"],
    ["network", "none"],
    ["network.card", "yes"],
    ["network.policy", ["10.0.0.0/8"]],
    ["rootfs.size", -1],
    ["rootfs.sha256", "short"],
    // the digest names a file in a store: nothing but sha256:<64 hex>
    ["rootfs.digest", "sha256:r"],
    ["rootfs.digest", `sha256:${"e".repeat(64)}/../../etc/passwd`],
    ["rootfs.digest", `sha256:${"E".repeat(64)}`],
    ["rootfs.digest", undefined],
  ];
  for (const [field, value] of cases) {
    it(`names the bad field ${field} (${JSON.stringify(value) ?? "missing"})`, () => {
      const json =
        field === "files.memory.bin"
          ? { ...valid(), files: { "restore.snap": { size: 5 } } }
          : set(valid(), field, value);
      const err = errorOf(json);
      expect(err.code).toBe("SNAPSHOT_METADATA_INVALID");
      const reported = String(err.details.field);
      expect(reported.startsWith(field) || field.startsWith(reported)).toBe(true);
      expect(err.message).toContain(reported);
    });
  }

  it("keeps the network card and the policy it was built with", () => {
    const policy = { allowInternetAccess: false, allowOut: ["example.com", { to: "host", port: 5432 }] };
    const m = parseSnapshotMetadata({ ...valid(), network: { card: true, policy } });
    expect(m.network).toEqual({ card: true, policy });
    expect(parseSnapshotMetadata({ ...valid(), network: { card: false } }).network).toEqual({ card: false });
    expect("network" in parseSnapshotMetadata({ ...valid(), network: undefined })).toBe(false);
  });

  it("names the bad element of an array field", () => {
    const json = valid();
    (json.extraFiles as Array<Record<string, unknown>>)[0]!.guestPath = "relative";
    expect(errorOf(json).details.field).toBe("extraFiles[0].guestPath");
    const json2 = valid();
    (json2.workload as Record<string, unknown>).env = ["A=1", 2];
    expect(errorOf(json2).details.field).toBe("workload.env[1]");
  });

  it("rejects file names that are paths", () => {
    const json = valid();
    (json.files as Record<string, unknown>)["../escape"] = { size: 1 };
    expect(errorOf(json).details.field).toBe("files");
  });

  it("rejects unsafe guest paths with SNAPSHOT_UNSAFE_PATH naming the field", () => {
    const guest = (p: string) => {
      const json = valid();
      (json.extraFiles as Array<Record<string, unknown>>)[0]!.guestPath = p;
      return json;
    };
    for (const p of ["relative", "/etc/../../x", "/etc/x\u0000"]) {
      const err = errorOf(guest(p));
      expect(err.code).toBe("SNAPSHOT_UNSAFE_PATH");
      expect(err.details.field).toBe("extraFiles[0].guestPath");
    }
    // A guest path never reaches QEMU: commas are fine there.
    expect(parseSnapshotMetadata(guest("/etc/a,b")).extraFiles[0]?.guestPath).toBe("/etc/a,b");
  });
});
