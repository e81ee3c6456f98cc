import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { BlobCache, defaultCacheDir, writeFileAtomic } from "./blob-cache.js";
import { readBounded } from "./bounded-read.js";
import type { RegistryAuth } from "./credentials.js";
import { verifyBytes } from "./digest.js";
import { DockerArchiveSource } from "./docker-archive-source.js";
import {
  AbortedError,
  InvalidImageError,
  LimitExceededError,
  NoMatchingPlatformError,
  OciError,
  PullPolicyError,
  throwIfAborted,
} from "./errors.js";
import { parseImageConfig } from "./image-config.js";
import type { ImageSource } from "./image-source.js";
import { formatBytes, type OciLimits, resolveLimits } from "./limits.js";
import { type Descriptor, type ImageManifest, parseManifest, selectPlatform } from "./manifest.js";
import { OciLayoutSource } from "./oci-layout-source.js";
import {
  defaultPlatform,
  formatPlatform,
  normalizePlatform,
  type Platform,
  platformMatches,
} from "./platform.js";
import type { LayerInfo, PulledImage, PullProgress } from "./pulled-image.js";
import { type ImageReference, parseReference } from "./reference.js";
import { RegistrySource } from "./registry-source.js";

/** When to contact the registry. */
export type PullPolicy = "always" | "missing" | "never";

/** Options of {@link pullImage}. */
export interface PullOptions {
  /** `missing` (default): use the cache when it has the image; `always`: resolve the tag again (blobs already cached are not downloaded again); `never`: cache only. */
  pullPolicy?: PullPolicy;
  /** Blob cache directory (default `~/.cache/supermachine/oci`). */
  cacheDir?: string;
  /** Platform to select from multi-arch images (default: this host's, as linux). */
  platform?: Platform;
  /**
   * Registries (`host[:port]`) reachable over plain HTTP / unverified TLS
   * (localhost always is). Only a listed registry may send credentials to a
   * plain-HTTP token realm or redirect HTTPS to HTTP.
   */
  insecureRegistries?: string[];
  /** Credentials; otherwise `~/.docker/config.json` (auths, credHelpers, credsStore) is used. */
  auth?: RegistryAuth;
  /** Docker config path (default `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`). */
  dockerConfigPath?: string;
  /** Layer download progress. */
  onProgress?: (e: PullProgress) => void;
  /** Aborts the pull. */
  signal?: AbortSignal;
  /** Parallel layer downloads (default 3). */
  concurrency?: number;
  /**
   * Caps on manifest, config and token bodies, and on the compressed layer
   * bytes the manifest may declare (`maxUnpackedBytes`); see `OciLimits`
   * for the defaults. Exceeding one fails with `OCI_LIMIT_EXCEEDED`.
   */
  limits?: Partial<OciLimits>;
}

interface RefRecord {
  reference: string;
  platform: Platform;
  manifestDigest: string;
  indexDigest?: string;
}

function refKey(ref: string, platform: Platform): string {
  return createHash("sha256")
    .update(`${ref}\n${formatPlatform(normalizePlatform(platform))}`)
    .digest("hex");
}

const MAX_BLOB_ATTEMPTS = 4;

/**
 * Pulls an image into the blob cache and returns what is needed to run it.
 * Accepts registry references (Docker's normalization), `oci:/layout[:tag]`
 * and `docker-archive:/file.tar[:ref]`. Every manifest and blob is checked
 * against its digest before it is stored or used.
 */
export async function pullImage(ref: string, opts: PullOptions = {}): Promise<PulledImage> {
  const parsed = parseReference(ref);
  const policy = opts.pullPolicy ?? "missing";
  if (!["always", "missing", "never"].includes(policy)) {
    throw new PullPolicyError(`pullPolicy must be always, missing or never, got ${JSON.stringify(policy)}`);
  }
  const limits = resolveLimits(opts.limits);
  const cache = new BlobCache(opts.cacheDir ?? defaultCacheDir());
  const platform = normalizePlatform(opts.platform ?? defaultPlatform());
  throwIfAborted(opts.signal);
  if (parsed.transport === "docker" && policy !== "always") {
    const cached = await fromCache(cache, parsed, platform);
    if (cached) {
      for (const l of cached.layers) {
        opts.onProgress?.({ digest: l.digest, bytesDone: l.size, bytesTotal: l.size, status: "cached" });
      }
      return cached;
    }
    if (policy === "never") {
      throw new PullPolicyError(`image ${parsed.normalized} is not in the cache and pullPolicy is "never"`, {
        details: { reference: parsed.normalized, cacheDir: cache.dir },
      });
    }
  }
  const source = openSource(parsed, cache, opts, limits);
  try {
    return await pullFrom(source, parsed, cache, platform, opts, limits);
  } finally {
    await source.close();
  }
}

