import { computeFingerprint } from "@supermachine/snapshot";
import { describe, expect, it } from "vitest";
import {
  chooseTrigger,
  type ExtraFile,
  fingerprintFile,
  fingerprintInputs,
  type ResolvedBuildOptions,
  resolveBuildOptions,
} from "./bake-plan.js";
import type { BuildOptions } from "./options.js";

const REF = "127.0.0.1:5000/busybox:1";
const warmup = async () => {};

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

describe("resolveBuildOptions", () => {
  it("applies the documented defaults", () => {
    expect(resolveBuildOptions({ ref: REF })).toEqual({
      memoryMib: 256,
      vcpus: 1,
      guestPort: 80,
      pullPolicy: "missing",
      accel: "auto",
      // the host's architecture
      arch: process.arch === "arm64" ? "aarch64" : "x86_64",
      listenerRequired: false,
      trigger: "pre-exec",
      warmupTag: undefined,
      listenerTimeoutMs: 60_000,
    });
  });

  it("keeps valid values as given", () => {
    expect(
      resolveBuildOptions({
        ref: REF,
        memoryMib: 512,
        vcpus: 2,
        guestPort: 8080,
        pullPolicy: "never",
        accel: "tcg",
        arch: "aarch64",
        listenerRequired: true,
        listenerTimeoutMs: 5_000,
      }),
    ).toEqual({
      memoryMib: 512,
      vcpus: 2,
      guestPort: 8080,
      pullPolicy: "never",
      accel: "tcg",
      arch: "aarch64",
      listenerRequired: true,
      trigger: "listener",
      warmupTag: undefined,
      listenerTimeoutMs: 5_000,
    });
  });

  it.each<[string, Partial<BuildOptions>]>([
    ["no ref", { ref: "" }],
    ["memoryMib below 64", { memoryMib: 32 }],
    ["memoryMib not an integer", { memoryMib: 256.5 }],
    ["vcpus 0", { vcpus: 0 }],
    ["vcpus above 8", { vcpus: 9 }],
    ["guestPort 0", { guestPort: 0 }],
    ["guestPort above 65535", { guestPort: 65536 }],
    ["an unknown pullPolicy", { pullPolicy: "sometimes" }],
    ["an unknown accel", { accel: "xen" as "kvm" }],
    ["an unknown arch", { arch: "riscv64" as "aarch64" }],
    ["listenerTimeoutMs 0", { listenerTimeoutMs: 0 }],
    ["listenerTimeoutMs negative", { listenerTimeoutMs: -1 }],
    ["listenerRequired not a boolean", { listenerRequired: "yes" as unknown as boolean }],
    ["cmd not an array", { cmd: "sh" as unknown as string[] }],
    ["cmd with a number", { cmd: ["sleep", 1] as unknown as string[] }],
    ["env with a number", { env: { A: 1 } as unknown as Record<string, string> }],
    ["env an array", { env: ["A=1"] as unknown as Record<string, string> }],
    ["warmup not a function", { warmup: "later" as unknown as BuildOptions["warmup"] }],
    ["an empty warmupTag", { warmup, warmupTag: "" }],
    ["extraFiles not an array", { extraFiles: {} as unknown as BuildOptions["extraFiles"] }],
    ["a relative guestPath", { extraFiles: [{ hostPath: "/etc/hostname", guestPath: "etc/x" }] }],
    ["an empty hostPath", { extraFiles: [{ hostPath: "", guestPath: "/x" }] }],
  ])("rejects %s with INVALID_OPTIONS", (_what, bad) => {
    expect(codeOf(() => resolveBuildOptions({ ref: REF, ...bad }))).toBe("INVALID_OPTIONS");
  });

  it("rejects a missing options object with INVALID_OPTIONS", () => {
    expect(codeOf(() => resolveBuildOptions(undefined as unknown as BuildOptions))).toBe("INVALID_OPTIONS");
  });
});

describe("trigger choice", () => {
  it("warmup wins over listenerRequired, which wins over the default", () => {
    expect(chooseTrigger({})).toBe("pre-exec");
    expect(chooseTrigger({ listenerRequired: false })).toBe("pre-exec");
    expect(chooseTrigger({ listenerRequired: true })).toBe("listener");
    expect(chooseTrigger({ warmup })).toBe("warmup");
    expect(chooseTrigger({ warmup, listenerRequired: true })).toBe("warmup");
  });

  it("the warmup tag is kept (default 'default') only with a warmup callback", () => {
    expect(resolveBuildOptions({ ref: REF, warmupTag: "v2" }).warmupTag).toBeUndefined();
    expect(resolveBuildOptions({ ref: REF, warmup }).warmupTag).toBe("default");
    expect(resolveBuildOptions({ ref: REF, warmup, warmupTag: "v2" }).warmupTag).toBe("v2");
  });
});

