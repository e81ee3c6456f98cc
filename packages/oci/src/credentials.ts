import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { CredentialHelperError } from "./errors.js";

/** Credentials for a registry: user + password, or a ready bearer token. */
export type RegistryAuth = { username: string; password: string } | { token: string };

/** What a Docker config or credential helper yields: basic credentials, or an OAuth identity (refresh) token. */
export type ResolvedCredentials =
  | { username: string; password: string }
  | { identityToken: string; username?: string };

interface DockerConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** Path of the Docker client config: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. */
export function defaultDockerConfigPath(): string {
  return join(process.env.DOCKER_CONFIG ?? join(homedir(), ".docker"), "config.json");
}

/** The keys a registry host may appear under in `auths` (Docker Hub has legacy spellings). */
export function configKeysFor(registry: string): string[] {
  if (registry === "docker.io") {
    return [
      "https://index.docker.io/v1/",
      "index.docker.io",
      "docker.io",
      "registry-1.docker.io",
      "https://index.docker.io/v1",
    ];
  }
  return [
    registry,
    `https://${registry}`,
    `http://${registry}`,
    `https://${registry}/v1/`,
    `https://${registry}/v2/`,
  ];
}

function hostOfKey(key: string): string {
  return key.replace(/^https?:\/\//, "").replace(/\/.*$/, "");
}

/** Runs `docker-credential-<helper> get` for `server`; undefined when the helper has no entry. */
export async function runCredentialHelper(
  helper: string,
  server: string,
): Promise<ResolvedCredentials | undefined> {
  const program = `docker-credential-${helper}`;
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
    (resolve, reject) => {
      const child = spawn(program, ["get"], { stdio: ["pipe", "pipe", "pipe"] });
      let out = "";
      let err = "";
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
      });
      child.stderr.on("data", (d: Buffer) => {
        err += d.toString();
      });
      child.on("error", (e) =>
        reject(
          new CredentialHelperError(`cannot run ${program}: ${e.message}`, {
            cause: e,
            details: { program },
          }),
        ),
      );
      child.on("close", (c) => resolve({ code: c, stdout: out, stderr: err }));
      child.stdin.end(server);
    },
  );
  if (code !== 0) {
    if (/credentials not found/i.test(stdout + stderr)) return undefined;
    throw new CredentialHelperError(`${program} get failed (exit ${code}): ${(stdout + stderr).trim()}`, {
      details: { program, code },
    });
  }
  let parsed: { Username?: string; Secret?: string };
  try {
    parsed = JSON.parse(stdout) as { Username?: string; Secret?: string };
  } catch (err) {
    throw new CredentialHelperError(`${program} printed invalid JSON`, { cause: err, details: { program } });
  }
  if (!parsed.Secret) return undefined;
  if (parsed.Username === "<token>") return { identityToken: parsed.Secret };
  return { username: parsed.Username ?? "", password: parsed.Secret };
}

/**
 * Looks up credentials for `registry` the way the Docker CLI does:
 * `credHelpers[registry]`, then `credsStore`, then `auths` (`auth` base64,
 * `username`/`password`, or `identitytoken`). Undefined when none.
 */
export async function lookupDockerCredentials(
  registry: string,
  configPath: string = defaultDockerConfigPath(),
): Promise<ResolvedCredentials | undefined> {
  let cfg: DockerConfigFile;
  try {
    cfg = JSON.parse(await readFile(configPath, "utf8")) as DockerConfigFile;
  } catch {
    return undefined;
  }
  const keys = configKeysFor(registry);
  const serverUrl = registry === "docker.io" ? "https://index.docker.io/v1/" : registry;
  const helper = keys.map((k) => cfg.credHelpers?.[k]).find((h) => typeof h === "string" && h);
  if (helper) return runCredentialHelper(helper, serverUrl);
  if (cfg.credsStore) {
    const found = await runCredentialHelper(cfg.credsStore, serverUrl);
    if (found) return found;
  }
  const auths = cfg.auths ?? {};
  let entry = keys.map((k) => auths[k]).find((e) => e !== undefined);
  if (!entry) {
    const hostKey = Object.keys(auths).find((k) => hostOfKey(k) === registry);
    if (hostKey) entry = auths[hostKey];
  }
  if (!entry) return undefined;
  if (entry.identitytoken) return { identityToken: entry.identitytoken, username: entry.username };
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
    const i = decoded.indexOf(":");
    if (i > 0) return { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
  }
  if (entry.username && entry.password !== undefined)
    return { username: entry.username, password: entry.password };
  return undefined;
}
