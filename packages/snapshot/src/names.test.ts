import { describe, expect, it } from "vitest";
import { defaultSnapshotName, sanitizeRef } from "./names.js";

describe("sanitizeRef", () => {
  it("keeps registry references readable", () => {
    expect(sanitizeRef("127.0.0.1:5000/library/busybox:latest")).toBe(
      "127.0.0.1_5000_library_busybox_latest",
    );
  });

  it("names local sources by their last path component and tag, not their host path", () => {
    expect(sanitizeRef("oci:/root/.cache/supermachine/images/default:latest")).toBe("oci-default_latest");
    expect(sanitizeRef("oci:/srv/layouts/app/")).toBe("oci-app");
    expect(sanitizeRef("docker-archive:/tmp/x/app.tar")).toBe("archive-app");
    expect(sanitizeRef("oci:/a/b@sha256:abc")).toBe("oci-b_sha256_abc");
    expect(sanitizeRef("oci:")).toBe("oci-image");
  });

  it("never starts with a dot or dash and stays short", () => {
    expect(sanitizeRef("...x")).toBe("x");
    expect(sanitizeRef("a".repeat(300))).toHaveLength(100);
  });
});

describe("defaultSnapshotName", () => {
  it("adds the first 16 hex digits of the fingerprint", () => {
    expect(defaultSnapshotName("oci:/x/default:latest", "0123456789abcdef".repeat(4))).toBe(
      "oci-default_latest-0123456789abcdef",
    );
  });
});
