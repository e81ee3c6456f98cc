export { pullImage } from "./pull.js";
export type { PullOptions, PullPolicy } from "./pull.js";
export { buildRootfs, rootfsDigest } from "./rootfs.js";
export type { BuildRootfsOptions, RootfsImage } from "./rootfs.js";
export type { LayerInfo, PullProgress, PulledImage } from "./pulled-image.js";
export { parseReference, parseRegistryReference, DOCKER_HUB } from "./reference.js";
export type { DockerArchiveReference, ImageReference, OciLayoutReference, RegistryReference } from "./reference.js";
export { parseImageConfig } from "./image-config.js";
export type { ImageConfig, ParsedImageConfig } from "./image-config.js";
export { parseManifest, selectPlatform } from "./manifest.js";
export type { Descriptor, ImageIndex, ImageManifest } from "./manifest.js";
export { MediaTypes } from "./media-types.js";
export { defaultPlatform, formatPlatform, normalizePlatform, platformMatches } from "./platform.js";
export type { Platform } from "./platform.js";
export { BlobCache, defaultCacheDir } from "./blob-cache.js";
export { lookupDockerCredentials, defaultDockerConfigPath } from "./credentials.js";
export type { RegistryAuth, ResolvedCredentials } from "./credentials.js";
export { RegistryClient } from "./registry-client.js";
export type { FetchedManifest, RegistryClientOptions } from "./registry-client.js";
export { parseWwwAuthenticate } from "./www-authenticate.js";
export type { AuthChallenge } from "./www-authenticate.js";
export { MergedTree, cleanPath } from "./layer-merge.js";
export type { MergedInode, MergedNode } from "./layer-merge.js";
export { readTarEntries } from "./tar-reader.js";
export type { TarEntry, TarEntryType } from "./tar-reader.js";
export { writeMergedTar } from "./merged-tar.js";
export type { MergeStats } from "./merged-tar.js";
export { bufferSource, fileSource } from "./byte-source.js";
export type { ByteSource } from "./byte-source.js";
export {
  AbortedError,
  CredentialHelperError,
  DigestMismatchError,
  InvalidImageError,
  InvalidReferenceError,
  LayerInvalidError,
  NetworkError,
  NoMatchingPlatformError,
  NotFoundError,
  OciError,
  PullPolicyError,
  RegistryError,
  RootfsBuildError,
  UnauthorizedError,
  UnsafePathError,
  UnsupportedSchemaError,
} from "./errors.js";
export type { OciErrorCode } from "./errors.js";
