// The CLI driven through a real terminal (tmux): `run -it` on the default
// image and `build` progress during a pull from a real local registry.
import { cpSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { resolveGuestAssets } from "@supermachine/vmm-native";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { layoutPath } from "./test-support/images.js";
import { startRegistry, type TestRegistry } from "./test-support/registry.js";
import { startThrottledProxy, type ThrottledProxy } from "./test-support/throttled-proxy.js";
import { TmuxTerminal } from "./test-support/tmux.js";

const bin = fileURLToPath(new URL("../dist/bin.js", import.meta.url));
const cacheRoot = process.env.SUPERMACHINE_CACHE ?? join(homedir(), ".cache", "supermachine");
const defaultRef = `oci:${join(cacheRoot, "images", "default")}:latest`;
const root = mkdtempSync(join(tmpdir(), "sm-cli-tty-"));
const snaps = join(root, "snapshots");
const cli = `${process.execPath} ${bin}`;

let term: TmuxTerminal | undefined;
afterEach(() => {
  term?.close();
  term = undefined;
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("supermachine run -it in a real terminal", () => {
  beforeAll(() => {
    if (!existsSync(join(cacheRoot, "images", "default", "index.json"))) {
      throw new Error("the default image is missing: run `bash scripts/test-images/default-image.sh`");
    }
  });

  it("runs a shell: arithmetic, window resize, Ctrl-C, exit status", async () => {
    term = new TmuxTerminal(`${cli} run -it --snapshots-dir ${snaps} ${defaultRef}`, { cols: 80, rows: 24 });
    // the first run bakes the image; the prompt comes once the guest shell runs
    await term.waitFor(/^\/ # ?$/m, 240_000);

    term.type("echo $((6*7))");
    term.send("Enter");
    await term.waitFor(/^42$/m);

    term.type("stty size");
    term.send("Enter");
    await term.waitFor(/^24 80$/m);
    term.resize(100, 30);
    term.type("clear; stty size");
    term.send("Enter");
    const resized = await term.waitFor(/^30 100$/m);
    expect(resized).not.toMatch(/^24 80$/m);

    // Ctrl-C reaches the guest's foreground job, not the CLI: a background
    // watcher says when `sleep` runs, then ^C ends it and the prompt returns
    term.type("clear; (until pidof sleep >/dev/null; do usleep 20000; done; echo sleep-running) & sleep 100");
    term.send("Enter");
    await term.waitFor(/^sleep-running$/m);
    term.send("C-c");
    await term.waitFor(/^sleep-running\n(.*\n)*\/ # ?$/m);
    term.type("echo status=$?; pidof sleep || echo no-sleep");
    term.send("Enter");
    await term.waitFor(/^status=130\nno-sleep$/m);
    expect(term.status()).toBeUndefined(); // the CLI still runs
    term.type("echo still $((20+22))");
    term.send("Enter");
    await term.waitFor(/^still 42$/m);

    term.type("exit 3");
    term.send("Enter");
    expect(await term.waitForExit()).toBe(3);
  });

  it("Ctrl-D ends the shell with status 0", async () => {
    term = new TmuxTerminal(`${cli} run -it --snapshots-dir ${snaps} ${defaultRef} -- sh`);
    await term.waitFor(/^\/ # ?$/m, 120_000);
    term.send("C-d");
    expect(await term.waitForExit()).toBe(0);
  });

  it("colors errors on a terminal, and not with NO_COLOR", async () => {
    term = new TmuxTerminal(`${cli} build 'UPPER/Case:@@'`);
    expect(await term.waitForExit()).toBe(1);
    const colored = term.screen(true);
    // tmux re-encodes colors (e.g. ESC[0m ESC[31m ESC[49m): red must be on before the text
    // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escapes
    expect(colored).toMatch(/\x1b\[31m(\x1b\[\d+m)*supermachine:/);
    expect(colored).toMatch(/\[OCI_INVALID_REFERENCE\]/);
    term.close();
    term = new TmuxTerminal(`${cli} build 'UPPER/Case:@@'`, { env: { NO_COLOR: "1" } });
    expect(await term.waitForExit()).toBe(1);
    const plain = term.screen(true);
    expect(plain).toMatch(/^supermachine: \[OCI_INVALID_REFERENCE\]/m);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for ANSI escapes
    expect(plain).not.toMatch(/\x1b\[3\dm/);
  });
});

describe("supermachine build progress in a real terminal", () => {
  let registry: TestRegistry;
  let proxy: ThrottledProxy;
  let debianRef: string;
  const cache = join(root, "cache");

  beforeAll(async () => {
    const debian = layoutPath("debian");
    if (!debian) throw new Error("the debian test layout was not built (scripts/test-images/build.sh)");
    registry = await startRegistry();
    // pulled through a proxy at 10 MB/s (~5 s for the 49 MB layer): a pull from
    // this machine's registry can end before a screen is looked at twice
    proxy = await startThrottledProxy(registry.host, 10e6);
    debianRef = (await registry.push(debian, "debian", "12", "bookworm")).replace(registry.host, proxy.host);
    // a private blob cache so the pull really downloads; the accelerator verdict is kept
    const probe = join(cacheRoot, "accel-probe");
    if (existsSync(probe)) cpSync(probe, join(cache, "accel-probe"), { recursive: true });
  }, 600_000);
  afterAll(async () => {
    await proxy?.close();
    await registry?.close();
  });

  it("shows per-layer bytes that advance during a pull, then the bake phases", async () => {
    const env = {
      SUPERMACHINE_CACHE: cache,
      SUPERMACHINE_GUEST_ASSETS: resolveGuestAssets().manifest,
    };
    term = new TmuxTerminal(`${cli} build --snapshots-dir ${join(root, "debian-snaps")} ${debianRef}`, {
      cols: 100,
      rows: 30,
      env,
    });
    // two captures during the pull, with more bytes on the second
    const progress = /downloading \[[= >]+\] ([\d.]+) (B|kB|MB)\/([\d.]+) MB/;
    const bytes = (m: RegExpMatchArray) => Number(m[1]) * { B: 1, kB: 1e3, MB: 1e6 }[m[2] as "B"];
    const first = (await term.waitFor(progress, 120_000)).match(progress) as RegExpMatchArray;
    expect(bytes(first)).toBeLessThan(Number(first[3]) * 1e6);
    let second: RegExpMatchArray | null = null;
    const deadline = Date.now() + 120_000;
    while (!second && Date.now() < deadline) {
      const m = term.screen().match(progress);
      if (!m) break; // the pull ended before a second frame was captured
      if (bytes(m) > bytes(first)) second = m;
      else await new Promise((r) => setTimeout(r, 2));
    }
    expect(second, `no later frame during the pull (first: ${first[0]})`).not.toBeNull();

    // the bake follows with a line per phase and its duration
    expect(await term.waitForExit(600_000)).toBe(0);
    const done = term.screen();
    expect(done).toMatch(/pull complete +[\d.]+ MB +[\d.]+m?s/);
    expect(done).toMatch(/root fs +done +[\d.]+m?s/);
    expect(done).toMatch(/boot +done +[\d.]+m?s/);
    expect(done).toMatch(/snapshot +done +[\d.]+m?s/);
    expect(done).toContain(join(root, "debian-snaps"));
  });
});