describe("fingerprint inputs", () => {
  const assets = { kernelHash: "k1", agentHash: "a1" };
  const engine = { accel: "tcg", cpuModel: "max", qemuVersion: "10.0.2" };
  const file = (bytes: string, mode = 0o644, guestPath = "/opt/x"): ExtraFile => ({
    hostPath: "/host/x",
    guestPath,
    bytes: Buffer.from(bytes),
    mode,
  });
  const fp = (
    options: BuildOptions,
    over: { files?: ExtraFile[]; digest?: string; assets?: typeof assets; engine?: typeof engine } = {},
  ): string => {
    const resolved: ResolvedBuildOptions = resolveBuildOptions(options);
    return computeFingerprint(
      fingerprintInputs(
        resolved,
        options,
        over.digest ?? "sha256:aa",
        over.files ?? [file("one")],
        over.assets ?? assets,
        over.engine ?? engine,
      ),
    );
  };
  const base = fp({ ref: REF });

  it("records an extra file by content hash and mode, not by host path", () => {
    expect(fingerprintFile(file("one", 0o755))).toEqual({
      guestPath: "/opt/x",
      sha256: "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed",
      mode: 0o755,
    });
    expect(fp({ ref: REF }, { files: [{ ...file("one"), hostPath: "/elsewhere" }] })).toBe(base);
  });

  it.each<
    [
      string,
      BuildOptions,
      { files?: ExtraFile[]; digest?: string; assets?: typeof assets; engine?: typeof engine }?,
    ]
  >([
    ["the manifest digest", { ref: REF }, { digest: "sha256:bb" }],
    ["cmd", { ref: REF, cmd: ["sleep", "1"] }],
    ["an empty cmd (differs from the image's)", { ref: REF, cmd: [] }],
    ["env", { ref: REF, env: { A: "1" } }],
    ["memoryMib", { ref: REF, memoryMib: 512 }],
    ["vcpus", { ref: REF, vcpus: 2 }],
    ["guestPort", { ref: REF, guestPort: 8080 }],
    ["listenerRequired", { ref: REF, listenerRequired: true }],
    ["a warmup callback", { ref: REF, warmup }],
    ["an extra file's bytes", { ref: REF }, { files: [file("two")] }],
    ["an extra file's mode", { ref: REF }, { files: [file("one", 0o755)] }],
    ["an extra file's guest path", { ref: REF }, { files: [file("one", 0o644, "/opt/y")] }],
    ["the kernel build", { ref: REF }, { assets: { kernelHash: "k2", agentHash: "a1" } }],
    ["the agent build", { ref: REF }, { assets: { kernelHash: "k1", agentHash: "a2" } }],
    ["the accelerator", { ref: REF }, { engine: { ...engine, accel: "kvm" } }],
    ["the CPU model", { ref: REF }, { engine: { ...engine, cpuModel: "host" } }],
    ["the QEMU version", { ref: REF }, { engine: { ...engine, qemuVersion: "10.1.0" } }],
  ])("changes with %s", (_what, options, over) => {
    expect(fp(options, over)).not.toBe(base);
  });

  it("changes with the warmup tag when there is a warmup", () => {
    expect(fp({ ref: REF, warmup, warmupTag: "v2" })).not.toBe(fp({ ref: REF, warmup }));
  });

  it.each<[string, BuildOptions]>([
    ["listenerTimeoutMs", { ref: REF, listenerTimeoutMs: 1_000 }],
    ["pullPolicy", { ref: REF, pullPolicy: "always" }],
    ["name", { ref: REF, name: "web" }],
    ["snapshotsDir", { ref: REF, snapshotsDir: "/elsewhere" }],
    ["insecureRegistries", { ref: REF, insecureRegistries: ["127.0.0.1:5000"] }],
    ["a warmup tag without a warmup", { ref: REF, warmupTag: "v2" }],
    [
      "the defaults spelled out",
      { ref: REF, memoryMib: 256, vcpus: 1, guestPort: 80, listenerRequired: false },
    ],
  ])("does not change with %s", (_what, options) => {
    expect(fp(options)).toBe(base);
  });
});
