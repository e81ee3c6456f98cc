import { describe, expect, it } from "vitest";
import { artifactRef, snapshotRepositoryFor } from "./registry-snapshots.js";

describe("where an image's snapshots are published", () => {
  it("in the image's own repository, or the one given", () => {
    expect(snapshotRepositoryFor("127.0.0.1:5000/team/app:1")).toEqual({
      registry: "127.0.0.1:5000",
      repository: "team/app",
    });
    expect(snapshotRepositoryFor("alpine")).toEqual({ registry: "docker.io", repository: "library/alpine" });
    expect(snapshotRepositoryFor("oci:/x:latest", "127.0.0.1:5000/fleet/snaps")).toEqual({
      registry: "127.0.0.1:5000",
      repository: "fleet/snaps",
    });
    expect(artifactRef({ registry: "h:1", repository: "r" }, "ab".repeat(32))).toBe(
      `h:1/r:supermachine-snapshot-${"ab".repeat(32)}`,
    );
  });

  it("needs a repository for images that are not in a registry", () => {
    expect(() => snapshotRepositoryFor("oci:/x:latest")).toThrow(
      expect.objectContaining({ code: "SNAPSHOT_PUSH_UNSUPPORTED" }),
    );
    expect(() => snapshotRepositoryFor("alpine", `h:1/r@sha256:${"a".repeat(64)}`)).toThrow(
      expect.objectContaining({ code: "INVALID_OPTIONS" }),
    );
  });
});