function openSource(
  parsed: ImageReference,
  cache: BlobCache,
  opts: PullOptions,
  limits: OciLimits,
): ImageSource {
  if (parsed.transport === "oci") return new OciLayoutSource(parsed, limits.maxManifestBytes);
  if (parsed.transport === "docker-archive") return new DockerArchiveSource(parsed, cache, limits);
  return new RegistrySource(parsed, {
    insecureRegistries: opts.insecureRegistries,
    auth: opts.auth,
    dockerConfigPath: opts.dockerConfigPath,
    signal: opts.signal,
    limits,
  });
}

async function fromCache(
  cache: BlobCache,
  ref: ImageReference,
  platform: Platform,
): Promise<PulledImage | undefined> {
  let manifestDigest: string | undefined;
  let indexDigest: string | undefined;
  if (ref.transport === "docker" && ref.digest) {
    const bytes = await cache.readVerified(ref.digest);
    if (!bytes) return undefined;
    const m = parseManifest(bytes);
    if (m.kind === "index") {
      indexDigest = ref.digest;
      manifestDigest = selectPlatform(m, platform).digest;
    } else manifestDigest = ref.digest;
  } else {
    try {
      const rec = JSON.parse(
        await readFile(join(cache.dir, "refs", `${refKey(ref.normalized, platform)}.json`), "utf8"),
      ) as RefRecord;
      manifestDigest = rec.manifestDigest;
      indexDigest = rec.indexDigest;
    } catch {
      return undefined;
    }
  }
  const mBytes = await cache.readVerified(manifestDigest);
  if (!mBytes) return undefined;
  const manifest = parseManifest(mBytes);
  if (manifest.kind !== "manifest") return undefined;
  const cfgBytes = await cache.readVerified(manifest.config.digest);
  if (!cfgBytes) return undefined;
  for (const l of manifest.layers) if (!(await cache.has(l.digest, l.size))) return undefined;
  return assemble(ref, cache, manifest, manifestDigest, indexDigest, cfgBytes, platform);
}

function assemble(
  ref: ImageReference,
  cache: BlobCache,
  manifest: ImageManifest,
  manifestDigest: string,
  indexDigest: string | undefined,
  cfgBytes: Buffer,
  wanted: Platform,
): PulledImage {
  const { config, diffIds } = parseImageConfig(cfgBytes);
  if (diffIds.length !== manifest.layers.length) {
    throw new InvalidImageError(
      `image ${ref.normalized}: manifest has ${manifest.layers.length} layers but config lists ${diffIds.length} diff IDs`,
    );
  }
  const platform: Platform =
    config.os && config.architecture
      ? {
          os: config.os,
          architecture: config.architecture,
          ...(config.variant ? { variant: config.variant } : {}),
        }
      : wanted;
  const layers: LayerInfo[] = manifest.layers.map((l, i) => ({
    digest: l.digest,
    diffId: diffIds[i]!,
    size: l.size,
    mediaType: l.mediaType,
  }));
  return {
    reference: ref.normalized,
    manifestDigest,
    ...(indexDigest ? { indexDigest } : {}),
    configDigest: manifest.config.digest,
    config,
    layers,
    platform,
    cacheDir: cache.dir,
  };
}

async function pullFrom(
  source: ImageSource,
  ref: ImageReference,
  cache: BlobCache,
  platform: Platform,
  opts: PullOptions,
  limits: OciLimits,
): Promise<PulledImage> {
  const top = await source.resolve();
  throwIfAborted(opts.signal);
  let parsed = parseManifest(top.bytes, top.contentType);
  let manifestDigest = top.digest;
  let manifestBytes = top.bytes;
  let indexDigest: string | undefined;
  if (parsed.kind === "index") {
    indexDigest = top.digest;
    await cache.putBytes(top.digest, top.bytes, "index");
    const desc = selectPlatform(parsed, platform);
    manifestBytes = await source.manifest(desc);
    verifyBytes(`manifest ${desc.digest}`, manifestBytes, desc.digest);
    parsed = parseManifest(manifestBytes, desc.mediaType);
    manifestDigest = desc.digest;
    if (parsed.kind === "index") {
      // A nested index (an OCI layout naming a multi-arch image): select once more.
      indexDigest = desc.digest;
      await cache.putBytes(desc.digest, manifestBytes, "index");
      const inner = selectPlatform(parsed, platform);
      manifestBytes = await source.manifest(inner);
      verifyBytes(`manifest ${inner.digest}`, manifestBytes, inner.digest);
      parsed = parseManifest(manifestBytes, inner.mediaType);
      manifestDigest = inner.digest;
      if (parsed.kind !== "manifest")
        throw new InvalidImageError(`manifest ${inner.digest} is an index nested too deep`);
    }
  }
  const manifest = parsed as ImageManifest;
  checkDeclaredSizes(ref, manifest, limits);
  let cfgBytes = await cache.readVerified(manifest.config.digest);
  if (!cfgBytes) {
    // Read at most the descriptor's size (+1 to notice more): an endless config body cannot fill memory.
    const desc = manifest.config;
    cfgBytes = await readBounded(
      (await source.blob(desc)) as AsyncIterable<Uint8Array> & { destroy?: () => void },
      desc.size,
      () =>
        new InvalidImageError(`config ${desc.digest}: more bytes than the descriptor's size ${desc.size}`),
    );
    verifyBytes(`config ${desc.digest}`, cfgBytes, desc.digest);
  }
  const result = assemble(ref, cache, manifest, manifestDigest, indexDigest, cfgBytes, platform);
  if (result.config.os && result.config.architecture && !platformMatches(platform, result.platform)) {
    throw new NoMatchingPlatformError(
      `image ${ref.normalized} is ${formatPlatform(result.platform)}, wanted ${formatPlatform(platform)}`,
      { details: { wanted: platform, offered: [formatPlatform(result.platform)] } },
    );
  }
  await downloadLayers(source, cache, manifest.layers, opts);
  await cache.putBytes(manifest.config.digest, cfgBytes, "config");
  await cache.putBytes(manifestDigest, manifestBytes, "manifest");
  if (ref.transport === "docker") {
    const rec: RefRecord = {
      reference: ref.normalized,
      platform,
      manifestDigest,
      ...(indexDigest ? { indexDigest } : {}),
    };
    await writeFileAtomic(
      join(cache.dir, "refs", `${refKey(ref.normalized, platform)}.json`),
      JSON.stringify(rec),
    );
  }
  return result;
}

