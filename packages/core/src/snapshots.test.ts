import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { inspectSnapshot, listSnapshots, pruneSnapshots } from "./index.js";
import { rejection } from "./test-support/fixture.js";

const root = mkdtempSync(join(tmpdir(), "sm-snapshots-unit-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("snapshots API without a bake", () => {
  it("lists a missing directory as empty", async () => {
    expect(await listSnapshots({ snapshotsDir: join(root, "nope") })).toEqual([]);
  });

  it("reports a broken snapshot as invalid with its code, and prune removes it", async () => {
    const dir = join(root, "broken");
    mkdirSync(join(dir, "half-written"), { recursive: true });
    writeFileSync(join(dir, "half-written", "metadata.json"), "{ not json");
    mkdirSync(join(dir, ".tmp.leftover"));
    const list = await listSnapshots({ snapshotsDir: dir });
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({
      name: "half-written",
      path: join(dir, "half-written"),
      valid: false,
      problem: { code: "SNAPSHOT_CORRUPT" },
    });
    expect(list[0]?.metadata).toBeUndefined();
    expect(list[0]?.diskBytes).toBeGreaterThan(0);

    const err = await rejection(() => inspectSnapshot("half-written", { snapshotsDir: dir }));
    expect(err.code).toBe("SNAPSHOT_CORRUPT");

    const r = await pruneSnapshots({ snapshotsDir: dir, removeInvalid: false });
    expect(r.removedSnapshots).toEqual([]);
    const r2 = await pruneSnapshots({ snapshotsDir: dir });
    expect(r2.removedSnapshots).toEqual(["half-written"]);
    expect(await listSnapshots({ snapshotsDir: dir })).toEqual([]);
  });

  it("names what is missing with typed errors", async () => {
    expect((await rejection(() => inspectSnapshot("nothing-here", { snapshotsDir: root }))).code).toBe(
      "SNAPSHOT_NOT_FOUND",
    );
    expect((await rejection(() => inspectSnapshot(join(root, "no", "such")))).code).toBe(
      "SNAPSHOT_NOT_FOUND",
    );
    expect((await rejection(() => inspectSnapshot(""))).code).toBe("INVALID_OPTIONS");
    expect((await rejection(() => pruneSnapshots({ snapshotsDir: root, keep: -1 }))).code).toBe(
      "INVALID_OPTIONS",
    );
  });
});
