import { describe, expect, it } from "vitest";
import { enumOption, intOption } from "./validate.js";

describe("option validation", () => {
  it("applies defaults and accepts values in range", () => {
    expect(intOption("memoryMib", undefined, 256, 64, 1024)).toBe(256);
    expect(intOption("memoryMib", 512, 256, 64, 1024)).toBe(512);
    expect(enumOption("pullPolicy", undefined, "missing", ["always", "missing", "never"] as const)).toBe(
      "missing",
    );
  });

  it("rejects out-of-range, fractional and unknown values with INVALID_OPTIONS", () => {
    for (const bad of [0, 63, 1025, 1.5, Number.NaN]) {
      expect(() => intOption("memoryMib", bad, 256, 64, 1024)).toThrow(
        expect.objectContaining({ code: "INVALID_OPTIONS" }),
      );
    }
    expect(() =>
      enumOption("pullPolicy", "sometimes", "missing", ["always", "missing", "never"] as const),
    ).toThrow(/pullPolicy must be one of always, missing, never/);
  });
});
