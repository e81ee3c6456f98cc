// The packages as a user gets them: `npm pack` every publishable package,
// install the tarballs into a fresh project outside this workspace (plain
// `npm install ./*.tgz`, no links), and use them there.
import { execFile } from "node:child_process";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRegistry, type TestRegistry } from "../../../test-support/registry.js";
import { ensureTestImages } from "../../../test-support/test-images.js";

const exec = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "../../..");
const PACKAGES = [
  "errors",
  "agent-protocol",
  "oci",
  "snapshot",
  "pool",
  "vmm-native",
  "core",
  "guest-x86_64",
];
const work = mkdtempSync(join(tmpdir(), "sm-consumer-"));
const project = join(work, "project");
const snapshotsDir = join(work, "snapshots");
const cache = process.env.SUPERMACHINE_CACHE ?? join(homedir(), ".cache", "supermachine");
const defaultRef = `oci:${join(cache, "images", "default")}:latest`;
let registry: TestRegistry | undefined;

/** Runs a command in the consumer project with no SUPERMACHINE_* variables, as a new user would. */
async function inProject(
  cmd: string,
  args: string[],
  timeout = 300_000,
): Promise<{ stdout: string; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SUPERMACHINE_")));
  if (process.env.SUPERMACHINE_CACHE) env.SUPERMACHINE_CACHE = process.env.SUPERMACHINE_CACHE;
  return exec(cmd, args, { cwd: project, env, timeout, maxBuffer: 32 << 20 });
}

beforeAll(async () => {
  await exec("bash", [join(repoRoot, "scripts/test-images/default-image.sh")]);
  const tgz = join(work, "tgz");
  mkdirSync(tgz);
  mkdirSync(project);
  for (const p of PACKAGES) {
    await exec("npm", ["pack", "--pack-destination", tgz], { cwd: join(repoRoot, "packages", p) });
  }
  const tarballs = readdirSync(tgz).map((f) => join(tgz, f));
  expect(tarballs).toHaveLength(PACKAGES.length);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", private: true }));
  const tsVersion = JSON.parse(
    readFileSync(join(repoRoot, "node_modules/typescript/package.json"), "utf8"),
  ).version;
  await exec(
    "npm",
    ["install", "--no-audit", "--no-fund", ...tarballs, `typescript@${tsVersion}`, "@types/node@20"],
    { cwd: project, timeout: 600_000 },
  );
  for (const f of ["hello.mjs", "hello.cjs", "consumer.ts", "oci-alone.mjs"]) {
    copyFileSync(join(here, "..", "consumer", f), join(project, f));
  }
}, 900_000);

afterAll(async () => {
  await registry?.close();
  rmSync(work, { recursive: true, force: true });
});

describe("installed from packed tarballs into a fresh project", () => {
  it("installed real copies, not links into the workspace, with the guest package", () => {
    const core = join(project, "node_modules", "@supermachine", "core");
    expect(readdirSync(join(project, "node_modules", "@supermachine")).sort()).toEqual(
      ["agent-protocol", "core", "errors", "guest-x86_64", "oci", "pool", "snapshot", "vmm-native"].sort(),
    );
    expect(resolve(core)).toBe(core); // a directory, not a symlink back into the repository
    expect(
      readdirSync(join(project, "node_modules", "@supermachine", "guest-x86_64", "assets")).sort(),
    ).toEqual(["bzImage", "initramfs.cpio.gz", "manifest.json"]);
  });

  it("runs the README's snippet on the default image with ESM import", async () => {
    const { stdout } = await inProject(process.execPath, ["hello.mjs", defaultRef, snapshotsDir]);
    expect(stdout).toContain("42 from esm exit=0");
  });

  it("runs the README's snippet with CommonJS require", async () => {
    const { stdout } = await inProject(process.execPath, ["hello.cjs", defaultRef, snapshotsDir]);
    expect(stdout).toContain("42 from cjs exit=0");
  });

  it("type-checks a consumer file with moduleResolution node16 and bundler", async () => {
    const tsc = join(project, "node_modules", "typescript", "bin", "tsc");
    const common = [
      "--noEmit",
      "--strict",
      "--target",
      "es2022",
      "--lib",
      "es2022,esnext.disposable",
      "--types",
      "node",
      "--skipLibCheck",
      "false",
    ];
    await inProject(process.execPath, [
      tsc,
      ...common,
      "--module",
      "node16",
      "--moduleResolution",
      "node16",
      "consumer.ts",
    ]);
    await inProject(process.execPath, [
      tsc,
      ...common,
      "--module",
      "esnext",
      "--moduleResolution",
      "bundler",
      "consumer.ts",
    ]);
    // and a wrong use is caught, so the check above is not vacuous
    writeFileSync(
      join(project, "wrong.ts"),
      'import { Image } from "@supermachine/core";\nImage.build({ reff: "x" });\n',
    );
    const wrong = await inProject(process.execPath, [
      tsc,
      ...common,
      "--module",
      "node16",
      "--moduleResolution",
      "node16",
      "wrong.ts",
    ]).then(
      () => "",
      (e: { stdout: string }) => e.stdout,
    );
    expect(wrong).toMatch(/error TS2\d+:.*reff/);
  });

  it("npx supermachine doctor finds the installed guest package; npx supermachine run runs a command", async () => {
    const { stdout } = await inProject("npx", [
      "supermachine",
      "doctor",
      "--json",
      "--snapshots-dir",
      snapshotsDir,
    ]);
    const report = JSON.parse(stdout) as {
      ok: boolean;
      checks: Array<{ id: string; status: string; summary: string }>;
    };
    expect(report.ok).toBe(true);
    const guest = report.checks.find((c) => c.id === "guest");
    expect(guest?.summary).toContain(join(project, "node_modules", "@supermachine", "guest-x86_64"));
    const run = await inProject("npx", [
      "supermachine",
      "run",
      defaultRef,
      "--snapshots-dir",
      snapshotsDir,
      "--",
      "echo",
      "via",
      "npx",
    ]);
    expect(run.stdout).toBe("via npx\n");
  });

  it("@supermachine/oci alone pulls from a registry into squashfs and ext4 root file systems and reads the config", async () => {
    registry = await startRegistry();
    const images = ensureTestImages();
    const ref = await registry.pushLayout(images.busybox, "alone/busybox:1");
    const { stdout } = await inProject(process.execPath, ["oci-alone.mjs", ref, join(work, "oci-cache")]);
    const out = JSON.parse(stdout) as {
      manifestDigest: string;
      cmd: string[];
      format: string;
      squashfsMagic: string;
      ext4Magic: string;
      rootfsBytes: number;
    };
    expect(out.manifestDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(out.cmd).toEqual(["/bin/sh"]);
    expect(out.format).toBe("squashfs");
    expect(out.squashfsMagic).toBe("hsqs");
    expect(out.ext4Magic).toBe("ef53");
    expect(out.rootfsBytes).toBeGreaterThan(1 << 20);
  });
});
