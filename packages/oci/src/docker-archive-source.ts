import { createReadStream } from "node:fs";
import type { BlobCache } from "./blob-cache.js";
import { type ByteSource, fileSource } from "./byte-source.js";
import { detectCompression } from "./decompress.js";
import { sha256Digest } from "./digest.js";
import { InvalidImageError, LimitExceededError, NotFoundError } from "./errors.js";
import type { ImageSource, ResolvedManifest } from "./image-source.js";
import { DEFAULT_LIMITS, formatBytes, type OciLimits } from "./limits.js";
import type { Descriptor } from "./manifest.js";
import { MediaTypes } from "./media-types.js";
import { type DockerArchiveReference, parseRegistryReference } from "./reference.js";
import { readTarEntries } from "./tar-reader.js";

interface ArchiveManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/**
 * An {@link ImageSource} reading a `docker save` archive. The archive has no
 * registry manifest, so one (Docker schema 2) is synthesized: `resolve()`
 * copies the config and layers into the blob cache, hashing them on the way.
 */
export class DockerArchiveSource implements ImageSource {
  private src?: ByteSource;
  constructor(
    private readonly ref: DockerArchiveReference,
    private readonly cache: BlobCache,
    private readonly limits: Pick<
      OciLimits,
      "maxManifestBytes" | "maxConfigBytes" | "maxEntries"
    > = DEFAULT_LIMITS,
    private readonly onLayer?: (digest: string, bytes: number) => void,
  ) {}

  async resolve(): Promise<ResolvedManifest> {
    try {
      this.src = await fileSource(this.ref.path);
    } catch (err) {
      throw new NotFoundError(`docker archive ${this.ref.path} cannot be opened`, {
        manifest: true,
        cause: err,
      });
    }
    const files = new Map<string, { offset: number; size: number }>();
    const links = new Map<string, string>();
    let count = 0;
    for await (const e of readTarEntries(this.src)) {
      if (++count > this.limits.maxEntries) {
        throw new LimitExceededError(
          "maxEntries",
          this.limits.maxEntries,
          `docker archive ${this.ref.path} has more than ${this.limits.maxEntries} entries`,
        );
      }
      const name = e.path.replace(/^\.\//, "");
      if (e.type === "file") files.set(name, { offset: e.dataOffset, size: e.size });
      else if (e.type === "symlink" || e.type === "link") links.set(name, e.linkname);
    }
    const lookup = (name: string) => {
      let n = name.replace(/^\.\//, "");
      for (let i = 0; i < 8 && !files.has(n) && links.has(n); i++) {
        const t = links.get(n)!;
        n = t.startsWith("/")
          ? t.slice(1)
          : `${n.split("/").slice(0, -1).concat(t).join("/")}`.replace(/[^/]+\/\.\.\//g, "");
      }
      const f = files.get(n);
      if (!f) throw new InvalidImageError(`docker archive ${this.ref.path}: missing ${name}`);
      return f;
    };
    const read = async (name: string, limit: "maxManifestBytes" | "maxConfigBytes") => {
      const f = lookup(name);
      const max = this.limits[limit];
      if (f.size > max) {
        throw new LimitExceededError(
          limit,
          max,
          `docker archive ${this.ref.path}: ${name} is larger than ${formatBytes(max)}`,
        );
      }
      return Buffer.from(await this.src!.read(f.offset, f.size));
    };
    let manifest: ArchiveManifestEntry[];
    try {
      manifest = JSON.parse(
        (await read("manifest.json", "maxManifestBytes")).toString("utf8"),
      ) as ArchiveManifestEntry[];
    } catch (err) {
      if (err instanceof LimitExceededError) throw err;
      throw new InvalidImageError(`docker archive ${this.ref.path}: unreadable manifest.json`, {
        cause: err,
      });
    }
    if (!Array.isArray(manifest) || manifest.length === 0) {
      throw new InvalidImageError(`docker archive ${this.ref.path}: empty manifest.json`);
    }
    let entry: ArchiveManifestEntry | undefined;
    if (this.ref.ref) {
      entry = manifest.find((m) =>
        (m.RepoTags ?? []).some((t) => {
          try {
            return parseRegistryReference(t).normalized === this.ref.ref;
          } catch {
            return false;
          }
        }),
      );
      if (!entry) {
        throw new NotFoundError(`docker archive ${this.ref.path} has no image ${this.ref.ref}`, {
          manifest: true,
          details: { tags: manifest.flatMap((m) => m.RepoTags ?? []) },
        });
      }
    } else if (manifest.length === 1) {
      entry = manifest[0];
    } else {
      throw new InvalidImageError(
        `docker archive ${this.ref.path} holds ${manifest.length} images; name one: docker-archive:${this.ref.path}:name:tag`,
      );
    }
    const configBytes = await read(entry!.Config, "maxConfigBytes");
    const configDigest = sha256Digest(configBytes);
    await this.cache.putBytes(configDigest, configBytes, "config");
    const layers: Descriptor[] = [];
    for (const name of entry!.Layers) {
      const f = lookup(name);
      const head = await this.src.read(f.offset, 4);
      const compression = detectCompression(head);
      const stream = createReadStream(this.ref.path, {
        start: f.offset,
        end: f.offset + f.size - 1,
        highWaterMark: 1024 * 1024,
      });
      const { digest, size } = await this.cache.putStream(undefined, stream, {
        expectedSize: f.size,
        what: `layer ${name}`,
        onBytes: (n) => this.onLayer?.(name, n),
      });
      layers.push({
        mediaType:
          compression === "gzip"
            ? MediaTypes.dockerLayerGzip
            : compression === "zstd"
              ? "application/vnd.docker.image.rootfs.diff.tar.zstd"
              : MediaTypes.dockerLayer,
        digest,
        size,
      });
    }
    const synthetic = {
      schemaVersion: 2,
      mediaType: MediaTypes.dockerManifest,
      config: { mediaType: MediaTypes.dockerConfig, digest: configDigest, size: configBytes.length },
      layers,
    };
    const bytes = Buffer.from(JSON.stringify(synthetic));
    return { bytes, contentType: MediaTypes.dockerManifest, digest: sha256Digest(bytes) };
  }

  async manifest(desc: Descriptor): Promise<Buffer> {
    throw new NotFoundError(`docker archive has no manifest ${desc.digest}`, { manifest: true });
  }

  async blob(desc: Descriptor): Promise<AsyncIterable<Uint8Array>> {
    const path = this.cache.path(desc.digest);
    return createReadStream(path);
  }

  async close(): Promise<void> {
    await this.src?.close();
  }
}
