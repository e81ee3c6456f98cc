import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { RegistryClient } from "./registry-client.js";
import { parseWwwAuthenticate } from "./www-authenticate.js";

// HTTP-semantics tests of the client (challenge parsing, token exchange,
// redirects, retries) against small in-process servers. The real registry is
// exercised by pull.integration.test.ts.

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
const servers: Server[] = [];
async function serve(handler: Handler): Promise<string> {
  const srv = createServer(handler);
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  return `127.0.0.1:${(srv.address() as AddressInfo).port}`;
}
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

describe("parseWwwAuthenticate", () => {
  it("parses bearer and basic challenges with quoted commas", () => {
    expect(
      parseWwwAuthenticate('Bearer realm="https://a/token",service="reg",scope="repository:x:pull"'),
    ).toEqual([
      { scheme: "bearer", params: { realm: "https://a/token", service: "reg", scope: "repository:x:pull" } },
    ]);
    expect(parseWwwAuthenticate('Bearer realm="a,b", error="insufficient_scope", Basic realm=x')).toEqual([
      { scheme: "bearer", params: { realm: "a,b", error: "insufficient_scope" } },
      { scheme: "basic", params: { realm: "x" } },
    ]);
  });
});

describe("RegistryClient", () => {
  it("exchanges credentials for a bearer token scoped to the repository", async () => {
    const seen: string[] = [];
    const auth = await serve((req, res) => {
      const url = new URL(req.url!, "http://x");
      seen.push(
        `${url.searchParams.get("service")} ${url.searchParams.get("scope")} ${req.headers.authorization}`,
      );
      if (req.headers.authorization !== `Basic ${Buffer.from("u:p").toString("base64")}`) {
        res.writeHead(401).end();
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token: "T0K" }));
    });
    const reg = await serve((req, res) => {
      if (req.headers.authorization !== "Bearer T0K") {
        res
          .writeHead(401, { "www-authenticate": `Bearer realm="http://${auth}/token",service="test-reg"` })
          .end();
        return;
      }
      res
        .writeHead(200, { "content-type": "application/vnd.oci.image.manifest.v1+json" })
        .end('{"schemaVersion":2}');
    });
    // The realm is plain HTTP: allowed only because the registry is listed insecure.
    const client = new RegistryClient({
      registry: reg,
      repository: "a/b",
      auth: { username: "u", password: "p" },
      insecureRegistries: [reg],
    });
    const m = await client.getManifest("latest");
    expect(m.bytes.toString()).toBe('{"schemaVersion":2}');
    expect(seen[0]).toBe(`test-reg repository:a/b:pull Basic ${Buffer.from("u:p").toString("base64")}`);
    await client.close();
    const bad = new RegistryClient({
      registry: reg,
      repository: "a/b",
      auth: { username: "u", password: "nope" },
      insecureRegistries: [reg],
    });
    await expect(bad.getManifest("latest")).rejects.toMatchObject({ code: "OCI_UNAUTHORIZED" });
    await bad.close();
  });

  it("follows redirects to blob storage without leaking the Authorization header", async () => {
    let storageAuth: string | undefined = "unset";
    const storage = await serve((req, res) => {
      storageAuth = req.headers.authorization;
      res.writeHead(200).end("blob-bytes");
    });
    const reg = await serve((req, res) => {
      if (req.url === "/v2/") {
        res.writeHead(401, { "www-authenticate": 'Basic realm="r"' }).end();
        return;
      }
      res.writeHead(307, { location: `http://${storage}/bucket/object?sig=1` }).end();
    });
    const client = new RegistryClient({
      registry: reg,
      repository: "x",
      auth: { username: "u", password: "p" },
    });
    const { body } = await client.openBlob(`sha256:${"0".repeat(64)}`);
    let text = "";
    for await (const c of body) text += c;
    expect(text).toBe("blob-bytes");
    expect(storageAuth).toBeUndefined();
    await client.close();
  });

  it("retries transient 503s with backoff, then gives up with a typed error", async () => {
    let calls = 0;
    const reg = await serve((req, res) => {
      if (req.url === "/v2/") {
        res.writeHead(200).end();
        return;
      }
      calls++;
      if (calls < 3) res.writeHead(503).end();
      else res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
    const client = new RegistryClient({ registry: reg, repository: "x", backoffMs: 10 });
    expect((await client.getManifest("t")).bytes.toString()).toBe("{}");
    expect(calls).toBe(3);
    await client.close();
    const down = await serve((req, res) => {
      if (req.url === "/v2/") res.writeHead(200).end();
      else res.writeHead(503).end();
    });
    const c2 = new RegistryClient({ registry: down, repository: "x", backoffMs: 5, maxAttempts: 3 });
    await expect(c2.getManifest("t")).rejects.toMatchObject({ code: "OCI_REGISTRY_ERROR" });
    await c2.close();
  });

  it("maps 404 to OCI_MANIFEST_UNKNOWN / OCI_NOT_FOUND and unreachable hosts to OCI_NETWORK", async () => {
    const reg = await serve((req, res) => {
      res.writeHead(req.url === "/v2/" ? 200 : 404).end();
    });
    const client = new RegistryClient({ registry: reg, repository: "x" });
    await expect(client.getManifest("t")).rejects.toMatchObject({ code: "OCI_MANIFEST_UNKNOWN" });
    await expect(client.openBlob(`sha256:${"1".repeat(64)}`)).rejects.toMatchObject({
      code: "OCI_NOT_FOUND",
    });
    await client.close();
    const dead = new RegistryClient({
      registry: "127.0.0.1:1",
      repository: "x",
      backoffMs: 1,
      maxAttempts: 2,
    });
    await expect(dead.getManifest("t")).rejects.toMatchObject({ code: "OCI_NETWORK" });
    await dead.close();
  });
});
