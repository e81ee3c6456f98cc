// A registry that is out to get the user: redirects credentials elsewhere,
// asks for them over plain HTTP, sends bodies without end. Each attack runs
// against real servers on 127.0.0.1 (two ports = two origins) that record
// every header they get, and must fail with its typed code without
// credentials reaching a server that must not have them.
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  buildImage,
  endless,
  type HostileServer,
  selfSignedCert,
  sha256,
  startHostileServer,
  type TestImage,
  tarOf,
} from "./hostile.test-util.js";
import { pullImage } from "./index.js";

const USER = { username: "alice", password: "s3cret-pw" };
const BASIC = `Basic ${Buffer.from("alice:s3cret-pw").toString("base64")}`;
const work = mkdtempSync(join(tmpdir(), "oci-hostile-reg-"));
let n = 0;
const freshCache = () => join(work, `cache-${n++}`);
const servers: HostileServer[] = [];
let image: TestImage;

async function server(handler: Parameters<typeof startHostileServer>[0], tls = false) {
  const s = await startHostileServer(handler, tls ? { tls: selfSignedCert(work) } : {});
  servers.push(s);
  return s;
}

beforeAll(async () => {
  image = buildImage([await tarOf([{ name: "hello.txt", data: "hello\n" }])]);
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

type Route = (req: IncomingMessage, res: ServerResponse, srv: HostileServer) => boolean | undefined;

/**
 * A registry serving `image` as `evil/app:1`. `auth`: how /v2/ and repository
 * requests are guarded (Basic credentials, or a Bearer token from `realm`).
 * `route` sees every request first and may answer it itself (return true).
 */
function registry(opts: {
  auth?: { basic: true } | { bearer: string; realm: () => string };
  route?: Route;
  img?: TestImage;
}) {
  return (req: IncomingMessage, res: ServerResponse, srv: HostileServer) => {
    const img = opts.img ?? image;
    if (opts.route?.(req, res, srv)) return;
    const a = opts.auth;
    const authorized =
      !a ||
      ("basic" in a
        ? req.headers.authorization === BASIC
        : req.headers.authorization === `Bearer ${a.bearer}`);
    if (!authorized) {
      const challenge =
        a && "basic" in a ? 'Basic realm="evil"' : `Bearer realm="${a!.realm()}",service="evil"`;
      res.writeHead(401, { "www-authenticate": challenge }).end();
      return;
    }
    const url = req.url ?? "";
    if (url === "/v2/") {
      res.writeHead(200).end("{}");
      return;
    }
    if (url === "/v2/evil/app/manifests/1" || url === `/v2/evil/app/manifests/${img.manifestDigest}`) {
      res.writeHead(200, { "content-type": "application/vnd.oci.image.manifest.v1+json" }).end(img.manifest);
      return;
    }
    const m = /^\/v2\/evil\/app\/blobs\/(sha256:[0-9a-f]{64})$/.exec(url);
    const blob = m ? img.blobs.get(m[1]!) : undefined;
    if (blob) {
      res.writeHead(200, { "content-length": blob.length }).end(blob);
      return;
    }
    res.writeHead(404).end();
  };
}

/** Serves blobs of `image` at any path ending in the digest (storage behind a redirect). */
function storage(req: IncomingMessage, res: ServerResponse) {
  const m = /(sha256:[0-9a-f]{64})/.exec(decodeURIComponent(req.url ?? ""));
  const blob = m ? image.blobs.get(m[1]!) : undefined;
  if (blob) res.writeHead(200).end(blob);
  else res.writeHead(404).end();
}

const repoRequests = (s: HostileServer) => s.requests.filter((r) => r.url.startsWith("/v2/evil/"));

describe("credentials never follow a redirect to another origin", () => {
  it("blob redirects to a storage origin are followed without the Authorization header", async () => {
    const store = await server((req, res) => storage(req, res));
    const reg = await server(
      registry({
        auth: { basic: true },
        route: (req, res) => {
          if (!req.url?.includes("/blobs/") || req.headers.authorization !== BASIC) return false;
          res.writeHead(307, { location: `${store.origin}/bucket/${req.url.split("/").pop()}?sig=x` }).end();
          return true;
        },
      }),
    );
    const img = await pullImage(`${reg.host}/evil/app:1`, { cacheDir: freshCache(), auth: USER });
    expect(img.layers.map((l) => l.digest)).toEqual(image.layerDigests);
    // The registry got the credentials on every repository request; the storage origin never did.
    expect(repoRequests(reg).every((r) => r.authorization === BASIC)).toBe(true);
    expect(store.requests.length).toBe(2); // config + layer
    expect(store.requests.map((r) => r.authorization)).toEqual([undefined, undefined]);
  });

  it("once a redirect chain has left the registry's origin, coming back does not bring the credentials back", async () => {
    const reg = await server(
      registry({
        auth: { basic: true },
        route: (req, res) => {
          const url = req.url ?? "";
          if (url.startsWith("/back/")) {
            storage(req, res); // answers whatever headers came (and they are recorded)
            return true;
          }
          if (!url.includes("/blobs/") || req.headers.authorization !== BASIC) return false;
          res.writeHead(302, { location: `${other.origin}/hop/${url.split("/").pop()}` }).end();
          return true;
        },
      }),
    );
    const other = await server((req, res) => {
      res.writeHead(302, { location: `${reg.origin}/back/${req.url?.split("/").pop()}` }).end();
    });
    await pullImage(`${reg.host}/evil/app:1`, { cacheDir: freshCache(), auth: USER });
    const back = reg.requests.filter((r) => r.url.startsWith("/back/"));
    expect(back.length).toBe(2);
    expect(back.map((r) => r.authorization)).toEqual([undefined, undefined]);
    expect(other.requests.map((r) => r.authorization)).toEqual([undefined, undefined]);
  });

  it("the token request's credentials do not follow the realm's redirect to another origin", async () => {
    const thief = await server((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" }).end('{"token":"from-thief"}');
    });
    const reg = await server(
      registry({
        auth: { bearer: "real-token", realm: () => `${reg.origin}/token` },
        route: (req, res) => {
          if (!req.url?.startsWith("/token")) return false;
          res.writeHead(302, { location: `${thief.origin}/collect${req.url.slice("/token".length)}` }).end();
          return true;
        },
      }),
    );
    // Listed insecure only so that the plain-HTTP realm is allowed at all.
    const err = await pullImage(`${reg.host}/evil/app:1`, {
      cacheDir: freshCache(),
      auth: USER,
      insecureRegistries: [reg.host],
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "OCI_UNAUTHORIZED" });
    const tokenRequests = reg.requests.filter((r) => r.url.startsWith("/token"));
    expect(tokenRequests.length).toBeGreaterThan(0);
    expect(tokenRequests.every((r) => r.authorization === BASIC)).toBe(true);
    expect(thief.requests.length).toBeGreaterThan(0); // the redirect was followed ...
    expect(thief.requests.every((r) => r.authorization === undefined)).toBe(true); // ... without credentials
  });

  it("a realm on another origin gets the credentials its challenge asks for, but not the realm's own redirect", async () => {
    const issuer = await server((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" }).end('{"token":"T-issued"}');
    });
    const realm = await server((req, res) => {
      res
        .writeHead(307, { location: `${issuer.origin}/issue${(req.url ?? "").slice("/auth".length)}` })
        .end();
    });
    const reg = await server(registry({ auth: { bearer: "T-issued", realm: () => `${realm.origin}/auth` } }));
    const img = await pullImage(`${reg.host}/evil/app:1`, {
      cacheDir: freshCache(),
      auth: USER,
      insecureRegistries: [reg.host],
    });
    expect(img.manifestDigest).toBe(image.manifestDigest);
    expect(realm.requests.map((r) => r.authorization)).toEqual([BASIC]);
    expect(new URL(realm.requests[0]!.url, "http://x").searchParams.get("scope")).toBe(
      "repository:evil/app:pull",
    );
    expect(issuer.requests.map((r) => r.authorization)).toEqual([undefined]);
    expect(repoRequests(reg).every((r) => r.authorization === "Bearer T-issued")).toBe(true);
    expect(reg.requests.some((r) => r.authorization === BASIC)).toBe(false);
  });
});

describe("a token realm must be https unless the registry is listed insecure", () => {
  it("refuses a plain-HTTP realm with OCI_INSECURE_TOKEN_REALM and sends nothing there", async () => {
    const realm = await server((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" }).end('{"token":"T"}');
    });
    const reg = await server(registry({ auth: { bearer: "T", realm: () => `${realm.origin}/token` } }));
    // 127.0.0.1 is plain-HTTP-capable by default, but that is not "listed".
    await expect(
      pullImage(`${reg.host}/evil/app:1`, { cacheDir: freshCache(), auth: USER }),
    ).rejects.toMatchObject({ code: "OCI_INSECURE_TOKEN_REALM", details: { registry: reg.host } });
    expect(realm.requests).toEqual([]);
    const img = await pullImage(`${reg.host}/evil/app:1`, {
      cacheDir: freshCache(),
      auth: USER,
      insecureRegistries: [reg.host],
    });
    expect(img.manifestDigest).toBe(image.manifestDigest);
    expect(realm.requests.map((r) => r.authorization)).toEqual([BASIC]);
  });

  it("refuses realms that are not http(s) URLs", async () => {
    for (const bad of ["file:///etc/passwd", "ftp://127.0.0.1/t", "not a url"]) {
      const reg = await server(registry({ auth: { bearer: "T", realm: () => bad } }));
      await expect(
        pullImage(`${reg.host}/evil/app:1`, {
          cacheDir: freshCache(),
          auth: USER,
          insecureRegistries: [reg.host],
        }),
      ).rejects.toMatchObject({ code: "OCI_REGISTRY_ERROR" });
    }
  });
});

describe("redirects that downgrade", () => {
  it("an https registry cannot redirect to plain http (nor to file:) unless listed insecure", async () => {
    const plain = await server((req, res) => storage(req, res));
    let target = "";
    const reg = await server(
      registry({
        auth: { basic: true },
        route: (req, res) => {
          if (!req.url?.includes("/blobs/") || req.headers.authorization !== BASIC) return false;
          res.writeHead(307, { location: target + req.url.split("/").pop() }).end();
          return true;
        },
      }),
      true,
    );
    expect(reg.origin.startsWith("https://")).toBe(true);
    target = `${plain.origin}/plain/`;
    await expect(
      pullImage(`${reg.host}/evil/app:1`, { cacheDir: freshCache(), auth: USER }),
    ).rejects.toMatchObject({ code: "OCI_INSECURE_REDIRECT" });
    expect(plain.requests).toEqual([]);
    target = "file:///etc/";
    await expect(
      pullImage(`${reg.host}/evil/app:1`, { cacheDir: freshCache(), auth: USER }),
    ).rejects.toMatchObject({ code: "OCI_INSECURE_REDIRECT" });
    // Listed insecure: the downgrade is allowed, still without credentials.
    target = `${plain.origin}/plain/`;
    await pullImage(`${reg.host}/evil/app:1`, {
      cacheDir: freshCache(),
      auth: USER,
      insecureRegistries: [reg.host],
    });
    expect(plain.requests.length).toBe(2);
    expect(plain.requests.every((r) => r.authorization === undefined)).toBe(true);
  });
});

describe("bodies are capped, never buffered whole", () => {
  it("an oversized manifest fails with OCI_LIMIT_EXCEEDED (maxManifestBytes); raising the limit lets it through", async () => {
    const big = buildImage([await tarOf([{ name: "x", data: "x" }])]);
    // A valid manifest padded with 5 MiB of whitespace.
    const padded = Buffer.concat([big.manifest, Buffer.alloc(5 * 1024 * 1024, " ")]);
    const bigImage: TestImage = { ...big, manifest: padded, manifestDigest: sha256(padded) };
    const reg = await server(registry({ img: bigImage }));
    await expect(pullImage(`${reg.host}/evil/app:1`, { cacheDir: freshCache() })).rejects.toMatchObject({
      code: "OCI_LIMIT_EXCEEDED",
      limit: "maxManifestBytes",
      details: { max: 4 * 1024 * 1024 },
    });
    const img = await pullImage(`${reg.host}/evil/app:1`, {
      cacheDir: freshCache(),
      limits: { maxManifestBytes: 8 * 1024 * 1024 },
    });
    expect(img.manifestDigest).toBe(bigImage.manifestDigest);
  });

  it("an endless manifest body stops at the cap and the connection is dropped", async () => {
    const reg = await server(
      registry({
        route: (req, res, srv) => {
          if (!req.url?.includes("/manifests/")) return false;
          endless(res, srv, 200, "application/vnd.oci.image.manifest.v1+json");
          return true;
        },
      }),
    );
    const err = await pullImage(`${reg.host}/evil/app:1`, {
      cacheDir: freshCache(),
      limits: { maxManifestBytes: 256 * 1024 },
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "OCI_LIMIT_EXCEEDED", limit: "maxManifestBytes" });
    await expect.poll(() => reg.endless[0]?.clientClosed).toBe(true);
  });

  it("an endless token response stops at maxTokenBytes", async () => {
    const reg = await server(
      registry({
        auth: { bearer: "T", realm: () => `${reg.origin}/token` },
        route: (req, res, srv) => {
          if (!req.url?.startsWith("/token")) return false;
          endless(res, srv, 200, "application/json");
          return true;
        },
      }),
    );
    await expect(
      pullImage(`${reg.host}/evil/app:1`, {
        cacheDir: freshCache(),
        auth: USER,
        insecureRegistries: [reg.host],
      }),
    ).rejects.toMatchObject({ code: "OCI_LIMIT_EXCEEDED", limit: "maxTokenBytes" });
    await expect.poll(() => reg.endless[0]?.clientClosed).toBe(true);
  });

  it("endless error bodies are cut short: the typed error still comes, with a short message", async () => {
    for (const status of [400, 404]) {
      const reg = await server(
        registry({
          route: (req, res, srv) => {
            if (!req.url?.includes("/manifests/")) return false;
            endless(res, srv, status);
            return true;
          },
        }),
      );
      const err = (await pullImage(`${reg.host}/evil/app:1`, { cacheDir: freshCache() }).catch(
        (e: unknown) => e,
      )) as Error & { code: string };
      expect(err.code).toBe(status === 404 ? "OCI_MANIFEST_UNKNOWN" : "OCI_REGISTRY_ERROR");
      expect(err.message.length).toBeLessThan(1000);
      await expect.poll(() => reg.endless[0]?.clientClosed).toBe(true);
    }
  });

  it("a config declared bigger than maxConfigBytes is refused before it is fetched", async () => {
    const huge = buildImage([await tarOf([{ name: "x", data: "x" }])], {
      manifestPatch: (m) => {
        m.config.size = 100 * 1024 * 1024;
      },
    });
    const reg = await server(registry({ img: huge }));
    await expect(pullImage(`${reg.host}/evil/app:1`, { cacheDir: freshCache() })).rejects.toMatchObject({
      code: "OCI_LIMIT_EXCEEDED",
      limit: "maxConfigBytes",
    });
    expect(reg.requests.some((r) => r.url.includes("/blobs/"))).toBe(false);
  });

  it("an endless config or layer body stops at the descriptor's size", async () => {
    for (const which of ["config", "layer"] as const) {
      const reg = await server(
        registry({
          route: (req, res, srv) => {
            const digest = which === "config" ? image.configDigest : image.layerDigests[0]!;
            if (req.url !== `/v2/evil/app/blobs/${digest}`) return false;
            endless(res, srv);
            return true;
          },
        }),
      );
      const cacheDir = freshCache();
      const err = await pullImage(`${reg.host}/evil/app:1`, { cacheDir }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: which === "config" ? "OCI_INVALID_IMAGE" : "OCI_DIGEST_MISMATCH" });
      await expect.poll(() => reg.endless[0]?.clientClosed).toBe(true);
      // Nothing unverified is left in the cache.
      const tmp = join(cacheDir, "tmp");
      expect(existsSync(tmp) ? readdirSync(tmp) : []).toEqual([]);
      expect(existsSync(join(cacheDir, "refs"))).toBe(false);
    }
  });

  it("layers declared bigger in total than maxUnpackedBytes are refused before any download", async () => {
    const reg = await server(registry({}));
    const total = [...image.layerDigests].reduce((a, d) => a + image.blobs.get(d)!.length, 0);
    await expect(
      pullImage(`${reg.host}/evil/app:1`, {
        cacheDir: freshCache(),
        limits: { maxUnpackedBytes: total - 1 },
      }),
    ).rejects.toMatchObject({ code: "OCI_LIMIT_EXCEEDED", limit: "maxUnpackedBytes" });
    expect(reg.requests.some((r) => r.url.includes("/blobs/"))).toBe(false);
  });
});
