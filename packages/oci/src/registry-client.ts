import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { Agent, type Dispatcher, request } from "undici";
import { contentLength, readBounded, readErrorText } from "./bounded-read.js";
import { lookupDockerCredentials, type RegistryAuth, type ResolvedCredentials } from "./credentials.js";
import {
  AbortedError,
  InsecureRedirectError,
  InsecureTokenRealmError,
  LimitExceededError,
  NetworkError,
  NotFoundError,
  RegistryError,
  UnauthorizedError,
} from "./errors.js";
import { formatBytes, type OciLimits, resolveLimits } from "./limits.js";
import { MANIFEST_ACCEPT } from "./media-types.js";
import { type AuthChallenge, parseWwwAuthenticate } from "./www-authenticate.js";

/** Options of {@link RegistryClient}. */
export interface RegistryClientOptions {
  /** Registry host[:port] as in the reference (`docker.io` is mapped to `registry-1.docker.io`). */
  registry: string;
  /** Repository path, e.g. `library/alpine`. */
  repository: string;
  /**
   * Hosts (`host` or `host:port`) allowed over plain HTTP / unverified TLS
   * (localhost always is). Only a registry listed here may send
   * credentials to a plain-HTTP token realm or redirect HTTPS to HTTP.
   */
  insecureRegistries?: string[];
  /** Explicit credentials; otherwise the Docker config is consulted. */
  auth?: RegistryAuth;
  /** Docker config path (default `~/.docker/config.json`). */
  dockerConfigPath?: string;
  /** Aborts every request. */
  signal?: AbortSignal;
  /** Attempts per request on transient failures (default 5). */
  maxAttempts?: number;
  /** First backoff delay in ms (doubles each attempt; default 250). */
  backoffMs?: number;
  /** Caps on response bodies (`maxManifestBytes`, `maxTokenBytes`); defaults in `DEFAULT_LIMITS`. */
  limits?: Partial<OciLimits>;
  /**
   * Ask the token server for `pull,push` access (needed by {@link RegistryClient.pushBlob}
   * and {@link RegistryClient.putManifest}). Default false: `pull` only.
   */
  push?: boolean;
}

/** A body to upload: bytes, or a function opening a fresh stream each time it is sent. */
export type UploadBody = Buffer | (() => Readable);

/** A fetched manifest. */
export interface FetchedManifest {
  bytes: Buffer;
  contentType: string;
  /** `Docker-Content-Digest` response header, when sent. */
  headerDigest?: string;
}

const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504]);
const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308]);
const USER_AGENT = "supermachine-oci/0.1";

