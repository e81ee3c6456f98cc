// Runs each built example (`node apps/examples/dist/0N-*.js`) as a child
// process against the built-in default image and checks what it prints.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const appDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const repoRoot = resolve(appDir, "../..");
let snapshotsDir: string;

beforeAll(async () => {
  // The default image is an OCI layout built locally (idempotent, < 1 s).
  await run("bash", [join(repoRoot, "scripts/test-images/default-image.sh")]);
  snapshotsDir = mkdtempSync(join(tmpdir(), "sm-examples-"));
});

afterAll(() => {
  if (snapshotsDir) rmSync(snapshotsDir, { recursive: true, force: true });
});

async function example(name: string): Promise<string> {
  const file = join(appDir, "dist", `${name}.js`);
  if (!existsSync(file))
    throw new Error(`${file} is not built (npx turbo run build --filter=@supermachine/examples)`);
  const { stdout, stderr } = await run(process.execPath, [file], {
    cwd: repoRoot,
    env: { ...process.env, SUPERMACHINE_SNAPSHOTS_DIR: snapshotsDir },
    timeout: 240_000,
    maxBuffer: 16 << 20,
  });
  console.log(`--- ${name}\n${stdout}${stderr ? `--- stderr\n${stderr}` : ""}`);
  return stdout;
}

describe("examples", () => {
  it("01-hello bakes (or reuses) the default image and execs in a VM", async () => {
    const out = await example("01-hello");
    expect(out).toMatch(/^image ready in \d+ ms: /m);
    expect(out).toMatch(/^VM acquired in \d+ ms$/m);
    expect(out).toMatch(/^exec in \d+ ms: exit 0\nLinux supermachine /m);
    expect(out).toMatch(/^hello from supermachine, uptime [\d.]+s$/m);
  });

  it("02-pool runs 8 jobs on max 3 VMs and prints stats", async () => {
    const out = await example("02-pool");
    expect(out).toMatch(/after start: \{[^}]*alive: 2[^}]*\}/);
    for (let i = 0; i < 8; i++) expect(out).toMatch(new RegExp(`^job ${i}: [0-9a-f]{8}$`, "m"));
    expect(out).toMatch(/^8 jobs on max 3 VMs in \d+ ms; final stats: \{[^}]*inUse: 0/m);
  });

  it("03-snapshot-then-restore restores two VMs in the captured state", async () => {
    const out = await example("03-snapshot-then-restore");
    expect(out).toMatch(/^snapshot in \d+ ms at /m);
    expect(out.match(/^state from the first VM$/gm)).toHaveLength(2);
  });

  it("04-expose-tcp fetches a page from httpd in the guest", async () => {
    const out = await example("04-expose-tcp");
    expect(out).toMatch(/^GET http:\/\/127\.0\.0\.1:\d+\/ -> 200$/m);
    expect(out).toContain("<h1>hello from a supermachine guest</h1>");
  });

  it("05-spawn-streaming streams, echoes stdin and resizes a tty", async () => {
    const out = await example("05-spawn-streaming");
    expect(out).toMatch(/\[stream\] tick 1\n[\s\S]*tick 2\n[\s\S]*tick 3\n/);
    expect(out).toMatch(/^ticker: \{[^}]*exitCode: 0/m);
    expect(out).toMatch(/^cat said: echoed through cat \{[^}]*exitCode: 0/m);
    expect(out).toMatch(/^tty before: 30 100$/m);
    expect(out).toMatch(/^tty after: 43 132$/m);
  });
});
