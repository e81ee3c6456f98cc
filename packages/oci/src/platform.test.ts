import { describe, expect, it } from "vitest";
import { NoMatchingPlatformError } from "./errors.js";
import { type ImageIndex, parseManifest, selectPlatform } from "./manifest.js";
import { MediaTypes } from "./media-types.js";
import { formatPlatform, platformForGuestArch } from "./platform.js";

const d = (c: string) => `sha256:${c.repeat(64)}`;

/** A multi-arch index as `docker buildx` pushes it: images plus attestation entries. */
function multiArch(platforms: { os: string; architecture: string; variant?: string }[]): ImageIndex {
  const parsed = parseManifest(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaTypes.ociIndex,
        manifests: platforms.map((platform, i) => ({
          mediaType: MediaTypes.ociManifest,
          digest: d(i.toString(16)),
          size: 100 + i,
          platform,
        })),
      }),
    ),
  );
  if (parsed.kind !== "index") throw new Error("not an index");
  return parsed;
}

describe("platformForGuestArch", () => {
  it("maps each guest architecture to its OCI platform", () => {
    expect(platformForGuestArch("x86_64")).toEqual({ os: "linux", architecture: "amd64" });
    expect(platformForGuestArch("aarch64")).toEqual({ os: "linux", architecture: "arm64", variant: "v8" });
    expect(formatPlatform(platformForGuestArch("aarch64"))).toBe("linux/arm64/v8");
  });

  it("refuses an unknown architecture", () => {
    expect(() => platformForGuestArch("riscv64" as never)).toThrow(/riscv64/);
  });
});

describe("choosing a guest architecture's image from a multi-arch index", () => {
  const idx = multiArch([
    { os: "unknown", architecture: "unknown" }, // an attestation manifest
    { os: "linux", architecture: "arm", variant: "v7" },
    { os: "linux", architecture: "amd64" },
    { os: "linux", architecture: "arm64", variant: "v8" },
    { os: "linux", architecture: "arm64", variant: "v9" },
  ]);

  it("picks linux/amd64 for x86_64 and linux/arm64/v8 for aarch64", () => {
    expect(selectPlatform(idx, platformForGuestArch("x86_64")).digest).toBe(d("2"));
    expect(selectPlatform(idx, platformForGuestArch("aarch64")).digest).toBe(d("3"));
  });

  it("takes an arm64 entry without a variant as v8", () => {
    const plain = multiArch([
      { os: "linux", architecture: "amd64" },
      { os: "linux", architecture: "arm64" },
    ]);
    expect(selectPlatform(plain, platformForGuestArch("aarch64")).digest).toBe(d("1"));
  });

  it("fails with OCI_NO_MATCHING_PLATFORM listing every platform the index offers", () => {
    const amd64Only = multiArch([
      { os: "linux", architecture: "amd64" },
      { os: "linux", architecture: "386" },
    ]);
    let err: unknown;
    try {
      selectPlatform(amd64Only, platformForGuestArch("aarch64"));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NoMatchingPlatformError);
    const e = err as NoMatchingPlatformError;
    expect(e.code).toBe("OCI_NO_MATCHING_PLATFORM");
    expect(e.message).toBe("no image for platform linux/arm64/v8; the index offers linux/amd64, linux/386");
    expect(e.details).toEqual({
      wanted: { os: "linux", architecture: "arm64", variant: "v8" },
      offered: ["linux/amd64", "linux/386"],
    });
  });

  it("does not take an arm64/v9-only image for a v8 guest", () => {
    const v9 = multiArch([{ os: "linux", architecture: "arm64", variant: "v9" }]);
    expect(() => selectPlatform(v9, platformForGuestArch("aarch64"))).toThrow(
      expect.objectContaining({ code: "OCI_NO_MATCHING_PLATFORM" }),
    );
  });
});