/** Rejects, before anything is downloaded, a config or layer set bigger than the limits allow. */
function checkDeclaredSizes(ref: ImageReference, manifest: ImageManifest, limits: OciLimits): void {
  const cfg = manifest.config;
  if (cfg.size > limits.maxConfigBytes) {
    throw new LimitExceededError(
      "maxConfigBytes",
      limits.maxConfigBytes,
      `image ${ref.normalized}: config ${cfg.digest} is ${cfg.size} bytes, more than ${formatBytes(limits.maxConfigBytes)}`,
    );
  }
  const unique = new Map(manifest.layers.map((l) => [l.digest, l.size]));
  const total = [...unique.values()].reduce((a, b) => a + b, 0);
  if (total > limits.maxUnpackedBytes) {
    throw new LimitExceededError(
      "maxUnpackedBytes",
      limits.maxUnpackedBytes,
      `image ${ref.normalized}: its layers are ${total} bytes compressed, more than ${formatBytes(limits.maxUnpackedBytes)}`,
    );
  }
}

async function downloadLayers(
  source: ImageSource,
  cache: BlobCache,
  layers: Descriptor[],
  opts: PullOptions,
) {
  const queue = [...new Map(layers.map((l) => [l.digest, l])).values()];
  const progress = opts.onProgress;
  const worker = async () => {
    for (let l = queue.shift(); l; l = queue.shift()) {
      throwIfAborted(opts.signal);
      if (await cache.has(l.digest, l.size)) {
        progress?.({ digest: l.digest, bytesDone: l.size, bytesTotal: l.size, status: "cached" });
        continue;
      }
      await downloadBlob(source, cache, l, opts);
    }
  };
  const n = Math.max(1, Math.min(opts.concurrency ?? 3, queue.length));
  await Promise.all(Array.from({ length: n }, worker));
}

async function downloadBlob(
  source: ImageSource,
  cache: BlobCache,
  l: Descriptor,
  opts: PullOptions,
): Promise<void> {
  const progress = opts.onProgress;
  for (let attempt = 1; ; attempt++) {
    let done = 0;
    let lastReport = 0;
    progress?.({
      digest: l.digest,
      bytesDone: 0,
      bytesTotal: l.size,
      status: attempt > 1 ? "retrying" : "downloading",
    });
    try {
      const body = await source.blob(l);
      await cache.putStream(l.digest, body, {
        expectedSize: l.size,
        what: "layer",
        onBytes: (n) => {
          done += n;
          if (done - lastReport >= 512 * 1024 || done === l.size) {
            lastReport = done;
            progress?.({ digest: l.digest, bytesDone: done, bytesTotal: l.size, status: "downloading" });
          }
        },
      });
      progress?.({ digest: l.digest, bytesDone: l.size, bytesTotal: l.size, status: "done" });
      return;
    } catch (err) {
      // Typed errors (digest mismatch, 404, 401, abort) are final; stream/network hiccups are retried.
      if (opts.signal?.aborted) throw err instanceof AbortedError ? err : new AbortedError({ cause: err });
      const final = err instanceof OciError && err.code !== "OCI_NETWORK";
      if (final || attempt >= MAX_BLOB_ATTEMPTS) throw err;
      await new Promise((r) => setTimeout(r, 250 * 2 ** (attempt - 1)));
    }
  }
}
