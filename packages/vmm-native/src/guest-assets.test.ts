import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { VmmError } from "./errors.js";
import { GUEST_PACKAGE, guestAssetsCandidates, resolveGuestAssets } from "./guest-assets.js";

let dir: string;
const saved = { ...process.env };
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "sm-guest-"));
  process.env.SUPERMACHINE_CACHE = join(dir, "cache");
  delete process.env.SUPERMACHINE_GUEST_ASSETS;
  delete process.env.SUPERMACHINE_GUEST_ASSETS_AARCH64;
});
afterEach(() => {
  process.env = { ...saved };
  rmSync(dir, { recursive: true, force: true });
});

function fakeGuest(at: string, manifest: Record<string, unknown>): string {
  mkdirSync(at, { recursive: true });
  writeFileSync(join(at, "k"), "kernel");
  writeFileSync(join(at, "i"), "initrd");
  const path = join(at, "manifest.json");
  writeFileSync(path, JSON.stringify(manifest));
  return path;
}

function thrown(f: () => unknown): VmmError {
  try {
    f();
  } catch (err) {
    return err as VmmError;
  }
  throw new Error("did not throw");
}

describe("resolveGuestAssets", () => {
  it("an explicit manifest wins; its relative paths are relative to it", () => {
    const m = fakeGuest(join(dir, "g"), { kernel: "k", initrd: "i", kernelHash: "kh", agentHash: "ah" });
    process.env.SUPERMACHINE_GUEST_ASSETS = m;
    expect(resolveGuestAssets("x86_64")).toEqual({
      arch: "x86_64",
      kernel: join(dir, "g", "k"),
      initrd: join(dir, "g", "i"),
      kernelHash: "kh",
      agentHash: "ah",
      source: "override",
      manifest: m,
    });
    expect(guestAssetsCandidates("x86_64")).toEqual([{ source: "override", manifest: m }]);
  });

  it("resolves each architecture's guest on its own: variable, package, cache", () => {
    const x86 = fakeGuest(join(dir, "x"), { kernel: "k", initrd: "i", kernelHash: "xk", agentHash: "xa" });
    const arm = fakeGuest(join(dir, "a"), {
      arch: "aarch64",
      kernel: "k",
      initrd: "i",
      kernelHash: "ak",
      agentHash: "aa",
    });
    process.env.SUPERMACHINE_GUEST_ASSETS = x86;
    process.env.SUPERMACHINE_GUEST_ASSETS_AARCH64 = arm;
    expect(resolveGuestAssets("aarch64")).toMatchObject({ arch: "aarch64", kernelHash: "ak", manifest: arm });
    expect(resolveGuestAssets("x86_64")).toMatchObject({ arch: "x86_64", kernelHash: "xk", manifest: x86 });
    delete process.env.SUPERMACHINE_GUEST_ASSETS_AARCH64;
    const cands = guestAssetsCandidates("aarch64");
    expect(cands[0]?.manifest).toMatch(/guest-aarch64\/assets\/manifest\.json$/);
    expect(cands.at(-1)?.manifest).toBe(join(dir, "cache", "guest-assets-aarch64.json"));
  });

  it("refuses a manifest built for another architecture", () => {
    const arm = fakeGuest(join(dir, "a"), {
      arch: "aarch64",
      kernel: "k",
      initrd: "i",
      kernelHash: "k",
      agentHash: "a",
    });
    process.env.SUPERMACHINE_GUEST_ASSETS = arm;
    const err = thrown(() => resolveGuestAssets("x86_64"));
    expect(err.code).toBe("GUEST_ASSETS_MISSING");
    expect(err.message).toMatch(/is for aarch64, not x86_64/);
  });

  it("names the aarch64 package and build command when that guest is missing", () => {
    process.env.SUPERMACHINE_GUEST_ASSETS_AARCH64 = join(dir, "nowhere.json");
    const err = thrown(() => resolveGuestAssets("aarch64"));
    expect(err.code).toBe("GUEST_ASSETS_MISSING");
    expect(err.message).toContain("npm install @supermachine/guest-aarch64");
    expect(err.message).toContain("build-assets.sh aarch64");
  });

  it("looks at the installed guest package before the user cache", () => {
    const cands = guestAssetsCandidates();
    expect(cands.map((c) => c.source)).toEqual(["package", "cache"]);
    expect(cands[0]?.manifest).toMatch(/guest-x86_64\/assets\/manifest\.json$/);
    expect(cands[1]?.manifest).toBe(join(dir, "cache", "guest-assets.json"));
    // a cache manifest naming other files does not shadow the installed package (setup built it)
    fakeGuest(join(dir, "cache"), { kernel: "k", initrd: "i", kernelHash: "x", agentHash: "y" });
    expect(resolveGuestAssets().source).toBe("package");
  });

  it("fails with GUEST_ASSETS_MISSING naming the package to install", () => {
    process.env.SUPERMACHINE_GUEST_ASSETS = join(dir, "nowhere.json");
    const err = thrown(() => resolveGuestAssets());
    expect(err.code).toBe("GUEST_ASSETS_MISSING");
    expect(err.message).toContain(`npm install ${GUEST_PACKAGE}`);
    expect(err.message).toContain("doctor");
  });

  it("refuses a manifest whose files are gone, or that lacks the build hashes", () => {
    const m = fakeGuest(join(dir, "g"), { kernel: "gone", initrd: "i", kernelHash: "kh", agentHash: "ah" });
    process.env.SUPERMACHINE_GUEST_ASSETS = m;
    expect(thrown(() => resolveGuestAssets()).message).toMatch(/g\/gone listed in .* does not exist/);
    const n = fakeGuest(join(dir, "h"), { kernel: "k", initrd: "i" });
    process.env.SUPERMACHINE_GUEST_ASSETS = n;
    expect(thrown(() => resolveGuestAssets()).code).toBe("GUEST_ASSETS_MISSING");
  });
});
