import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SnapshotError } from "./errors.js";
import { computeFingerprint, type FingerprintInputs } from "./fingerprint.js";

const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/);
const extraFile = fc.record({
  guestPath: fc.string({ minLength: 1 }).map((s) => `/${s}`),
  sha256: hex64,
  mode: fc.integer({ min: 0, max: 0o7777 }),
});

const inputs: fc.Arbitrary<FingerprintInputs> = fc.record(
  {
    manifestDigest: hex64.map((h) => `sha256:${h}`),
    cmd: fc.option(fc.array(fc.string()), { nil: undefined }),
    env: fc.option(fc.dictionary(fc.string({ minLength: 1 }), fc.string()), { nil: undefined }),
    memoryMib: fc.integer({ min: 1, max: 65536 }),
    vcpus: fc.integer({ min: 1, max: 64 }),
    guestPort: fc.integer({ min: 1, max: 65535 }),
    listenerRequired: fc.boolean(),
    extraFiles: fc.option(fc.uniqueArray(extraFile, { selector: (f) => f.guestPath, maxLength: 5 }), {
      nil: undefined,
    }),
    warmupTag: fc.option(fc.string(), { nil: undefined }),
    kernelHash: fc.string({ minLength: 1 }),
    agentHash: fc.string({ minLength: 1 }),
    accel: fc.constantFrom("tcg", "kvm", "hvf"),
    cpuModel: fc.constantFrom("max", "host"),
    qemuVersion: fc.constantFrom("10.0.2", "7.2.0"),
    networkCard: fc.option(fc.boolean(), { nil: undefined }),
    arch: fc.option(fc.constantFrom("x86_64", "aarch64"), { nil: undefined }),
  },
  {
    requiredKeys: [
      "manifestDigest",
      "memoryMib",
      "vcpus",
      "guestPort",
      "listenerRequired",
      "kernelHash",
      "agentHash",
      "accel",
      "cpuModel",
      "qemuVersion",
    ],
  },
);

/** One change to one input that must change the result. */
const mutations: Array<[string, (i: FingerprintInputs) => FingerprintInputs]> = [
  ["manifestDigest", (i) => ({ ...i, manifestDigest: `${i.manifestDigest}0` })],
  ["cmd appended", (i) => ({ ...i, cmd: [...(i.cmd ?? []), "x"] })],
  ["cmd unset vs set", (i) => ({ ...i, cmd: i.cmd === undefined ? [] : undefined })],
  [
    "env changed",
    (i) => ({ ...i, env: { ...(i.env ?? {}), "\u0000new": `${i.env?.["\u0000new"] ?? ""}v` } }),
  ],
  ["memoryMib", (i) => ({ ...i, memoryMib: i.memoryMib + 1 })],
  ["vcpus", (i) => ({ ...i, vcpus: i.vcpus + 1 })],
  ["guestPort", (i) => ({ ...i, guestPort: i.guestPort === 1 ? 2 : i.guestPort - 1 })],
  ["listenerRequired", (i) => ({ ...i, listenerRequired: !i.listenerRequired })],
  [
    "extraFiles added",
    (i) => ({
      ...i,
      extraFiles: [
        ...(i.extraFiles ?? []),
        { guestPath: "/\u0000extra", sha256: "0".repeat(64), mode: 0o644 },
      ],
    }),
  ],
  ["warmupTag", (i) => ({ ...i, warmupTag: i.warmupTag === undefined ? "default" : `${i.warmupTag}!` })],
  ["kernelHash", (i) => ({ ...i, kernelHash: `${i.kernelHash}x` })],
  ["agentHash", (i) => ({ ...i, agentHash: `${i.agentHash}x` })],
  ["accel", (i) => ({ ...i, accel: i.accel === "tcg" ? "kvm" : "tcg" })],
  ["cpuModel", (i) => ({ ...i, cpuModel: `${i.cpuModel},-pmu` })],
  ["qemuVersion", (i) => ({ ...i, qemuVersion: `${i.qemuVersion}.1` })],
  ["networkCard", (i) => ({ ...i, networkCard: i.networkCard === false })],
  ["arch", (i) => ({ ...i, arch: i.arch === "aarch64" ? "x86_64" : "aarch64" })],
];

