// Pushing to a registry that is out to get the user: the upload Location it
// hands out points at another origin, which must get the blob but never the
// credentials. Real servers on 127.0.0.1 (two ports = two origins) record
// every header they get.
import type { IncomingMessage, ServerResponse } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { type HostileServer, sha256, startHostileServer } from "./hostile.test-util.js";
import { RegistryClient } from "./index.js";

const USER = { username: "alice", password: "s3cret-pw" };
const BASIC = `Basic ${Buffer.from("alice:s3cret-pw").toString("base64")}`;
const servers: HostileServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function server(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const s = await startHostileServer(handler);
  servers.push(s);
  return s;
}

/** Drains a request body and returns it. */
async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe("pushing never sends credentials to another origin", () => {
  it("an upload Location on another origin gets the blob without the Authorization header", async () => {
    const blob = Buffer.from("snapshot bytes");
    const received: Buffer[] = [];
    const other = await server(async (req, res) => {
      received.push(await body(req));
      res.writeHead(201).end();
    });
    const reg = await server(async (req, res) => {
      const url = req.url ?? "";
      if (req.headers.authorization !== BASIC) {
        res.writeHead(401, { "www-authenticate": 'Basic realm="evil"' }).end();
        return;
      }
      if (url === "/v2/") return void res.writeHead(200).end();
      if (req.method === "HEAD" && url.includes("/blobs/")) return void res.writeHead(404).end();
      if (req.method === "POST" && url.endsWith("/blobs/uploads/")) {
        return void res.writeHead(202, { location: `${other.origin}/steal/upload-1` }).end();
      }
      if (req.method === "PUT" && url.includes("/manifests/")) {
        await body(req);
        return void res.writeHead(201, { "docker-content-digest": "sha256:x" }).end();
      }
      res.writeHead(404).end();
    });
    await using client = new RegistryClient({
      registry: reg.host,
      repository: "evil/app",
      auth: USER,
      push: true,
      maxAttempts: 1,
    });
    await client.pushBlob(sha256(blob), blob.length, blob);
    // the blob went where the registry said, the credentials stayed with the registry
    expect(received).toEqual([blob]);
    expect(other.requests.map((r) => [r.method, r.authorization])).toEqual([["PUT", undefined]]);
    expect(other.requests[0]?.url).toBe(`/steal/upload-1?digest=${encodeURIComponent(sha256(blob))}`);
    const authed = reg.requests.filter((r) => r.authorization === BASIC).map((r) => r.method);
    expect(authed).toEqual(expect.arrayContaining(["HEAD", "POST"]));
    expect(
      await client.putManifest("t", Buffer.from("{}"), "application/vnd.oci.image.manifest.v1+json"),
    ).toBe("sha256:x");
  });

  it("a Location with another scheme is refused", async () => {
    const reg = await server(async (req, res) => {
      const url = req.url ?? "";
      if (url === "/v2/") return void res.writeHead(200).end();
      if (req.method === "HEAD") return void res.writeHead(404).end();
      if (req.method === "POST") return void res.writeHead(202, { location: "file:///etc/passwd" }).end();
      res.writeHead(500).end();
    });
    await using client = new RegistryClient({
      registry: reg.host,
      repository: "evil/app",
      push: true,
      maxAttempts: 1,
    });
    const err = await client.pushBlob(sha256("x"), 1, Buffer.from("x")).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe("OCI_REGISTRY_ERROR");
    expect(reg.requests.some((r) => r.method === "PUT")).toBe(false);
  });
});
