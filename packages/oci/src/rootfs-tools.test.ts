import { describe, expect, it } from "vitest";
import { checkRootfsTools } from "./rootfs-tools.js";

describe("checkRootfsTools", () => {
  it("finds the e2fsprogs that setup installs (1.47.1 or newer)", () => {
    const s = checkRootfsTools();
    expect(s).toEqual({ ok: true, version: expect.stringMatching(/^1\.(4[7-9]|[5-9]\d)\./) });
  });

  it("reports a missing mke2fs with the install command", () => {
    const path = process.env.PATH;
    process.env.PATH = "/nonexistent";
    try {
      expect(checkRootfsTools()).toMatchObject({ ok: false, problem: "mke2fs is not installed" });
      expect(checkRootfsTools().fix).toContain("e2fsprogs");
    } finally {
      process.env.PATH = path;
    }
  });
});