function shuffled<T>(arr: readonly T[], seed: number): T[] {
  const out = [...arr];
  let s = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe("computeFingerprint", () => {
  it("is a 64-hex sha256 and deterministic", () => {
    fc.assert(
      fc.property(inputs, (i) => {
        const a = computeFingerprint(i);
        expect(a).toMatch(/^[0-9a-f]{64}$/);
        expect(computeFingerprint(structuredClone(i))).toBe(a);
      }),
    );
  });

  it("ignores the order of env keys and of extra files with distinct guest paths", () => {
    fc.assert(
      fc.property(inputs, fc.integer(), (i, seed) => {
        const env = i.env ? Object.fromEntries(shuffled(Object.entries(i.env), seed)) : undefined;
        const extraFiles = i.extraFiles ? shuffled(i.extraFiles, seed) : undefined;
        expect(computeFingerprint({ ...i, env, extraFiles })).toBe(computeFingerprint(i));
      }),
    );
  });

  it("gives an x86_64 bake the fingerprint it had before architectures were an input", () => {
    fc.assert(
      fc.property(inputs, (i) => {
        const { arch: _, ...legacy } = i;
        expect(computeFingerprint({ ...legacy, arch: "x86_64" })).toBe(computeFingerprint(legacy));
      }),
    );
  });

  it("changes when any single input changes", () => {
    fc.assert(
      fc.property(inputs, fc.constantFrom(...mutations), (i, [, mutate]) => {
        expect(computeFingerprint(mutate(i))).not.toBe(computeFingerprint(i));
      }),
    );
  });

  it("changes when an extra file's contents or mode change", () => {
    fc.assert(
      fc.property(inputs, extraFile, (i, f) => {
        const base = { ...i, extraFiles: [f] };
        const contents = {
          ...i,
          extraFiles: [{ ...f, sha256: f.sha256 === "0".repeat(64) ? "1".repeat(64) : "0".repeat(64) }],
        };
        const mode = { ...i, extraFiles: [{ ...f, mode: f.mode ^ 0o100 }] };
        expect(computeFingerprint(contents)).not.toBe(computeFingerprint(base));
        expect(computeFingerprint(mode)).not.toBe(computeFingerprint(base));
      }),
    );
  });

  it("treats env undefined like {} and extraFiles undefined like []", () => {
    fc.assert(
      fc.property(inputs, (i) => {
        const none = computeFingerprint({ ...i, env: undefined, extraFiles: undefined });
        expect(computeFingerprint({ ...i, env: {}, extraFiles: [] })).toBe(none);
      }),
    );
  });

  it("rejects inputs of the wrong type with a typed error naming the field", () => {
    const good: FingerprintInputs = {
      manifestDigest: "sha256:x",
      memoryMib: 256,
      vcpus: 1,
      guestPort: 80,
      listenerRequired: false,
      kernelHash: "k",
      agentHash: "a",
      accel: "tcg",
      cpuModel: "max",
      qemuVersion: "10.0.2",
    };
    const bad = { ...good, memoryMib: "256" } as unknown as FingerprintInputs;
    expect(() => computeFingerprint(bad)).toThrowError(SnapshotError);
    try {
      computeFingerprint(bad);
    } catch (err) {
      expect((err as SnapshotError).code).toBe("SNAPSHOT_FINGERPRINT_INPUT_INVALID");
      expect((err as SnapshotError).details.field).toBe("memoryMib");
    }
    expect(() => computeFingerprint({ ...good, env: { A: 1 } } as unknown as FingerprintInputs)).toThrow(
      /env\.A/,
    );
  });
});
