// Test helpers for hostile registries and images: a real HTTP(S) server on
// 127.0.0.1 that records every request it gets (each port is its own
// origin), and builders for small images whose layers say anything a test
// wants them to say.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { defaultPlatform } from "./platform.js";

/** One request a {@link HostileServer} received. */
export interface RecordedRequest {
  method: string;
  url: string;
  /** The Authorization header, if any was sent. */
  authorization?: string;
  headers: IncomingMessage["headers"];
}

/** A real server on 127.0.0.1 under test control. */
export interface HostileServer {
  /** `127.0.0.1:PORT`. */
  host: string;
  /** `http://127.0.0.1:PORT` (or https). */
  origin: string;
  /** Every request received, in order. */
  requests: RecordedRequest[];
  /** Bytes written by {@link endless} responses, and whether the client hung up on each. */
  endless: { bytes: number; clientClosed: boolean }[];
  close(): Promise<void>;
}

type Handler = (req: IncomingMessage, res: ServerResponse, srv: HostileServer) => void;

/** Starts a server on 127.0.0.1 (a free port) that records requests, then calls `handler`. */
export async function startHostileServer(
  handler: Handler,
  opts: { tls?: { key: string; cert: string } } = {},
): Promise<HostileServer> {
  const state: HostileServer = {
    host: "",
    origin: "",
    requests: [],
    endless: [],
    close: async () => {},
  };
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    state.requests.push({
      method: req.method ?? "",
      url: req.url ?? "",
      authorization: req.headers.authorization,
      headers: req.headers,
    });
    handler(req, res, state);
  };
  const srv = opts.tls ? createHttpsServer(opts.tls, listener) : createHttpServer(listener);
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const port = (srv.address() as AddressInfo).port;
  state.host = `127.0.0.1:${port}`;
  state.origin = `${opts.tls ? "https" : "http"}://${state.host}`;
  state.close = async () => {
    srv.closeAllConnections();
    await new Promise((r) => srv.close(r));
  };
  return state;
}

/**
 * Answers with a body that never ends (64 KiB chunks, honouring back
 * pressure) until the client hangs up; records the bytes sent in `srv.endless`.
 */
export function endless(res: ServerResponse, srv: HostileServer, status = 200, contentType?: string): void {
  const rec = { bytes: 0, clientClosed: false };
  srv.endless.push(rec);
  res.writeHead(status, contentType ? { "content-type": contentType } : {});
  const chunk = Buffer.alloc(64 * 1024, "A");
  let open = true;
  res.on("close", () => {
    open = false;
    rec.clientClosed = !res.writableFinished;
  });
  const pump = () => {
    while (open) {
      rec.bytes += chunk.length;
      if (!res.write(chunk)) {
        res.once("drain", pump);
        return;
      }
    }
  };
  pump();
}

/** `sha256:` of bytes. */
export const sha256 = (b: Uint8Array | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

export { type TarIn, tarOf } from "./tar-fixture.test-util.js";

/** A descriptor as written into test manifests. */
export interface TestDescriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/** The manifest object of a test image, before serialization. */
export interface TestManifest {
  schemaVersion: number;
  mediaType: string;
  config: TestDescriptor;
  layers: TestDescriptor[];
}

/** A complete image in memory: blobs by digest, plus the manifest. */
export interface TestImage {
  manifest: Buffer;
  manifestDigest: string;
  configDigest: string;
  layerDigests: string[];
  blobs: Map<string, Buffer>;
}

/**
 * Builds an image from uncompressed layer tars (each stored gzipped unless
 * `gzip: false`). `manifestPatch` may rewrite the manifest object (e.g. to
 * declare other sizes) before it is serialized.
 */
export function buildImage(
  tars: Buffer[],
  opts: { gzip?: boolean; manifestPatch?: (m: TestManifest) => void } = {},
): TestImage {
  const blobs = new Map<string, Buffer>();
  const platform = defaultPlatform();
  const layers = tars.map((t) => {
    const buf = opts.gzip === false ? t : gzipSync(t);
    const digest = sha256(buf);
    blobs.set(digest, buf);
    return {
      mediaType:
        opts.gzip === false
          ? "application/vnd.oci.image.layer.v1.tar"
          : "application/vnd.oci.image.layer.v1.tar+gzip",
      digest,
      size: buf.length,
    };
  });
  const config = Buffer.from(
    JSON.stringify({
      architecture: platform.architecture,
      os: platform.os,
      config: { Cmd: ["/bin/sh"] },
      rootfs: { type: "layers", diff_ids: tars.map((t) => sha256(t)) },
    }),
  );
  const configDigest = sha256(config);
  blobs.set(configDigest, config);
  const manifestObj: TestManifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: configDigest,
      size: config.length,
    },
    layers,
  };
  opts.manifestPatch?.(manifestObj);
  const manifest = Buffer.from(JSON.stringify(manifestObj));
  return {
    manifest,
    manifestDigest: sha256(manifest),
    configDigest,
    layerDigests: layers.map((l) => l.digest),
    blobs,
  };
}

/** Writes `image` as an OCI image layout in `dir` (tag `latest`); returns `dir`. */
export function writeLayout(dir: string, image: TestImage): string {
  mkdirSync(join(dir, "blobs", "sha256"), { recursive: true });
  writeFileSync(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  for (const [digest, buf] of image.blobs) writeFileSync(join(dir, "blobs", "sha256", digest.slice(7)), buf);
  writeFileSync(join(dir, "blobs", "sha256", image.manifestDigest.slice(7)), image.manifest);
  writeFileSync(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          digest: image.manifestDigest,
          size: image.manifest.length,
          annotations: { "org.opencontainers.image.ref.name": "latest" },
        },
      ],
    }),
  );
  return dir;
}

/** A self-signed certificate for 127.0.0.1, made with openssl in `dir`. */
export function selfSignedCert(dir: string): { key: string; cert: string } {
  const key = join(dir, "tls.key");
  const cert = join(dir, "tls.crt");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
    ],
    { stdio: "ignore" },
  );
  return { key: readFileSync(key, "utf8"), cert: readFileSync(cert, "utf8") };
}
