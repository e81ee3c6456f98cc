import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { readBounded } from "./bounded-read.js";
import { parseDigest, sha256Digest, verifyBytes } from "./digest.js";
import { InvalidImageError, LimitExceededError, NotFoundError } from "./errors.js";
import type { ImageSource, ResolvedManifest } from "./image-source.js";
import { DEFAULT_LIMITS, formatBytes } from "./limits.js";
import { type Descriptor, parseManifest } from "./manifest.js";
import { MediaTypes } from "./media-types.js";
import type { OciLayoutReference } from "./reference.js";

const REF_NAME = "org.opencontainers.image.ref.name";

/** Throws unless `path` is a regular file (a FIFO would block the read, a device could be endless). */
async function assertRegularFile(path: string, what: string): Promise<void> {
  const st = await stat(path);
  if (!st.isFile()) throw new InvalidImageError(`${what} is not a regular file`, { details: { path } });
}

/** Reads a local regular file, at most `max` bytes. */
async function readFileBounded(path: string, max: number, what: string): Promise<Buffer> {
  await assertRegularFile(path, what);
  const stream = createReadStream(path, { highWaterMark: 1024 * 1024 });
  await new Promise<void>((resolve, reject) => {
    stream.once("open", () => resolve());
    stream.once("error", reject);
  });
  return readBounded(
    stream,
    max,
    () => new LimitExceededError("maxManifestBytes", max, `${what} is larger than ${formatBytes(max)}`),
  );
}

/** An {@link ImageSource} reading an OCI image layout directory. */
export class OciLayoutSource implements ImageSource {
  constructor(
    private readonly ref: OciLayoutReference,
    private readonly maxManifestBytes: number = DEFAULT_LIMITS.maxManifestBytes,
  ) {}

  private blobPath(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.ref.path, "blobs", algorithm, hex);
  }

  async resolve(): Promise<ResolvedManifest> {
    let layout: { imageLayoutVersion?: string };
    let indexBytes: Buffer;
    try {
      layout = JSON.parse(
        (
          await readFileBounded(
            join(this.ref.path, "oci-layout"),
            this.maxManifestBytes,
            `${this.ref.path}/oci-layout`,
          )
        ).toString("utf8"),
      ) as typeof layout;
      indexBytes = await readFileBounded(
        join(this.ref.path, "index.json"),
        this.maxManifestBytes,
        `${this.ref.path}/index.json`,
      );
    } catch (err) {
      if (err instanceof LimitExceededError || err instanceof InvalidImageError) throw err;
      throw new NotFoundError(`${this.ref.path} is not an OCI image layout (no oci-layout / index.json)`, {
        manifest: true,
        cause: err,
        details: { path: this.ref.path },
      });
    }
    if (typeof layout.imageLayoutVersion !== "string")
      throw new InvalidImageError(`${this.ref.path}: bad oci-layout file`);
    const index = parseManifest(indexBytes, MediaTypes.ociIndex);
    if (index.kind !== "index")
      throw new InvalidImageError(`${this.ref.path}/index.json is not an image index`);
    let chosen: Descriptor[];
    const tag = this.ref.tag;
    if (tag?.includes(":") && /^sha(256|512):/.test(tag)) {
      chosen = index.manifests.filter((m) => m.digest === tag);
    } else if (tag) {
      chosen = index.manifests.filter((m) => m.annotations?.[REF_NAME] === tag);
    } else {
      chosen =
        index.manifests.length === 1
          ? index.manifests
          : index.manifests.filter((m) => m.annotations?.[REF_NAME] === "latest");
      if (chosen.length === 0) chosen = index.manifests;
    }
    if (chosen.length === 0) {
      const names = index.manifests.map((m) => m.annotations?.[REF_NAME]).filter(Boolean);
      throw new NotFoundError(
        `${this.ref.path}: no image tagged ${JSON.stringify(tag)} (has ${names.join(", ") || "none"})`,
        {
          manifest: true,
          details: { path: this.ref.path, tag },
        },
      );
    }
    if (chosen.length === 1) {
      const d = chosen[0]!;
      const bytes = await this.manifest(d);
      verifyBytes(`manifest ${d.digest} in ${this.ref.path}`, bytes, d.digest);
      return { bytes, contentType: d.mediaType, digest: d.digest };
    }
    // Several platform manifests share the name: treat them as an index.
    const synthetic = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: chosen }),
    );
    return { bytes: synthetic, contentType: MediaTypes.ociIndex, digest: sha256Digest(synthetic) };
  }

  async manifest(desc: Descriptor): Promise<Buffer> {
    try {
      return await readFileBounded(
        this.blobPath(desc.digest),
        this.maxManifestBytes,
        `${this.ref.path}: manifest ${desc.digest}`,
      );
    } catch (err) {
      if (err instanceof LimitExceededError || err instanceof InvalidImageError) throw err;
      throw new NotFoundError(`${this.ref.path}: blob ${desc.digest} missing`, {
        manifest: true,
        cause: err,
      });
    }
  }

  async blob(desc: Descriptor): Promise<AsyncIterable<Uint8Array>> {
    const path = this.blobPath(desc.digest);
    try {
      await assertRegularFile(path, `${this.ref.path}: blob ${desc.digest}`);
    } catch (err) {
      if (err instanceof InvalidImageError) throw err;
      throw new NotFoundError(`${this.ref.path}: blob ${desc.digest} missing`, { cause: err });
    }
    const stream = createReadStream(path, { highWaterMark: 1024 * 1024 });
    await new Promise<void>((resolve, reject) => {
      stream.once("open", () => resolve());
      stream.once("error", (err) =>
        reject(new NotFoundError(`${this.ref.path}: blob ${desc.digest} missing`, { cause: err })),
      );
    });
    return stream;
  }

  async close(): Promise<void> {}
}