function isLocalHost(registry: string): boolean {
  const host = registry.startsWith("[")
    ? registry.slice(1, registry.indexOf("]"))
    : registry.replace(/:\d+$/, "");
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function retryableNetworkError(err: unknown): boolean {
  const code = (err as { code?: string }).code ?? "";
  return (
    [
      "ECONNRESET",
      "ECONNREFUSED",
      "ETIMEDOUT",
      "EPIPE",
      "EAI_AGAIN",
      "ENETUNREACH",
      "EHOSTUNREACH",
      "UND_ERR_SOCKET",
      "UND_ERR_CONNECT_TIMEOUT",
      "UND_ERR_HEADERS_TIMEOUT",
      "UND_ERR_BODY_TIMEOUT",
      "UND_ERR_CLOSED",
    ].includes(code) || /other side closed|socket hang up/i.test(String((err as Error).message))
  );
}

type Response = Dispatcher.ResponseData;

/**
 * A client for one repository of a Docker Registry HTTP API v2 / OCI
 * distribution registry: `/v2/` ping, bearer-token and basic auth from the
 * `WWW-Authenticate` challenge, Docker config credentials, plain HTTP for
 * localhost and insecure registries, manual redirects, and retries with
 * exponential backoff on transient failures.
 *
 * Credentials go only where they belong: the registry's token or Basic
 * credentials only to the registry's origin, the user's credentials for a
 * token only to the realm the registry's challenge names (which must be
 * https unless the registry is listed in `insecureRegistries`). A redirect
 * to another origin is followed without the Authorization header, and once
 * a chain of redirects has left the origin it never gets it back. Bodies
 * read into memory (manifests, tokens, error messages) are capped.
 */
export class RegistryClient {
  private readonly opts: RegistryClientOptions;
  private readonly host: string;
  private readonly insecure: boolean;
  private readonly listedInsecure: boolean;
  private readonly limits: OciLimits;
  private base?: string;
  private dispatcher: Agent;
  private authorization?: string;
  private challenge?: AuthChallenge;
  private credentials?: ResolvedCredentials | null;
  private closed = false;

  constructor(opts: RegistryClientOptions) {
    this.opts = opts;
    this.host = opts.registry === "docker.io" ? "registry-1.docker.io" : opts.registry;
    const list = opts.insecureRegistries ?? [];
    this.listedInsecure =
      list.includes(opts.registry) ||
      list.includes(opts.registry.replace(/:\d+$/, "")) ||
      list.some((h) => h.replace(/^https?:\/\//, "").replace(/\/$/, "") === opts.registry);
    this.insecure = isLocalHost(opts.registry) || this.listedInsecure;
    this.limits = resolveLimits(opts.limits);
    this.dispatcher = new Agent({
      connect: { rejectUnauthorized: !this.insecure, timeout: 30_000 },
      headersTimeout: 60_000,
      bodyTimeout: 120_000,
      connections: 8,
    });
  }

  private async creds(): Promise<ResolvedCredentials | undefined> {
    if (this.credentials === undefined) {
      const a = this.opts.auth;
      if (a && "username" in a) this.credentials = { username: a.username, password: a.password };
      else
        this.credentials =
          (await lookupDockerCredentials(this.opts.registry, this.opts.dockerConfigPath)) ?? null;
    }
    return this.credentials ?? undefined;
  }

  private async raw(
    url: string,
    method: "GET" | "HEAD" | "POST",
    headers: Record<string, string>,
    body?: string,
  ) {
    if (this.opts.signal?.aborted) throw new AbortedError({ cause: this.opts.signal.reason });
    return request(url, {
      method,
      headers: { "user-agent": USER_AGENT, ...headers },
      body,
      dispatcher: this.dispatcher,
      signal: this.opts.signal,
    }).catch((err: unknown) => {
      if (this.opts.signal?.aborted) throw new AbortedError({ cause: err });
      throw err;
    });
  }

  /**
   * Sends with retries on transient errors and manual redirects.
   * `authorization` goes only to `url`'s origin: a redirect to another
   * origin is followed without it, and later hops never get it back.
   */
  private async send(
    url: string,
    method: "GET" | "HEAD",
    headers: Record<string, string>,
    authorization: string | undefined,
  ): Promise<Response> {
    const attempts = this.opts.maxAttempts ?? 5;
    const backoff = this.opts.backoffMs ?? 250;
    let lastErr: unknown;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0)
        await sleep(backoff * 2 ** (attempt - 1), undefined, { signal: this.opts.signal }).catch(() => {});
      try {
        let target = url;
        const origin = new URL(url).origin;
        let leftOrigin = false;
        for (let hop = 0; hop < 10; hop++) {
          const h = { ...headers };
          leftOrigin ||= new URL(target).origin !== origin;
          if (authorization && !leftOrigin) h.authorization = authorization;
          const res = await this.raw(target, method, h);
          if (REDIRECT_STATUS.has(res.statusCode) && res.headers.location) {
            await res.body.dump();
            target = this.redirectTarget(target, String(res.headers.location));
            continue;
          }
          if (RETRY_STATUS.has(res.statusCode) && attempt < attempts - 1) {
            await res.body.dump();
            const ra = Number(res.headers["retry-after"]);
            if (Number.isFinite(ra) && ra > 0 && ra < 60) await sleep(ra * 1000);
            lastErr = new RegistryError(`${method} ${target}: HTTP ${res.statusCode}`);
            throw lastErr;
          }
          return res;
        }
        throw new RegistryError(`${method} ${url}: too many redirects`);
      } catch (err) {
        if (err instanceof AbortedError || err instanceof InsecureRedirectError) throw err;
        if (err instanceof RegistryError && err === lastErr) continue;
        if (retryableNetworkError(err) && attempt < attempts - 1) {
          lastErr = err;
          continue;
        }
        if (err instanceof RegistryError) throw err;
        throw new NetworkError(`${method} ${url}: ${(err as Error).message}`, { cause: err });
      }
    }
    throw new NetworkError(`${method} ${url}: gave up after ${attempts} attempts`, { cause: lastErr });
  }

  /** Resolves a redirect's Location; refuses non-http(s) schemes and (unless listed insecure) https -> http. */
  private redirectTarget(from: string, location: string): string {
    let next: URL;
    try {
      next = new URL(location, from);
    } catch (err) {
      throw new RegistryError(`${from}: redirect to an invalid location ${JSON.stringify(location)}`, {
        cause: err,
      });
    }
    if (next.protocol !== "https:" && next.protocol !== "http:") {
      throw new InsecureRedirectError(`${from}: refusing a redirect to ${next.protocol} (${next.origin})`, {
        details: { from, to: next.toString() },
      });
    }
    if (new URL(from).protocol === "https:" && next.protocol === "http:" && !this.listedInsecure) {
      throw new InsecureRedirectError(
        `${from}: refusing a redirect from https to plain http (${next.origin}); list ${this.opts.registry} in insecureRegistries to allow it`,
        { details: { from, to: next.toString(), registry: this.opts.registry } },
      );
    }
    return next.toString();
  }

  /** Pings `/v2/`, choosing the scheme (https, or http for insecure hosts) and reading the auth challenge. */
  async ping(): Promise<void> {
    if (this.base) return;
    const schemes = this.insecure ? ["https", "http"] : ["https"];
    let lastErr: unknown;
    for (const scheme of schemes) {
      const base = `${scheme}://${this.host}`;
      let res: Response;
      try {
        res =
          scheme === "https" && this.insecure
            ? await this.raw(`${base}/v2/`, "GET", {})
            : await this.send(`${base}/v2/`, "GET", {}, undefined);
      } catch (err) {
        if (err instanceof AbortedError) throw err;
        lastErr = err;
        continue;
      }
      await res.body.dump();
      if (scheme === "https" && this.insecure && res.statusCode === 400) {
        lastErr = new RegistryError(`${base}/v2/: HTTP 400 (plain HTTP server?)`);
        continue;
      }
      this.base = base;
      if (res.statusCode === 401) {
        const header = res.headers["www-authenticate"];
        const challenges = parseWwwAuthenticate(Array.isArray(header) ? header.join(", ") : (header ?? ""));
        this.challenge =
          challenges.find((c) => c.scheme === "bearer") ?? challenges.find((c) => c.scheme === "basic");
      } else if (res.statusCode !== 200) {
        throw new RegistryError(`${base}/v2/: unexpected HTTP ${res.statusCode}; is this a registry?`, {
          details: { status: res.statusCode },
        });
      }
      return;
    }
    throw new NetworkError(`cannot reach registry ${this.opts.registry}: ${(lastErr as Error)?.message}`, {
      cause: lastErr,
    });
  }

  /** Obtains an Authorization header for the current challenge. */
  private async authenticate(challenge: AuthChallenge | undefined): Promise<void> {
    const explicit = this.opts.auth;
    if (explicit && "token" in explicit) {
      this.authorization = `Bearer ${explicit.token}`;
      return;
    }
    if (!challenge) return;
    const creds = await this.creds();
    if (challenge.scheme === "basic") {
      if (!creds || !("password" in creds)) {
        throw new UnauthorizedError(
          `registry ${this.opts.registry} requires credentials and none were found`,
          {
            details: { registry: this.opts.registry },
          },
        );
      }
      this.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}`;
      return;
    }
    if (challenge.scheme !== "bearer" || !challenge.params.realm) {
      throw new UnauthorizedError(
        `unsupported auth challenge ${challenge.scheme} from ${this.opts.registry}`,
      );
    }
    const scope = `repository:${this.opts.repository}:${this.opts.push ? "pull,push" : "pull"}`;
    const url = this.tokenRealm(challenge.params.realm);
    let res: Response;
    if (creds && "identityToken" in creds) {
      const form = new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: creds.identityToken,
        service: challenge.params.service ?? "",
        scope,
        client_id: "supermachine",
      });
      res = await this.raw(
        url.toString(),
        "POST",
        { "content-type": "application/x-www-form-urlencoded" },
        form.toString(),
      );
    } else {
      if (challenge.params.service) url.searchParams.set("service", challenge.params.service);
      url.searchParams.set("scope", scope);
      const basic =
        creds && "password" in creds
          ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}`
          : undefined;
      res = await this.send(url.toString(), "GET", {}, basic);
    }
    if (res.statusCode === 401 || res.statusCode === 403) {
      await res.body.dump();
      throw new UnauthorizedError(
        `token server ${url.origin} refused the credentials (HTTP ${res.statusCode})`,
        {
          details: { registry: this.opts.registry, status: res.statusCode },
        },
      );
    }
    if (res.statusCode !== 200) {
      const text = await readErrorText(res.body);
      throw new RegistryError(`token server ${url.origin}: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
    }
    const max = this.limits.maxTokenBytes;
    const bytes = await readBounded(
      res.body,
      max,
      () =>
        new LimitExceededError(
          "maxTokenBytes",
          max,
          `token server ${url.origin}: response larger than ${formatBytes(max)}`,
        ),
      contentLength(res.headers["content-length"]),
    );
    let json: { token?: unknown; access_token?: unknown };
    try {
      json = JSON.parse(bytes.toString("utf8")) as typeof json;
    } catch (err) {
      throw new RegistryError(`token server ${url.origin} returned invalid JSON`, { cause: err });
    }
    const token = json?.token ?? json?.access_token;
    if (typeof token !== "string" || !token) {
      throw new RegistryError(`token server ${url.origin} returned no token`);
    }
    if (/[\r\n\0]/.test(token))
      throw new RegistryError(`token server ${url.origin} returned a malformed token`);
    this.authorization = `Bearer ${token}`;
  }

  /**
   * Validates a challenge's token realm: an absolute http(s) URL, https
   * unless the registry is listed in `insecureRegistries` (localhost is not
   * enough: the user's credentials travel to this URL).
   */
  private tokenRealm(realm: string): URL {
    let url: URL;
    try {
      url = new URL(realm);
    } catch (err) {
      throw new RegistryError(
        `registry ${this.opts.registry} named an invalid token realm ${JSON.stringify(realm)}`,
        {
          cause: err,
          details: { registry: this.opts.registry, realm },
        },
      );
    }
    if (url.protocol === "https:") return url;
    if (url.protocol === "http:" && this.listedInsecure) return url;
    if (url.protocol === "http:") {
      throw new InsecureTokenRealmError(
        `registry ${this.opts.registry} names a plain-HTTP token realm (${url.origin}); refusing to send credentials or take a token over plain HTTP. List ${this.opts.registry} in insecureRegistries if that is intended`,
        { details: { registry: this.opts.registry, realm } },
      );
    }
    throw new RegistryError(
      `registry ${this.opts.registry} named a token realm with scheme ${url.protocol}`,
      {
        details: { registry: this.opts.registry, realm },
      },
    );
  }

  /** GET/HEAD on a repository path, authenticating on 401 once; maps 401/403/404 to typed errors. */
  private async repoRequest(
    path: string,
    method: "GET" | "HEAD",
    headers: Record<string, string>,
    what: { manifest: boolean; name: string },
  ): Promise<Response> {
    await this.ping();
    if (!this.authorization && (this.challenge || (this.opts.auth && "token" in this.opts.auth))) {
      await this.authenticate(this.challenge);
    }
    const url = `${this.base}/v2/${this.opts.repository}/${path}`;
    let res = await this.send(url, method, headers, this.authorization);
    if (res.statusCode === 401) {
      const header = res.headers["www-authenticate"];
      await res.body.dump();
      const challenges = parseWwwAuthenticate(Array.isArray(header) ? header.join(", ") : (header ?? ""));
      const challenge =
        challenges.find((c) => c.scheme === "bearer") ?? challenges.find((c) => c.scheme === "basic");
      const hadAuth = this.authorization !== undefined;
      const sameChallenge =
        hadAuth && challenge?.scheme === this.challenge?.scheme && challenge?.scheme === "basic";
      if (challenge && !sameChallenge) {
        this.challenge = challenge;
        this.authorization = undefined;
        await this.authenticate(challenge);
        res = await this.send(url, method, headers, this.authorization);
      }
    }
    if (res.statusCode === 401 || res.statusCode === 403) {
      await res.body.dump();
      throw new UnauthorizedError(
        `${this.opts.registry}/${this.opts.repository}: access denied (HTTP ${res.statusCode}); the repository may not exist or may require authorization`,
        {
          details: { registry: this.opts.registry, repository: this.opts.repository, status: res.statusCode },
        },
      );
    }
    if (res.statusCode === 404) {
      await res.body.dump();
      throw new NotFoundError(`${this.opts.registry}/${this.opts.repository}: ${what.name} not found`, {
        manifest: what.manifest,
        details: {
          registry: this.opts.registry,
          repository: this.opts.repository,
          [what.manifest ? "reference" : "digest"]: what.name,
        },
      });
    }
    if (res.statusCode !== 200) {
      const text = await readErrorText(res.body);
      throw new RegistryError(`${method} ${url}: HTTP ${res.statusCode} ${text.slice(0, 300)}`, {
        details: { status: res.statusCode },
      });
    }
    return res;
  }

  /** Fetches the manifest for a tag or digest. */
  async getManifest(reference: string): Promise<FetchedManifest> {
    const res = await this.repoRequest(
      `manifests/${reference}`,
      "GET",
      { accept: MANIFEST_ACCEPT },
      {
        manifest: true,
        name: `manifest ${reference}`,
      },
    );
    const max = this.limits.maxManifestBytes;
    const bytes = await readBounded(
      res.body,
      max,
      () =>
        new LimitExceededError(
          "maxManifestBytes",
          max,
          `${this.opts.registry}/${this.opts.repository}: manifest ${reference} is larger than ${formatBytes(max)}`,
        ),
      contentLength(res.headers["content-length"]),
    );
    const dcd = res.headers["docker-content-digest"];
    return {
      bytes,
      contentType: String(res.headers["content-type"] ?? ""),
      headerDigest: typeof dcd === "string" ? dcd : undefined,
    };
  }

  /** Opens a blob download (follows redirects to blob storage). */
  async openBlob(digest: string): Promise<{ body: Readable; size?: number }> {
    const res = await this.repoRequest(
      `blobs/${digest}`,
      "GET",
      {},
      { manifest: false, name: `blob ${digest}` },
    );
    const len = Number(res.headers["content-length"]);
    return { body: res.body as unknown as Readable, size: Number.isFinite(len) ? len : undefined };
  }

  /** True when the repository has blob `digest` (HEAD); false on 404. */
  async hasBlob(digest: string): Promise<boolean> {
    try {
      const res = await this.repoRequest(
        `blobs/${digest}`,
        "HEAD",
        {},
        { manifest: false, name: `blob ${digest}` },
      );
      await res.body.dump();
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }

  /**
   * Uploads a blob in one request (`POST` an upload session, then `PUT` it
   * with `?digest=`); the registry verifies the digest. Skipped when the
   * repository already has it. Needs the `push` option.
   */
  async pushBlob(digest: string, size: number, body: UploadBody): Promise<void> {
    if (await this.hasBlob(digest)) return;
    const start = await this.repoWrite(`${this.repoBase()}/blobs/uploads/`, "POST", {
      "content-length": "0",
    });
    if (start.statusCode !== 202) {
      throw await this.writeError(start, `starting the upload of blob ${digest}`);
    }
    await start.body.dump();
    const location = start.headers.location;
    if (typeof location !== "string" || !location) {
      throw new RegistryError(`${this.opts.registry}: the upload of blob ${digest} got no Location`);
    }
    const url = new URL(location, `${this.base}/`);
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new RegistryError(`${this.opts.registry}: upload Location with scheme ${url.protocol}`);
    }
    url.searchParams.set("digest", digest);
    const done = await this.repoWrite(
      url.toString(),
      "PUT",
      { "content-type": "application/octet-stream", "content-length": String(size) },
      body,
    );
    if (done.statusCode !== 201) throw await this.writeError(done, `uploading blob ${digest}`);
    await done.body.dump();
  }

  /**
   * Stores a manifest under `reference` (a tag or its digest); returns the
   * digest the registry reports (`Docker-Content-Digest`), else undefined.
   * Needs the `push` option.
   */
  async putManifest(reference: string, bytes: Buffer, mediaType: string): Promise<string | undefined> {
    await this.ping();
    const res = await this.repoWrite(
      `${this.repoBase()}/manifests/${reference}`,
      "PUT",
      { "content-type": mediaType, "content-length": String(bytes.length) },
      bytes,
    );
    if (res.statusCode !== 201 && res.statusCode !== 200) {
      throw await this.writeError(res, `storing manifest ${reference}`);
    }
    await res.body.dump();
    const dcd = res.headers["docker-content-digest"];
    return typeof dcd === "string" ? dcd : undefined;
  }

  /**
   * The OCI referrers of manifest `digest` (an image index, bounded by
   * `maxManifestBytes`), filtered by `artifactType` when the registry
   * supports it; undefined when the registry has no referrers API (404).
   */
  async getReferrers(digest: string, artifactType?: string): Promise<Buffer | undefined> {
    const q = artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : "";
    let res: Response;
    try {
      res = await this.repoRequest(
        `referrers/${digest}${q}`,
        "GET",
        { accept: "application/vnd.oci.image.index.v1+json" },
        { manifest: true, name: `referrers of ${digest}` },
      );
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
    const max = this.limits.maxManifestBytes;
    return readBounded(
      res.body,
      max,
      () =>
        new LimitExceededError(
          "maxManifestBytes",
          max,
          `${this.opts.registry}/${this.opts.repository}: referrers of ${digest} larger than ${formatBytes(max)}`,
        ),
      contentLength(res.headers["content-length"]),
    );
  }

  /** `<base>/v2/<repository>`; call after {@link ping}. */
  private repoBase(): string {
    if (!this.base) throw new RegistryError(`${this.opts.registry}: not pinged yet`);
    return `${this.base}/v2/${this.opts.repository}`;
  }

  private async writeError(res: Response, what: string): Promise<Error> {
    const text = await readErrorText(res.body);
    if (res.statusCode === 401 || res.statusCode === 403) {
      return new UnauthorizedError(
        `${this.opts.registry}/${this.opts.repository}: ${what}: access denied (HTTP ${res.statusCode}); pushing needs credentials with push access`,
        {
          details: { registry: this.opts.registry, repository: this.opts.repository, status: res.statusCode },
        },
      );
    }
    return new RegistryError(
      `${this.opts.registry}/${this.opts.repository}: ${what}: HTTP ${res.statusCode} ${text.slice(0, 300)}`,
      {
        details: { status: res.statusCode },
      },
    );
  }

  /**
   * A POST/PUT to the registry (no redirects followed; uploads are not
   * retried except once after a 401 with a fresh token). The Authorization
   * header goes only to the registry's own origin.
   */
  private async repoWrite(
    url: string,
    method: "POST" | "PUT",
    headers: Record<string, string>,
    body?: UploadBody,
  ): Promise<Response> {
    await this.ping();
    if (!this.authorization && (this.challenge || (this.opts.auth && "token" in this.opts.auth))) {
      await this.authenticate(this.challenge);
    }
    const sameOrigin = new URL(url).origin === new URL(this.base!).origin;
    const once = async () => {
      if (this.opts.signal?.aborted) throw new AbortedError({ cause: this.opts.signal.reason });
      const h: Record<string, string> = { "user-agent": USER_AGENT, ...headers };
      if (this.authorization && sameOrigin) h.authorization = this.authorization;
      return request(url, {
        method,
        headers: h,
        body: body === undefined ? undefined : Buffer.isBuffer(body) ? body : body(),
        dispatcher: this.dispatcher,
        signal: this.opts.signal,
      }).catch((err: unknown) => {
        if (this.opts.signal?.aborted) throw new AbortedError({ cause: err });
        throw new NetworkError(`${method} ${url}: ${(err as Error).message}`, { cause: err });
      });
    };
    let res = await once();
    if (res.statusCode === 401 && sameOrigin) {
      const header = res.headers["www-authenticate"];
      await res.body.dump();
      const challenges = parseWwwAuthenticate(Array.isArray(header) ? header.join(", ") : (header ?? ""));
      const challenge =
        challenges.find((c) => c.scheme === "bearer") ?? challenges.find((c) => c.scheme === "basic");
      if (challenge) {
        this.challenge = challenge;
        this.authorization = undefined;
        await this.authenticate(challenge);
        res = await once();
      }
    }
    return res;
  }

  /** Closes the connection pool. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.dispatcher.close().catch(() => {});
  }

  /** Same as {@link close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
