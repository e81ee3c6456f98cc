import { describe, expect, it } from "vitest";
import { parseImageConfig } from "./image-config.js";
import { type ImageIndex, parseManifest, selectPlatform } from "./manifest.js";
import { MediaTypes } from "./media-types.js";
import { normalizePlatform, platformMatches } from "./platform.js";

const d = (c: string) => `sha256:${c.repeat(64)}`;
const json = (v: unknown) => Buffer.from(JSON.stringify(v));

function index(platforms: { os: string; architecture: string; variant?: string }[]): ImageIndex {
  const parsed = parseManifest(
    json({
      schemaVersion: 2,
      mediaType: MediaTypes.dockerManifestList,
      manifests: platforms.map((p, i) => ({
        mediaType: MediaTypes.dockerManifest,
        digest: d(String(i)),
        size: 10,
        platform: p,
      })),
    }),
  );
  if (parsed.kind !== "index") throw new Error("not an index");
  return parsed;
}

describe("parseManifest", () => {
  it("reads OCI and Docker schema 2 manifests", () => {
    for (const mediaType of [MediaTypes.ociManifest, MediaTypes.dockerManifest]) {
      const m = parseManifest(
        json({
          schemaVersion: 2,
          mediaType,
          config: { mediaType: MediaTypes.ociConfig, digest: d("c"), size: 5 },
          layers: [{ mediaType: MediaTypes.ociLayerGzip, digest: d("1"), size: 7 }],
        }),
      );
      expect(m).toMatchObject({
        kind: "manifest",
        mediaType,
        config: { digest: d("c") },
        layers: [{ size: 7 }],
      });
    }
  });

  it("uses the Content-Type when the JSON has no mediaType", () => {
    const m = parseManifest(
      json({ schemaVersion: 2, manifests: [] }),
      `${MediaTypes.ociIndex}; charset=utf-8`,
    );
    expect(m.kind).toBe("index");
  });

  it("rejects schema 1 with a typed error", () => {
    expect(() => parseManifest(json({ schemaVersion: 1, name: "x", fsLayers: [] }))).toThrow(
      expect.objectContaining({ code: "OCI_UNSUPPORTED_SCHEMA" }),
    );
    expect(() => parseManifest(json({ schemaVersion: 2 }), MediaTypes.dockerManifestV1Signed)).toThrow(
      /schema 1/,
    );
  });

  it("rejects unknown layer media types and malformed JSON", () => {
    const bad = json({
      schemaVersion: 2,
      config: { digest: d("c"), size: 1 },
      layers: [{ mediaType: "application/x-foo", digest: d("1"), size: 1 }],
    });
    expect(() => parseManifest(bad)).toThrow(expect.objectContaining({ code: "OCI_UNSUPPORTED_MEDIA_TYPE" }));
    expect(() => parseManifest(Buffer.from("{"))).toThrow(
      expect.objectContaining({ code: "OCI_INVALID_IMAGE" }),
    );
  });
});

describe("selectPlatform", () => {
  const idx = index([
    { os: "linux", architecture: "arm", variant: "v6" },
    { os: "linux", architecture: "arm", variant: "v7" },
    { os: "linux", architecture: "arm64", variant: "v8" },
    { os: "linux", architecture: "amd64" },
    { os: "unknown", architecture: "unknown" },
    { os: "windows", architecture: "amd64" },
  ]);

  it("matches os/arch and variant", () => {
    expect(selectPlatform(idx, { os: "linux", architecture: "amd64" }).digest).toBe(d("3"));
    expect(selectPlatform(idx, { os: "linux", architecture: "arm64" }).digest).toBe(d("2"));
    expect(selectPlatform(idx, { os: "linux", architecture: "aarch64" }).digest).toBe(d("2"));
    expect(selectPlatform(idx, { os: "linux", architecture: "arm", variant: "v6" }).digest).toBe(d("0"));
    expect(selectPlatform(idx, { os: "linux", architecture: "arm" }).digest).toBe(d("1"));
    expect(selectPlatform(idx, { os: "windows", architecture: "amd64" }).digest).toBe(d("5"));
  });

  it("throws OCI_NO_MATCHING_PLATFORM listing what is offered", () => {
    expect(() => selectPlatform(idx, { os: "linux", architecture: "riscv64" })).toThrow(
      expect.objectContaining({
        code: "OCI_NO_MATCHING_PLATFORM",
        message: expect.stringMatching(/linux\/arm64\/v8/),
      }),
    );
    expect(() =>
      selectPlatform(index([{ os: "linux", architecture: "arm64", variant: "v8" }]), {
        os: "linux",
        architecture: "amd64",
      }),
    ).toThrow(expect.objectContaining({ code: "OCI_NO_MATCHING_PLATFORM" }));
  });

  it("normalizes platforms", () => {
    expect(normalizePlatform({ os: "Linux", architecture: "x86_64" })).toEqual({
      os: "linux",
      architecture: "amd64",
    });
    expect(
      platformMatches(
        { os: "linux", architecture: "arm64", variant: "v8" },
        { os: "linux", architecture: "arm64" },
      ),
    ).toBe(true);
    expect(
      platformMatches(
        { os: "linux", architecture: "arm", variant: "v7" },
        { os: "linux", architecture: "arm", variant: "v6" },
      ),
    ).toBe(false);
  });
});

describe("parseImageConfig", () => {
  it("extracts the runtime settings", () => {
    const { config, diffIds } = parseImageConfig(
      json({
        architecture: "amd64",
        os: "linux",
        config: {
          Entrypoint: ["/e"],
          Cmd: null,
          Env: ["A=1"],
          WorkingDir: "/w",
          User: "1000:1000",
          ExposedPorts: { "80/tcp": {}, "53/udp": {} },
          StopSignal: "SIGQUIT",
          Labels: { a: "b" },
        },
        rootfs: { type: "layers", diff_ids: [d("1")] },
      }),
    );
    expect(config).toMatchObject({
      entrypoint: ["/e"],
      env: ["A=1"],
      workingDir: "/w",
      user: "1000:1000",
      exposedPorts: ["80/tcp", "53/udp"],
      stopSignal: "SIGQUIT",
      labels: { a: "b" },
      architecture: "amd64",
    });
    expect(config.cmd).toBeUndefined();
    expect(diffIds).toEqual([d("1")]);
  });

  it("requires rootfs.diff_ids", () => {
    expect(() => parseImageConfig(json({ config: {} }))).toThrow(
      expect.objectContaining({ code: "OCI_INVALID_IMAGE" }),
    );
  });
});
