// Shared pieces of the core benchmarks: test image layouts, a local registry,
// the plain-QEMU cold-boot baseline, and QEMU process listing.
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

export { descendantsOf, r1, sleep } from "../../../scripts/bench/guest.mjs";

import { qemuDescendants } from "../../../scripts/bench/guest.mjs";
import { ensureTestImages } from "../../../test-support/test-images.mjs";

const run = promisify(execFile);
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const core = await import(join(repoRoot, "packages/core/dist/index.js"));

/**
 * The test layouts (busybox, debian, ...) of scripts/test-images/build.sh, the
 * same ones the integration tests use: every layout is made current (checked
 * on its own, rebuilt when stale), never only the ones a benchmark needs.
 */
export function layouts() {
  return ensureTestImages();
}

async function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** Starts Debian's docker-registry on 127.0.0.1 with private storage. */
export async function startRegistry() {
  const dir = mkdtempSync(join(tmpdir(), "sm-bench-registry-"));
  const host = `127.0.0.1:${await freePort()}`;
  const config = join(dir, "config.yml");
  writeFileSync(
    config,
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\nhttp:\n  addr: ${host}\n`,
  );
  const child = spawn("docker-registry", ["serve", config], { stdio: "ignore" });
  // a benchmark that throws must not leave its registry running
  const stop = () => {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", stop);
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`http://${host}/v2/`)).status === 200) break;
    } catch {}
    if (i > 200 || child.exitCode !== null) throw new Error(`docker-registry did not start on ${host}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host,
    async push(layout, repo, tag, layoutTag = "latest") {
      await run("skopeo", [
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        `oci:${layout}:${layoutTag}`,
        `docker://${host}/${repo}:${tag}`,
      ]);
      return `${host}/${repo}:${tag}`;
    },
    async close() {
      process.removeListener("exit", stop);
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r() : child.once("exit", r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The baseline without snapshots: a plain QEMU cold boot of the image's root
 * fs (same kernel, agent, RAM and vCPUs) until a first exec returned.
 * Returns milliseconds to the exec's output and that output.
 */
export async function plainBootToFirstExec(image) {
  const { Machine, resolveGuestAssets } = await import("@supermachine/vmm-native");
  const { AgentSession } = await import("@supermachine/agent-protocol");
  const a = resolveGuestAssets();
  const t0 = performance.now();
  const machine = await Machine.boot({
    kernel: a.kernel,
    initrd: a.initrd,
    memoryMib: image.memoryMib,
    vcpus: image.vcpus,
    rootfs: image.rootfsPath,
  });
  try {
    const session = await AgentSession.open(await machine.connectAgent(120_000), {
      handshakeTimeoutMs: 120_000,
    });
    const r = await session.run({ argv: ["uname", "-a"] });
    const ms = performance.now() - t0;
    await session.close();
    return { ms, out: r.stdout.toString().trim(), exitCode: r.exitCode };
  } finally {
    await machine.close();
  }
}

/** QEMU processes started (directly or not) by this process. */
export const qemuPids = qemuDescendants;

/** Milliseconds `fn` takes. */
export async function timed(fn) {
  const t0 = performance.now();
  const result = await fn();
  return { ms: performance.now() - t0, result };
}

/** Rounds to 0.1. */

/**
 * Acquire + exec `true` + release cycles per second with `workers` holders
 * sharing `cycles` cycles, on a pool of min = max = `workers` (idle VMs
 * ready before the clock starts).
 */
export async function cycleThroughput(image, workers, cycles) {
  const pool = await image.pool({ min: workers, max: workers, acquireTimeoutMs: 0 });
  try {
    while (pool.stats().idle < workers) await new Promise((r) => setTimeout(r, 5));
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: workers }, async () => {
        while (next++ < cycles) {
          const vm = await pool.acquire();
          const r = await vm.exec({ argv: ["true"] });
          if (r.exitCode !== 0) throw new Error("exec failed");
          await vm.release();
        }
      }),
    );
    return cycles / ((performance.now() - t0) / 1000);
  } finally {
    await pool.shutdown();
  }
}
