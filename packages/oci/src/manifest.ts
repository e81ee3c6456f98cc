import { InvalidImageError, NoMatchingPlatformError, UnsupportedSchemaError } from "./errors.js";
import { LAYER_MEDIA_TYPES, MediaTypes } from "./media-types.js";
import { formatPlatform, normalizePlatform, type Platform, platformMatches } from "./platform.js";

/** A content descriptor (OCI / Docker schema 2). */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  urls?: string[];
  annotations?: Record<string, string>;
}

/** An image manifest (OCI or Docker schema 2). */
export interface ImageManifest {
  kind: "manifest";
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

/** An image index (OCI) or manifest list (Docker). */
export interface ImageIndex {
  kind: "index";
  mediaType: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

function descriptor(v: unknown, where: string): Descriptor {
  const d = v as Partial<Descriptor> | null;
  if (
    !d ||
    typeof d !== "object" ||
    typeof d.digest !== "string" ||
    typeof d.size !== "number" ||
    d.size < 0
  ) {
    throw new InvalidImageError(`${where}: malformed descriptor`);
  }
  if (!/^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(d.digest)) {
    throw new InvalidImageError(`${where}: malformed digest ${JSON.stringify(d.digest)}`);
  }
  const out: Descriptor = {
    mediaType: typeof d.mediaType === "string" ? d.mediaType : "",
    digest: d.digest,
    size: d.size,
  };
  const p = d.platform as Partial<Platform> | undefined;
  if (p && typeof p.os === "string" && typeof p.architecture === "string") {
    out.platform = {
      os: p.os,
      architecture: p.architecture,
      ...(typeof p.variant === "string" ? { variant: p.variant } : {}),
    };
  }
  if (Array.isArray(d.urls)) out.urls = d.urls.filter((u) => typeof u === "string");
  if (d.annotations && typeof d.annotations === "object") out.annotations = d.annotations;
  return out;
}

/**
 * Parses manifest bytes into an {@link ImageManifest} or {@link ImageIndex}.
 * `contentType` is the HTTP Content-Type (or descriptor media type), used when
 * the JSON has no `mediaType`. Throws {@link UnsupportedSchemaError} for
 * Docker schema 1 and unknown formats.
 */
export function parseManifest(bytes: Uint8Array, contentType?: string): ImageManifest | ImageIndex {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(Buffer.from(bytes).toString("utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new InvalidImageError("manifest is not valid JSON", { cause: err });
  }
  if (!json || typeof json !== "object") throw new InvalidImageError("manifest is not a JSON object");
  const ct = contentType?.split(";")[0]?.trim();
  const mediaType =
    typeof json.mediaType === "string" ? json.mediaType : ct && ct !== "application/json" ? ct : "";
  if (
    json.schemaVersion === 1 ||
    mediaType === MediaTypes.dockerManifestV1 ||
    mediaType === MediaTypes.dockerManifestV1Signed
  ) {
    throw new UnsupportedSchemaError(
      "Docker image manifest schema 1 is not supported (deprecated since 2017); push the image again with a current client",
      { details: { mediaType } },
    );
  }
  if (json.schemaVersion !== 2) {
    throw new UnsupportedSchemaError(
      `unsupported manifest schemaVersion ${JSON.stringify(json.schemaVersion)}`,
    );
  }
  const annotations = (
    json.annotations && typeof json.annotations === "object" ? json.annotations : undefined
  ) as Record<string, string> | undefined;
  if (
    Array.isArray(json.manifests) ||
    mediaType === MediaTypes.ociIndex ||
    mediaType === MediaTypes.dockerManifestList
  ) {
    if (!Array.isArray(json.manifests)) throw new InvalidImageError("index has no manifests array");
    return {
      kind: "index",
      mediaType: mediaType || MediaTypes.ociIndex,
      manifests: json.manifests.map((m, i) => descriptor(m, `index manifests[${i}]`)),
      ...(annotations ? { annotations } : {}),
    };
  }
  if (json.config !== undefined && Array.isArray(json.layers)) {
    const config = descriptor(json.config, "manifest config");
    const layers = json.layers.map((l, i) => descriptor(l, `manifest layers[${i}]`));
    for (const l of layers) {
      if (l.mediaType && !LAYER_MEDIA_TYPES.has(l.mediaType)) {
        throw new InvalidImageError(`unsupported layer media type ${l.mediaType}`, {
          mediaType: true,
          details: { digest: l.digest },
        });
      }
    }
    return {
      kind: "manifest",
      mediaType: mediaType || MediaTypes.ociManifest,
      config,
      layers,
      ...(annotations ? { annotations } : {}),
    };
  }
  throw new UnsupportedSchemaError(`unsupported manifest media type ${JSON.stringify(mediaType)}`);
}

/**
 * Picks the manifest for `wanted` from an index: os and architecture must
 * match; the variant too when `wanted` names one (arm64 defaults to v8).
 * Entries with an exactly equal variant win over others. Throws
 * {@link NoMatchingPlatformError} listing what the index offers.
 */
export function selectPlatform(index: ImageIndex, wanted: Platform): Descriptor {
  const candidates = index.manifests.filter(
    (m) =>
      m.mediaType !== MediaTypes.dockerManifestV1Signed &&
      m.platform !== undefined &&
      platformMatches(wanted, m.platform),
  );
  const w = normalizePlatform(wanted);
  const exact = candidates.find((m) => normalizePlatform(m.platform!).variant === w.variant);
  const chosen = exact ?? candidates[0];
  if (chosen) return chosen;
  // An index whose single entry has no platform (e.g. an OCI layout index) applies to any platform.
  const untagged = index.manifests.filter((m) => m.platform === undefined);
  if (untagged.length === 1 && index.manifests.length === 1) return untagged[0]!;
  const offered = index.manifests.filter((m) => m.platform).map((m) => formatPlatform(m.platform!));
  throw new NoMatchingPlatformError(
    `no image for platform ${formatPlatform(wanted)}; the index offers ${offered.length ? offered.join(", ") : "no platforms"}`,
    { details: { wanted, offered } },
  );
}
