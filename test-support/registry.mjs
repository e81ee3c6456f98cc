// Starts Debian's docker-registry (the CNCF distribution registry) on 127.0.0.1
// for tests and benchmarks. Plain JS so both vitest (through registry.ts) and
// the node benchmarks can import it.
import { execFile, execFileSync, spawn } from "node:child_process";
import { createSign, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
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

const b64url = (buf) => Buffer.from(buf).toString("base64url");

/**
 * A token server for the registry's `auth: token` mode: checks Basic
 * credentials and issues RS256 JWTs (with an x5c header naming a self-signed
 * certificate the registry trusts) granting the requested repository actions.
 */
async function startTokenServer(dir, creds, service, issuer) {
  const keyPath = join(dir, "token.key");
  const certPath = join(dir, "token.crt");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      keyPath,
      "-out",
      certPath,
      "-days",
      "2",
      "-subj",
      "/CN=supermachine-test-token",
    ],
    { stdio: "ignore" },
  );
  const key = readFileSync(keyPath, "utf8");
  const der = readFileSync(certPath, "utf8").replace(/-----[^-]+-----|\s+/g, "");
  const expected = `Basic ${Buffer.from(`${creds.user}:${creds.password}`).toString("base64")}`;
  const issued = [];
  const srv = createHttpServer((req, res) => {
    const url = new URL(req.url, "http://x");
    if (req.headers.authorization !== expected) {
      res.writeHead(401, { "content-type": "application/json" }).end('{"details":"bad credentials"}');
      return;
    }
    const access = url.searchParams.getAll("scope").flatMap((scope) => {
      const [type, ...rest] = scope.split(":");
      const actions = rest.pop()?.split(",") ?? [];
      return [{ type, name: rest.join(":"), actions }];
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: "JWT", alg: "RS256", x5c: [der] };
    const claims = {
      iss: issuer,
      sub: creds.user,
      aud: url.searchParams.get("service") ?? service,
      exp: now + 600,
      nbf: now - 30,
      iat: now,
      jti: randomBytes(8).toString("hex"),
      access,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = createSign("RSA-SHA256").update(input).sign(key);
    const token = `${input}.${b64url(sig)}`;
    issued.push({ scopes: url.searchParams.getAll("scope"), service: url.searchParams.get("service") });
    res
      .writeHead(200, { "content-type": "application/json" })
      .end(JSON.stringify({ token, access_token: token, expires_in: 600 }));
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${srv.address().port}/token`,
    certPath,
    issued,
    close: () => new Promise((r) => srv.close(r)),
  };
}

/**
 * Starts a registry with filesystem storage in a fresh temp dir.
 * @param {{htpasswd?: {user: string, password: string}, tokenAuth?: {user: string, password: string}, binary?: string}} [opts]
 */
export async function startRegistry(opts = {}) {
  const dir = await mkdtemp(join(tmpdir(), "sm-registry-"));
  const storage = join(dir, "storage");
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  let auth = "";
  let tokenServer;
  if (opts.tokenAuth) {
    const service = "supermachine-test-registry";
    const issuer = "supermachine-test-issuer";
    tokenServer = await startTokenServer(dir, opts.tokenAuth, service, issuer);
    auth = `auth:\n  token:\n    realm: ${tokenServer.url}\n    service: ${service}\n    issuer: ${issuer}\n    rootcertbundle: ${tokenServer.certPath}\n`;
  } else if (opts.htpasswd) {
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
      await tokenServer?.close();
      await rm(dir, { recursive: true, force: true });
      throw new Error(`docker-registry exited during start:\n${log}`);
    }
    try {
      const res = await fetch(`${url}/v2/`);
      if (res.status === 200 || res.status === 401) break;
    } catch {}
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await tokenServer?.close();
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
    await tokenServer?.close();
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
      const creds = opts.htpasswd ?? opts.tokenAuth;
      if (creds) args.push("--dest-creds", `${creds.user}:${creds.password}`);
      args.push(src, `docker://${host}/${repoTag}`);
      await execFileP("skopeo", args, { maxBuffer: 64 * 1024 * 1024 });
      return `${host}/${repoTag}`;
    },
    /** Path of a blob's data file in the registry's storage (to tamper with it). */
    blobPath(digest) {
      const [algo, hex] = digest.split(":");
      return join(storage, "docker/registry/v2/blobs", algo, hex.slice(0, 2), hex, "data");
    },
    /** Tokens issued by the token server (tokenAuth mode): requested scopes and service. */
    tokensIssued: () => tokenServer?.issued ?? [],
    /** Recent registry log output. */
    log: () => log,
    close,
    [Symbol.asyncDispose]: close,
  };
}
