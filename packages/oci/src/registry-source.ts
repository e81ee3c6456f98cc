import type { RegistryAuth } from "./credentials.js";
import { sha256Digest, verifyBytes } from "./digest.js";
import { DigestMismatchError } from "./errors.js";
import type { ImageSource, ResolvedManifest } from "./image-source.js";
import type { OciLimits } from "./limits.js";
import type { Descriptor } from "./manifest.js";
import type { RegistryReference } from "./reference.js";
import { RegistryClient } from "./registry-client.js";

/** Options of {@link RegistrySource}. */
export interface RegistrySourceOptions {
  insecureRegistries?: string[];
  auth?: RegistryAuth;
  dockerConfigPath?: string;
  signal?: AbortSignal;
  limits?: Partial<OciLimits>;
}

/** An {@link ImageSource} backed by a registry. */
export class RegistrySource implements ImageSource {
  private readonly client: RegistryClient;
  constructor(
    private readonly ref: RegistryReference,
    opts: RegistrySourceOptions = {},
  ) {
    this.client = new RegistryClient({ registry: ref.registry, repository: ref.repository, ...opts });
  }

  async resolve(): Promise<ResolvedManifest> {
    const m = await this.client.getManifest(this.ref.digest ?? this.ref.tag ?? "latest");
    if (this.ref.digest) {
      verifyBytes(`manifest ${this.ref.normalized}`, m.bytes, this.ref.digest);
      return { bytes: m.bytes, contentType: m.contentType, digest: this.ref.digest };
    }
    const digest = sha256Digest(m.bytes);
    if (m.headerDigest?.startsWith("sha256:") && m.headerDigest !== digest) {
      throw new DigestMismatchError(`manifest ${this.ref.normalized}`, m.headerDigest, digest);
    }
    return { bytes: m.bytes, contentType: m.contentType, digest };
  }

  async manifest(desc: Descriptor): Promise<Buffer> {
    return (await this.client.getManifest(desc.digest)).bytes;
  }

  async blob(desc: Descriptor): Promise<AsyncIterable<Uint8Array>> {
    return (await this.client.openBlob(desc.digest)).body;
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
