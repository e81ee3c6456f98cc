// Starts Debian's docker-registry (the CNCF distribution registry) on 127.0.0.1
// for tests and benchmarks. Plain JS so both vitest (through registry.ts) and
// the node benchmarks can import it.
import { execFile, execFileSync, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const execFileP = promisify(execFile);

/** A free TCP port on 127.0.0.1 (the OS picks it). */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts a registry with filesystem storage in a fresh temp dir.
 * @param {{htpasswd?: {user: string, password: string}, binary?: string}} [opts]
 */
export async function startRegistry(opts = {}) {
  const dir = await mkdtemp(join(tmpdir(), "sm-registry-"));
  const storage = join(dir, "storage");
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  let auth = "";
  if (opts.htpasswd) {
    const line = execFileSync("htpasswd", ["-Bbn", opts.htpasswd.user, opts.htpasswd.password]).toString();
    await writeFile(join(dir, "htpasswd"), line);
    auth = `auth:\n  htpasswd:\n    realm: supermachine-test\n    path: ${join(dir, "htpasswd")}\n`;
  }
  const config = [
    "version: 0.1",
    "log:",
    "  level: error",
    "  accesslog:",
    "    disabled: true",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${storage}`,
    "  delete:",
    "    enabled: true",
    "  maintenance:",
    "    uploadpurging:",
    "      enabled: false",
    "http:",
    `  addr: ${host}`,
    `  secret: ${Math.random().toString(36).slice(2)}`,
    auth,
  ].join("\n");
  const configPath = join(dir, "config.yml");
  await writeFile(configPath, config);
  const child = spawn(opts.binary ?? "/usr/bin/docker-registry", ["serve", configPath], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  const onData = (d) => {
    log = (log + d.toString()).slice(-20000);
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  let exited = false;
  child.on("exit", () => {
    exited = true;
  });
  const url = `http://${host}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (exited) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`docker-registry exited during start:\n${log}`);
    }
    try {
      const res = await fetch(`${url}/v2/`);
      if (res.status === 200 || res.status === 401) break;
    } catch {}
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await rm(dir, { recursive: true, force: true });
      throw new Error(`docker-registry did not answer on ${url}:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    if (!exited) {
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 3000);
      await gone;
      clearTimeout(t);
    }
    await rm(dir, { recursive: true, force: true });
  };

  return {
    url,
    host,
    storageDir: storage,
    /** Pushes every image of an OCI layout (all platforms) as `repo:tag` with skopeo. */
    async pushLayout(layoutDir, repoTag, pushOpts = {}) {
      const src = `oci:${layoutDir}${pushOpts.srcTag ? `:${pushOpts.srcTag}` : ""}`;
      const args = ["copy", "--quiet", "--insecure-policy", "--all", "--dest-tls-verify=false"];
      if (opts.htpasswd) args.push("--dest-creds", `${opts.htpasswd.user}:${opts.htpasswd.password}`);
      args.push(src, `docker://${host}/${repoTag}`);
      await execFileP("skopeo", args, { maxBuffer: 64 * 1024 * 1024 });
      return `${host}/${repoTag}`;
    },
    /** Path of a blob's data file in the registry's storage (to tamper with it). */
    blobPath(digest) {
      const [algo, hex] = digest.split(":");
      return join(storage, "docker/registry/v2/blobs", algo, hex.slice(0, 2), hex, "data");
    },
    /** Recent registry log output. */
    log: () => log,
    close,
    [Symbol.asyncDispose]: close,
  };
}
