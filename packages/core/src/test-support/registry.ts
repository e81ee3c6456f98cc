import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** A real `docker-registry` (CNCF distribution) serving plain HTTP on 127.0.0.1. */
export interface TestRegistry {
  /** `127.0.0.1:PORT` */
  host: string;
  /** Copies an OCI layout (`dir`, tag `tag`) into the registry as `repo:tag`; returns the reference. */
  push(layoutDir: string, repo: string, tag?: string, layoutTag?: string): Promise<string>;
  /** Stops the registry and removes its storage. Idempotent. */
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Starts Debian's `docker-registry` on a free 127.0.0.1 port with its own storage. */
export async function startRegistry(): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), "sm-core-registry-"));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const config = join(dir, "config.yml");
  writeFileSync(
    config,
    [
      "version: 0.1",
      "log:",
      "  level: error",
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${join(dir, "data")}`,
      "http:",
      `  addr: ${host}`,
      "",
    ].join("\n"),
  );
  const child: ChildProcess = spawn("docker-registry", ["serve", config], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const r = await fetch(`http://${host}/v2/`);
      if (r.status === 200) break;
    } catch {}
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`docker-registry did not start on ${host}: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  let closed: Promise<void> | undefined;
  return {
    host,
    async push(layoutDir, repo, tag = "latest", layoutTag = "latest") {
      const ref = `${host}/${repo}:${tag}`;
      await run(
        "skopeo",
        // --all: a multi-arch index is copied whole, not only the host's platform
        [
          "copy",
          "--quiet",
          "--all",
          "--dest-tls-verify=false",
          `oci:${layoutDir}:${layoutTag}`,
          `docker://${ref}`,
        ],
        {
          maxBuffer: 16 << 20,
        },
      );
      return ref;
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }).then(() => rmSync(dir, { recursive: true, force: true }));
      return closed;
    },
  };
}
