import { describe, expect, it } from "vitest";
import { resolveOptions, retryDelay } from "./options.js";
import { FakeFactory } from "./test-support/fake-factory.js";
import { WorkerPool } from "./worker-pool.js";

describe("resolveOptions", () => {
  it("applies the contract's defaults", () => {
    expect(resolveOptions()).toEqual({
      min: 1,
      max: 1,
      acquireTimeoutMs: 60_000,
      idleTimeoutMs: undefined,
      restoreOnRelease: true,
      retryInitialDelayMs: 100,
      retryMaxDelayMs: 10_000,
      onEvent: undefined,
    });
  });

  it("defaults max to min when only min is given, and accepts null idleTimeoutMs", () => {
    expect(resolveOptions({ min: 4, idleTimeoutMs: null })).toMatchObject({
      min: 4,
      max: 4,
      idleTimeoutMs: undefined,
    });
    expect(resolveOptions({ min: 0 })).toMatchObject({ min: 0, max: 1 });
  });

  it.each([
    [{ min: -1 }, "min"],
    [{ min: 1.5 }, "min"],
    [{ max: 0 }, "max"],
    [{ min: 3, max: 2 }, "max (2) must be >= min (3)"],
    [{ acquireTimeoutMs: -5 }, "acquireTimeoutMs"],
    [{ acquireTimeoutMs: Number.NaN }, "acquireTimeoutMs"],
    [{ acquireTimeoutMs: 2 ** 31 }, "acquireTimeoutMs"],
    [{ idleTimeoutMs: -1 }, "idleTimeoutMs"],
    [{ restoreOnRelease: "yes" }, "restoreOnRelease"],
    [{ retryInitialDelayMs: 500, retryMaxDelayMs: 100 }, "retryMaxDelayMs"],
    [{ onEvent: 42 }, "onEvent"],
    [{ max: "2" }, "max"],
  ])("rejects %o with INVALID_OPTIONS", (opts, mention) => {
    expect(() => resolveOptions(opts as never)).toThrow(
      expect.objectContaining({ code: "INVALID_OPTIONS", message: expect.stringContaining(mention) }),
    );
  });

  it("is enforced by the WorkerPool constructor, which then creates nothing", () => {
    const ff = new FakeFactory();
    expect(() => new WorkerPool(ff.factory(), { min: 2, max: 1 })).toThrow(
      expect.objectContaining({ code: "INVALID_OPTIONS" }),
    );
    expect(() => new WorkerPool({} as never)).toThrow(expect.objectContaining({ code: "INVALID_OPTIONS" }));
    expect(ff.createCalls).toBe(0);
  });
});

describe("retryDelay", () => {
  it("doubles from the initial delay and caps", () => {
    expect([0, 1, 2, 3, 4, 5, 60].map((n) => retryDelay(n, 100, 1000))).toEqual([
      0, 100, 200, 400, 800, 1000, 1000,
    ]);
    expect(retryDelay(3, 0, 0)).toBe(0);
  });
});
