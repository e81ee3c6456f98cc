import { describe, expect, it } from "vitest";
import { isSupermachineError, SupermachineError } from "./index.js";

class DemoError extends SupermachineError {}

describe("SupermachineError", () => {
  it("carries code, cause, details and the subclass name", () => {
    const cause = new Error("root");
    const err = new DemoError("DEMO_FAILED", "demo failed", { cause, details: { path: "/x" } });
    expect(err.code).toBe("DEMO_FAILED");
    expect(err.cause).toBe(cause);
    expect(err.details).toEqual({ path: "/x" });
    expect(err.name).toBe("DemoError");
    expect(err).toBeInstanceOf(Error);
  });

  it("is recognised by shape and code", () => {
    const err = new SupermachineError("A", "a");
    expect(isSupermachineError(err)).toBe(true);
    expect(isSupermachineError(err, "A")).toBe(true);
    expect(isSupermachineError(err, "B")).toBe(false);
    expect(isSupermachineError(new Error("x"))).toBe(false);
    expect(isSupermachineError(null)).toBe(false);
  });
});
