import { describe, expect, it } from "vitest";
import {
  buildManifest,
  MACHINE_MEDIA_TYPE,
  METADATA_MEDIA_TYPE,
  PAGE_MAP_MEDIA_TYPE,
  PAGES_MEDIA_TYPE,
  parseManifest,
  STATE_MEDIA_TYPE,
  snapshotTag,
} from "./format.js";

const d = (mediaType: string, c: string) => ({ mediaType, digest: `sha256:${c.repeat(64)}`, size: 10 });
const FP = "ab".repeat(32);
const parts = {
  config: d(METADATA_MEDIA_TYPE, "1"),
  state: d(STATE_MEDIA_TYPE, "2"),
  machine: d(MACHINE_MEDIA_TYPE, "3"),
  pageMap: d(PAGE_MAP_MEDIA_TYPE, "4"),
  pages: d(PAGES_MEDIA_TYPE, "5"),
  subject: d("application/vnd.oci.image.manifest.v1+json", "6"),
};

function edit(fn: (m: Record<string, unknown>) => void): Buffer {
  const m = JSON.parse(buildManifest(parts, FP).toString());
  fn(m);
  return Buffer.from(JSON.stringify(m));
}

describe("snapshot artifact manifest", () => {
  it("round-trips, finding layers by media type", () => {
    const m = parseManifest(
      edit((m) => {
        (m.layers as unknown[]).reverse();
      }),
    );
    expect(m.fingerprint).toBe(FP);
    expect(m.pages.digest).toBe(parts.pages.digest);
    expect(m.subject?.digest).toBe(parts.subject.digest);
  });

  it("derives the tag from the fingerprint, and only from 64 hex", () => {
    expect(snapshotTag(FP)).toBe(`supermachine-snapshot-${FP}`);
    expect(snapshotTag(FP).length).toBeLessThanOrEqual(128);
    expect(() => snapshotTag("../x")).toThrow(/64 hex/);
  });

  it("refuses anything else", () => {
    const bad: Array<[string, (m: Record<string, unknown>) => void]> = [
      ["artifactType", (m) => (m.artifactType = "application/vnd.oci.image.config.v1+json")],
      ["layer count", (m) => (m.layers as unknown[]).pop()],
      ["duplicate layer", (m) => ((m.layers as unknown[])[1] = (m.layers as unknown[])[0])],
      [
        "digest algorithm",
        (m) => ((m.config as Record<string, unknown>).digest = `sha512:${"1".repeat(128)}`),
      ],
      ["digest path", (m) => ((m.config as Record<string, unknown>).digest = "sha256:../../etc/passwd")],
      ["negative size", (m) => ((m.config as Record<string, unknown>).size = -1)],
      ["huge size", (m) => ((m.config as Record<string, unknown>).size = 2 ** 60)],
      ["fingerprint", (m) => (m.annotations = {})],
      ["config type", (m) => ((m.config as Record<string, unknown>).mediaType = "x")],
    ];
    for (const [what, fn] of bad) {
      expect(() => parseManifest(edit(fn)), what).toThrow(/snapshot artifact/);
    }
    expect(() => parseManifest(Buffer.from("not json"))).toThrow(/not JSON/);
  });
});
